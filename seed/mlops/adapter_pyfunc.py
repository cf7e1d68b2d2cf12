"""The code of a registered SEED adapter as an MLflow pyfunc ("models from code").

`seed.mlops.registry.log_adapter_model` logs this file in place of a pickled object: MLflow copies it into
the model folder and runs it when the model loads, so a registered version holds this file, the
MLmodel metadata and the adapter's safetensors, and no pickle. It needs the ``seed`` package
installed where it loads, as any use of the model does.
"""

import mlflow.models

from seed.mlops.registry import SeedAdapterModel

mlflow.models.set_model(SeedAdapterModel())
