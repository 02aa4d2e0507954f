"""MLflow registry helpers: versions, tags and the three aliases `champion`, `challenger`, `previous`.

Aliases are the only thing the router reads, so every move goes through `move_alias`, which
records who moved it, when and why in a tag on the version, and logs the move.
"""

from __future__ import annotations

import getpass
import json
import os
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrain.contracts.log import get_logger, kv
from retrain.contracts.names import ALIASES, CHALLENGER, CHAMPION, PREVIOUS

REFERENCE_ARTIFACT = "reference/reference.parquet"
MODEL_ARTIFACT = "model"

log = get_logger("registry")


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says what to do about it."""


@dataclass(frozen=True)
class AliasMove:
    alias: str
    version: str | None  # None: the alias was removed
    previous_version: str | None
    who: str
    why: str
    when: str

    def __str__(self) -> str:
        target = f"v{self.version}" if self.version else "(removed)"
        before = f"v{self.previous_version}" if self.previous_version else "none"
        return f"{self.alias}: {before} -> {target} by {self.who} ({self.why})"


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds with advice, instead of MLflow's minutes of retries, if the server is down."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            if resp.status == 200:
                return
    except OSError as exc:
        raise RegistryError(
            f"MLflow tracking server at {tracking_uri} is not reachable ({exc}); start it with "
            "`make mlflow` or point MLFLOW_TRACKING_URI / --tracking-uri at a running one"
        ) from None
    raise RegistryError(f"MLflow tracking server at {tracking_uri} is not healthy")


def connect(tracking_uri: str):
    """Point this process at `tracking_uri` and return a client (mlflow is imported lazily)."""
    check_reachable(tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def version_for(client, name: str, alias: str):
    """The ModelVersion behind `alias`, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def find_version(client, name: str, tag: str, value: str):
    """The newest version carrying tag=value (idempotency: a DAG run registers once)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}' and tags.`{tag}` = '{value}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version), default=None)


def move_alias(client, name: str, alias: str, version: str | None, *, why: str, who: str | None = None) -> AliasMove:
    """Point `alias` at `version` (None removes it) and record the move on the version's tags."""
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r}; known: {', '.join(ALIASES)}")
    before = version_for(client, name, alias)
    move = AliasMove(
        alias=alias,
        version=str(version) if version is not None else None,
        previous_version=before.version if before else None,
        who=who or getpass.getuser(),
        why=why,
        when=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if version is None:
        if before is not None:
            client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, str(version))
    record = json.dumps({"alias": alias, "to": move.version, "from": move.previous_version,
                         "who": move.who, "why": why, "when": move.when})
    for touched in {move.version, move.previous_version} - {None}:
        client.set_model_version_tag(name, touched, f"alias_event.{time.time_ns()}", record)
    log.info(kv("alias_move", model=name, alias=alias, to=move.version, frm=move.previous_version,
                who=move.who, why=why))
    return move


def promote(client, name: str, *, why: str, who: str | None = None) -> list[AliasMove]:
    """challenger -> champion; the old champion keeps alias `previous` for a one-step rollback."""
    challenger = version_for(client, name, CHALLENGER)
    if challenger is None:
        raise RegistryError(f"model {name!r} has no '{CHALLENGER}' to promote (see `python -m retrain status`)")
    champion = version_for(client, name, CHAMPION)
    moves = []
    if champion is not None:
        moves.append(move_alias(client, name, PREVIOUS, champion.version,
                                why=f"replaced by v{challenger.version}: {why}", who=who))
    moves.append(move_alias(client, name, CHAMPION, challenger.version, why=why, who=who))
    moves.append(move_alias(client, name, CHALLENGER, None, why=f"promoted to {CHAMPION}", who=who))
    client.set_model_version_tag(name, challenger.version, "validation_status", "promoted")
    return moves


def rollback(client, name: str, *, why: str, who: str | None = None) -> list[AliasMove]:
    """previous -> champion; the rolled-back version keeps its tags but no alias."""
    previous = version_for(client, name, PREVIOUS)
    if previous is None:
        raise RegistryError(f"model {name!r} has no '{PREVIOUS}' version to roll back to")
    champion = version_for(client, name, CHAMPION)
    moves = [move_alias(client, name, CHAMPION, previous.version, why=why, who=who),
             move_alias(client, name, PREVIOUS, None, why=f"restored as {CHAMPION}", who=who)]
    if champion is not None:
        client.set_model_version_tag(name, champion.version, "validation_status", "rolled_back")
    return moves


def status(client, name: str) -> dict[str, Any]:
    """Aliases with their versions, metrics tags and creation times: what `retrain status` prints."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return {"model": name, "registered": False, "aliases": {}, "versions": 0}
    versions = client.search_model_versions(f"name = '{name}'")
    aliases = {}
    for alias in ALIASES:
        v = version_for(client, name, alias)
        if v is not None:
            aliases[alias] = {"version": v.version, "run_id": v.run_id, "tags": dict(v.tags),
                              "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC)
                              .isoformat(timespec="seconds")}
    return {"model": model.name, "registered": True, "aliases": aliases, "versions": len(versions)}


def register_pipeline(pipeline, name: str, example, tags: dict[str, str]) -> str:
    """Log a fitted text Pipeline to the active run and register it; returns the new version.

    cloudpickle with explicit requirements: the skops default took 70 s and refuses csr_matrix,
    and requirement inference costs ~11 s and pins packages the model never imports.
    """
    import cloudpickle
    import mlflow.sklearn
    import numpy
    import pandas
    import scipy
    import sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    signature = infer_signature(example, pipeline.predict(example))
    requirements = [f"scikit-learn=={sklearn.__version__}", f"pandas=={pandas.__version__}",
                    f"numpy=={numpy.__version__}", f"scipy=={scipy.__version__}",
                    f"cloudpickle=={cloudpickle.__version__}"]
    info = mlflow.sklearn.log_model(pipeline, name=MODEL_ARTIFACT, serialization_format="cloudpickle",
                                    pip_requirements=requirements, signature=signature, input_example=example,
                                    registered_model_name=name)
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def publish(tracking_uri: str, name: str, pipeline, example, *, alias: str | None = None, why: str = "",
            tags: dict[str, str] | None = None, experiment: str = "ticket-ab") -> str:
    """Log, register and optionally alias an already fitted pipeline in a run of its own.

    For models trained outside `train_and_register` (tests, benchmarks, imports). The experiment is
    set explicitly: MLflow caches the last experiment id per process, even across tracking URIs.
    """
    import mlflow

    client = connect(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"publish-{name}"):
        version = register_pipeline(pipeline, name, example, tags or {})
    if alias:
        move_alias(client, name, alias, version, why=why or "published")
    return version


def model_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"


def load_pipeline(name: str, alias: str):
    """The served sklearn Pipeline behind an alias (needs `connect` first)."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(model_uri(name, alias))


def load_reference(client, version, dst: Path | None = None):
    """The training reference (text, topic, predicted) stored with a version's run."""
    import mlflow.artifacts
    import pandas as pd

    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=str(dst) if dst else None
    )
    return pd.read_parquet(path)
