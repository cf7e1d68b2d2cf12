"""The model registry: a SEED adapter as an MLflow pyfunc model, its versions, and the promotion gate.

```
artifacts/adapter (PEFT LoRA)  --log_adapter_model-->  pyfunc model  (adapter folder + a reference to
                                                        the base model: path or id, and its content hash)
                               --register_adapter--->  version N of `seed-lvlm`
                               --promote------------>  alias `champion` (gate passed) or `challenger`
mlflow.pyfunc.load_model("models:/seed-lvlm@champion").predict(
    pd.DataFrame({"image": [path], "question": [text]}))  ->  ["Yes"]
```

The gate is `seed.mlops.gate.promotion_decision`, a pure function of three score sets (candidate, current champion,
base model), each ``{"pope": {split: F1}, "mme": {subtask: score}}`` as `method_scores` reads them
from a metrics.json. A version's scores travel with it as the tag ``seed.scores``, so the gate never
needs the champion's run.

Safety: a version becomes champion only with complete scores (every POPE split and MME subtask the
gate compares) and a run that did not end FAILED or KILLED; anything else is `challenger`, with the
reason in the tag ``seed.promotion_reason``. `register_adapter` and `promote` each run under
`seed.mlops.store_lock.store_lock` (``mlflow.db.lock``), reading the champion inside the lock, so
concurrent pipeline runs are serialised: no adapter is registered twice and the champion is always
a version whose complete scores beat the one it replaced. Promoting a decided version again changes
nothing. The model is logged from code (`seed.mlops.adapter_pyfunc`): no pickle is written.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd

from seed.errors import DataError
from seed.mlops.gate import PromoteConfig, missing_scores, promotion_decision
from seed.mlops.store_lock import store_lock

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

MODEL_NAME = "seed-lvlm"
CHAMPION = "champion"
CHALLENGER = "challenger"

# Model-version tags.
TAG_SCORES = "seed.scores"
TAG_ADAPTER_HASH = "seed.adapter_hash"
TAG_BASE_MODEL = "seed.base_model"
TAG_BASE_HASH = "seed.base_model_hash"
TAG_DECISION = "seed.promotion"
TAG_REASON = "seed.promotion_reason"

# The file that MLflow runs to build the pyfunc model ("models from code": nothing is pickled).
MODEL_CODE = Path(__file__).with_name("adapter_pyfunc.py")
RUN_FAILED = ("FAILED", "KILLED")  # a version logged by a run that ended so is never promoted

# The pyfunc's requirements (pinned to what is installed), passed explicitly: inferring them is slow.
REQUIREMENTS = (
    "mlflow",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
    "tokenizers",
    "pillow",
)


# ---------------------------------------------------------------------------------------------------
# The pyfunc model


def requirements() -> list[str]:
    """Pinned pip requirements of the pyfunc model (installed versions, local tags such as +cpu dropped)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def base_model_hash(base_model: str | Path) -> str | None:
    """Content hash of a base model folder (or of a hub id's cached snapshot); None if not available."""
    from seed.files.hashing import model_hash

    try:
        return model_hash(base_model)
    except DataError:
        return None


def base_reference(base_model: str | Path) -> str:
    """How a registered version names its base model: an absolute path for a folder, else the hub id."""
    local = Path(base_model)
    return str(local.resolve()) if local.exists() else str(base_model)


def check_base_model(base_model: str | Path, expected: str | None) -> None:
    """Raise DataError unless the base model's content hash is ``expected`` (None: nothing to check)."""
    if not expected:
        return
    actual = base_model_hash(base_model)
    if actual != expected:
        raise DataError(
            base_model,
            f"base model content hash is {actual}, the registered adapter was trained on {expected}: "
            "restore that model (dvc checkout / the run's git commit) or load with "
            "model_config={'base_model': PATH_OF_THE_ORIGINAL}",
            field="base_model_hash",
        )


class SeedAdapterModel(mlflow.pyfunc.PythonModel):
    """A PEFT adapter on a referenced base model: answers a DataFrame of (image path, question) rows.

    Logged from code: `seed.mlops.adapter_pyfunc` builds it when MLflow loads a version (no pickle).

    model_config keys (each can be overridden at load time): ``base_model`` (path or hub id),
    ``base_model_hash`` (checked when ``verify_base_model``), ``device``, ``dtype``, ``batch_size``,
    ``max_new_tokens``.
    """

    def load_context(self, context) -> None:
        from seed.model.generate import load_model

        config = dict(context.model_config or {})
        if config.get("verify_base_model", True):
            check_base_model(config["base_model"], config.get("base_model_hash"))
        self.config = config
        self.model, self.processor = load_model(
            config["base_model"],
            adapter=context.artifacts["adapter"],
            dtype=config.get("dtype", "float32"),
            device=config.get("device", "cpu"),
        )

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        from seed.model.generate import answer_batch, open_image

        frame = model_input
        missing = sorted({"image", "question"} - set(getattr(frame, "columns", [])))
        if missing:
            raise DataError("model input", f"needs columns image and question; missing {', '.join(missing)}")
        size = int(self.config.get("batch_size", 16))
        images, questions = [str(p) for p in frame["image"]], [str(q) for q in frame["question"]]
        answers: list[str] = []
        for start in range(0, len(questions), size):
            answers += answer_batch(
                self.model,
                self.processor,
                [open_image(p) for p in images[start : start + size]],
                questions[start : start + size],
                max_new_tokens=int(self.config.get("max_new_tokens", 32)),
            )
        return answers


def signature():
    """Input: string columns ``image`` (a path) and ``question``; output: one string per row."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "image"), ColSpec("string", "question")]),
        outputs=Schema([ColSpec("string")]),
    )


def log_adapter_model(
    adapter_dir: str | Path,
    base_model: str | Path,
    base_hash: str | None = None,
    name: str = "model",
    device: str = "cpu",
    dtype: str = "float32",
):
    """Log the adapter folder as a pyfunc model in the active run; returns MLflow's ModelInfo.

    The model folder holds the adapter (``artifacts/adapter``: adapter_config.json and safetensors),
    the code file `seed.mlops.adapter_pyfunc`, MLmodel (with model_config: the base model's path or id and
    content hash) and the environment files; no pickle.
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise DataError(adapter_dir, "not a PEFT adapter folder (no adapter_config.json)")
    with warnings.catch_warnings():  # "no input example": one would make MLflow load the model to check it
        warnings.simplefilter("ignore", UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={"adapter": str(adapter_dir)},
            model_config={
                "base_model": base_reference(base_model),
                "base_model_hash": base_hash,
                "verify_base_model": True,
                "device": device,
                "dtype": dtype,
                "batch_size": 16,
                "max_new_tokens": 32,
            },
            signature=signature(),
            pip_requirements=requirements(),
        )


# ---------------------------------------------------------------------------------------------------
# Versions and aliases


def _client(client: MlflowClient | None) -> MlflowClient:
    from mlflow import MlflowClient

    return client or MlflowClient()


def registry_lock(client: MlflowClient | None = None):
    """`store_lock` of the registry that ``client`` (default: MLflow's current registry URI) writes to."""
    uri = getattr(client, "_registry_uri", None) or mlflow.get_registry_uri()
    return store_lock(uri)


def find_version(
    adapter_hash: str, name: str = MODEL_NAME, client: MlflowClient | None = None
) -> ModelVersion | None:
    """The version of ``name`` registered from an adapter with this content hash, if any."""
    from mlflow.exceptions import MlflowException

    client = _client(client)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for version in sorted(versions, key=lambda v: int(v.version)):
        if version.tags.get(TAG_ADAPTER_HASH) == adapter_hash:
            return version
    return None


def register_adapter(
    adapter_dir: str | Path,
    base_model: str | Path,
    scores: dict,
    name: str = MODEL_NAME,
    client: MlflowClient | None = None,
) -> tuple[ModelVersion, bool]:
    """Register the adapter as a new version of ``name`` (logged in the active run); ``(version, created)``.

    An adapter whose content hash is already registered is not registered again: the existing
    version comes back with ``created=False`` (a retried, repeated or concurrent run adds no
    version). The look-up and the registration hold the store's lock together.
    """
    from seed.files.hashing import content_hash

    client = _client(client)
    adapter_hash = content_hash(adapter_dir)
    base_hash = base_model_hash(base_model)
    with registry_lock(client):
        existing = find_version(adapter_hash, name, client)
        if existing is not None:
            return existing, False
        info = log_adapter_model(adapter_dir, base_model, base_hash)
        tags = {
            TAG_ADAPTER_HASH: adapter_hash,
            TAG_BASE_MODEL: base_reference(base_model),
            TAG_BASE_HASH: base_hash or "",
            TAG_SCORES: json.dumps(scores, sort_keys=True),
        }
        version = mlflow.register_model(info.model_uri, name, tags=tags)
        return client.get_model_version(name, version.version), True


def alias_version(
    alias: str, name: str = MODEL_NAME, client: MlflowClient | None = None
) -> ModelVersion | None:
    """The version that carries ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return _client(client).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def version_scores(version: ModelVersion | None) -> dict | None:
    """The scores stored on a version (tag ``seed.scores``), or None."""
    if version is None or TAG_SCORES not in version.tags:
        return None
    try:
        return json.loads(version.tags[TAG_SCORES])
    except json.JSONDecodeError:
        return None


@dataclass(frozen=True)
class Decision:
    """What `promote` did to one version: its alias now, why, and whether anything changed."""

    version: str
    champion: bool
    reason: str
    changed: bool

    @property
    def alias(self) -> str:
        return CHAMPION if self.champion else CHALLENGER


def _record(client: MlflowClient, name: str, version: str, decision: str, reason: str) -> None:
    """The gate's decision and reason on the version: as tags, and in full as its description."""
    client.set_model_version_tag(name, version, TAG_DECISION, decision)
    client.set_model_version_tag(name, version, TAG_REASON, reason)
    client.update_model_version(name, version, description=f"@{decision}: {reason}")


def run_status(run_id: str | None, client: MlflowClient | None = None) -> str | None:
    """Status of the MLflow run that logged a version (``FINISHED``, ``RUNNING``, ``FAILED``, ...); None if unknown."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return _client(client).get_run(run_id).info.status
    except MlflowException:
        return None


def promote(
    version: str,
    base: dict,
    config: PromoteConfig,
    name: str = MODEL_NAME,
    client: MlflowClient | None = None,
) -> Decision:
    """Run the gate for ``version`` and move the aliases: ``champion`` if it passes, else ``challenger``.

    Under the store's lock: the version's scores and the current champion's are read there, so two
    runs promoting at once are decided one after the other. A version passes only with complete
    scores and a run that did not end FAILED or KILLED. The decision and its reason are stored as
    tags on the version (after the alias moved). A version already decided is left as it is
    (promoting it again changes nothing). A version that already carries ``champion`` with no
    decision recorded (a promotion that stopped between alias and tags, or an alias set by hand)
    keeps it; the decision is recorded only if its scores are complete.
    """
    client = _client(client)
    version = str(version)
    with registry_lock(client):
        mv = client.get_model_version(name, version)
        current = alias_version(CHAMPION, name, client)
        is_champion = current is not None and str(current.version) == version
        if TAG_DECISION in mv.tags:
            return Decision(version, is_champion, mv.tags.get(TAG_REASON, ""), changed=False)
        if is_champion:  # no gate run can demote the champion: only a better version replaces it
            missing = missing_scores(version_scores(mv), config.metric)
            if missing:  # an alias set by hand: left to whoever set it, not recorded as the gate's
                reason = f"champion set outside the gate; incomplete scores (missing {', '.join(missing)})"
                return Decision(version, True, reason, changed=False)
            reason = "already the champion (its alias was set before a decision was recorded)"
            _record(client, name, version, CHAMPION, reason)
            return Decision(version, True, reason, changed=True)
        status = run_status(mv.run_id, client)
        if status in RUN_FAILED:
            ok, reason = False, f"its MLflow run {mv.run_id} ended {status}: never promoted"
        else:
            champion = version_scores(current) if current is not None else None
            if current is not None and champion is None:
                champion = {}  # a champion set by hand without scores: the gate compares with the base model
            ok, reason = promotion_decision(
                version_scores(mv), champion, base, config.margin, config.tolerance, config.metric
            )
        if current is not None and ok:
            reason += f" (replaces version {current.version})"
        if ok:
            client.set_registered_model_alias(name, CHAMPION, version)
            challenger = alias_version(CHALLENGER, name, client)
            if challenger is not None and str(challenger.version) == version:
                client.delete_registered_model_alias(name, CHALLENGER)
        else:
            client.set_registered_model_alias(name, CHALLENGER, version)
        _record(client, name, version, CHAMPION if ok else CHALLENGER, reason)
        return Decision(version, ok, reason, changed=True)


def load_registered(model_uri: str, **model_config: Any):
    """``mlflow.pyfunc.load_model(model_uri)``, with model_config overrides (base_model, device, ...)."""
    return mlflow.pyfunc.load_model(model_uri, model_config=model_config or None)


def answer(model, images: list[str], questions: list[str]) -> list[str]:
    """Answers of a loaded pyfunc model to (image path, question) pairs."""
    frame = pd.DataFrame({"image": [str(i) for i in images], "question": list(questions)})
    return list(model.predict(frame))
