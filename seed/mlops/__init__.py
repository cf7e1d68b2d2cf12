"""MLOps: the only part of `seed` that imports MLflow.

- `tracking`: one MLflow run per pipeline run (params, metrics, losses, datasets with DVC hashes).
- `registry`: the adapter as a registered pyfunc model, and the promotion gate (`promote`).
- `store_lock`: a file lock around registry writes.
- `adapter_pyfunc`: the model-from-code file MLflow runs to load a registered adapter.
- `serving`: `seed answer` with a registered or local model.
"""
