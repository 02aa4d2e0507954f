"""The one adapter to MLflow: the registry (versions, tags, the aliases `champion`, `challenger`,
`previous`, the A/B config tag, model files) and the tracking runs that record how versions were made.

Every process reaches MLflow through here: the router reads aliases and the config tag and
downloads versions (`ServingRegistry`), the DAG's task shells log runs and register versions, the
CLI and the analysis move aliases. Nothing else imports MLflow's client, so its failure modes
(a down server, a missing alias, a recreated model, a refused account) are handled in one place.
Every alias move goes through `move_alias`, which records who moved it (the OS user and the MLflow
account), when and why in a tag on the version, and logs it. Every registration records the SHA-256
of the version's files on the version (`ARTIFACT_DIGEST_TAG`), which the router checks before it
unpickles anything.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cloudpickle
import mlflow
import mlflow.artifacts
import mlflow.sklearn
import numpy
import pandas
import scipy
import sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.utils.credentials import read_mlflow_creds
from sklearn.pipeline import Pipeline

from ticket_ab.log import get_logger, kv
from ticket_ab.names import ALIASES, CHALLENGER, CHAMPION, PREVIOUS, SERVED_ALIASES
from ticket_ab.settings import Settings
from ticket_ab.twohead import TwoHeadModel

REFERENCE_ARTIFACT = "reference/reference.parquet"
Model = Pipeline | TwoHeadModel  # a registered version: an older one-head Pipeline, or topic and priority heads
TRUSTED_ARTIFACT = "trusted/trusted.parquet"  # held-out tickets no window's feedback shaped: the per-topic gate
MODEL_ARTIFACT = "model"
# A registered-model tag holding the routers' A/B config as JSON (see router/config.py): one tag,
# so one write replaces the whole config, and it sits next to the aliases every router polls.
AB_CONFIG_TAG = "ab_config"
# A version tag written by the registration call itself: the SHA-256 of the model directory as the
# registry stored it (see `model_digest`). The router unpickles a version only when its files match.
ARTIFACT_DIGEST_TAG = "artifact_sha256"
# Files a downloading client writes into a model directory, never part of what was registered:
# MLflow's own `registered_model_meta` (the model name and version it was fetched as).
CLIENT_WRITTEN = frozenset({"registered_model_meta"})

log = get_logger("registry")
Client = MlflowClient  # what callers hold between calls; only this module names MLflow's client


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says what to do about it."""


class RegistryUnavailable(RegistryError):
    """The registry could not be asked (down, timing out, failing); not the same as 'no such alias'."""


class RegistryRefused(RegistryError):
    """An authenticated registry turned the caller away: no or wrong credentials, or too little permission."""


FAILURES = (RegistryError, MlflowException)  # what a registry call may raise when it cannot do what was asked
REFUSAL_CODES = ("UNAUTHENTICATED", "PERMISSION_DENIED")  # MLflow's basic-auth answers 401 / 403


def account() -> str | None:
    """The MLflow account this process acts as (MLFLOW_TRACKING_USERNAME or ~/.mlflow/credentials), if any."""
    return read_mlflow_creds().username


def refused(exc: MlflowException, action: str, needs: str) -> RegistryRefused:
    """A 401/403 as one line that says which account was refused, what the action needs and how to give another."""
    user = account()
    if exc.error_code == "UNAUTHENTICATED":
        who = f"the password of account {user!r} was not accepted" if user else "no credentials were given"
    else:
        who = f"account {user!r} lacks the permission ({needs})"
    return RegistryRefused(f"MLflow refused to {action}: {who}; set MLFLOW_TRACKING_USERNAME and "
                           "MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials) to an account that may")


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


def connect(tracking_uri: str) -> MlflowClient:
    """Point this process at `tracking_uri` and return a client."""
    check_reachable(tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def is_local_store(tracking_uri: str) -> bool:
    """A database or file store on this machine, as opposed to a tracking server."""
    return urlparse(tracking_uri).scheme in ("", "file", "sqlite")


def use_experiment(tracking_uri: str, name: str, artifact_root: Path | None = None) -> str:
    """Make `name` the active experiment (set explicitly: MLflow caches the last experiment id per
    process, even across tracking URIs) and return its id.

    With a local store MLflow's default artifact root is `./mlruns` in the working directory; a new
    experiment there keeps its artifacts under `artifact_root` instead, so nothing is written
    outside TICKET_AB_HOME. A tracking server keeps artifacts where it was told to.
    """
    if artifact_root is not None and is_local_store(tracking_uri) and mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=(Path(artifact_root) / name).resolve().as_uri())
        except MlflowException:  # another process created it first
            pass
    return mlflow.set_experiment(name).experiment_id


def use_settings_experiment(settings: Settings) -> str:
    """The settings' experiment; a local store keeps its artifacts where `make mlflow` keeps them."""
    return use_experiment(settings.tracking_uri, settings.experiment, settings.mlflow_dir / "artifacts")


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created now when missing (the stack's registry set-up creates it as the
    admin, so no role account becomes its owner)."""
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create registered model `name` unless it exists (as `ensure_experiment`: its creator gets MANAGE on it)."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)


def version_for(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The ModelVersion behind `alias`, or None when the alias (or the model) does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in REFUSAL_CODES:  # not "no such alias": the caller may not look
            raise refused(exc, f"read alias {alias!r} of {name!r}", "reading needs READ on the model") from None
        return None


def find_version(client: MlflowClient, name: str, tag: str, value: str) -> ModelVersion | None:
    """The newest version carrying tag=value (idempotency: a DAG run registers once).

    A registry error propagates: answering "none" while the server is down would register twice.
    """
    versions = client.search_model_versions(f"name = '{name}' and tags.`{tag}` = '{value}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def ensure_alias(client: MlflowClient, name: str, alias: str, version: str, *, why: str) -> list[AliasMove]:
    """Point `alias` at `version` unless it already does: a retry of a move that happened moves nothing."""
    current = version_for(client, name, alias)
    if current is not None and current.version == str(version):
        return []
    return [move_alias(client, name, alias, version, why=why)]


def move_alias(client: MlflowClient, name: str, alias: str, version: str | None, *, why: str,
               who: str | None = None) -> AliasMove:
    """Point `alias` at `version` (None removes it) and record the move on the version's tags."""
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r}; known: {', '.join(ALIASES)}")
    before = version_for(client, name, alias)
    move = AliasMove(
        alias=alias,
        version=str(version) if version is not None else None,
        previous_version=before.version if before else None,
        who=who or " as ".join(filter(None, (getpass.getuser(), account()))),
        why=why,
        when=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        if version is None:
            if before is not None:
                client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        if exc.error_code in REFUSAL_CODES:
            raise refused(exc, f"move alias {alias!r} of {name!r}", f"moving an alias other than '{CHALLENGER}', "
                          "or removing one, needs MANAGE on the model") from None
        raise
    record = json.dumps({"alias": alias, "to": move.version, "from": move.previous_version,
                         "who": move.who, "why": why, "when": move.when})
    for touched in {move.version, move.previous_version} - {None}:
        client.set_model_version_tag(name, touched, f"alias_event.{time.time_ns()}", record)
    log.info(kv("alias_move", model=name, alias=alias, to=move.version, frm=move.previous_version,
                who=move.who, why=why))
    return move


def ab_config(client: MlflowClient, name: str) -> str | None:
    """The A/B config tag's JSON as the routers read it (None: never set, or no such model)."""
    try:
        return client.get_registered_model(name).tags.get(AB_CONFIG_TAG)
    except MlflowException:
        return None


def promote(client: MlflowClient, name: str, *, why: str, who: str | None = None) -> list[AliasMove]:
    """challenger -> champion; the old champion keeps alias `previous` for a one-step rollback."""
    challenger = version_for(client, name, CHALLENGER)
    if challenger is None:
        raise RegistryError(f"model {name!r} has no '{CHALLENGER}' to promote (see `ticket-ab status`)")
    champion = version_for(client, name, CHAMPION)
    moves = []
    if champion is not None:
        moves.append(move_alias(client, name, PREVIOUS, champion.version,
                                why=f"replaced by v{challenger.version}: {why}", who=who))
    moves.append(move_alias(client, name, CHAMPION, challenger.version, why=why, who=who))
    moves.append(move_alias(client, name, CHALLENGER, None, why=f"promoted to {CHAMPION}", who=who))
    client.set_model_version_tag(name, challenger.version, "validation_status", "promoted")
    return moves


def rollback(client: MlflowClient, name: str, *, why: str, who: str | None = None) -> list[AliasMove]:
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


def withdraw(client: MlflowClient, name: str, *, why: str, who: str | None = None) -> list[AliasMove]:
    """Remove the challenger alias (a stopped experiment); its version keeps its tags, marked `stopped`."""
    challenger = version_for(client, name, CHALLENGER)
    if challenger is None:
        return []
    client.set_model_version_tag(name, challenger.version, "validation_status", "stopped")
    return [move_alias(client, name, CHALLENGER, None, why=why, who=who)]


def created_at(version: ModelVersion) -> datetime:
    """When the version was registered: its experiment's start."""
    return datetime.fromtimestamp(int(version.creation_timestamp) / 1000, UTC)


def alias_moved_at(version: ModelVersion, alias: str) -> datetime | None:
    """When `version` last became `alias`, from the events `move_alias` records on it (None: never recorded)."""
    times = []
    for key, value in version.tags.items():
        if key.startswith("alias_event."):
            event = json.loads(value)
            if event.get("alias") == alias and event.get("to") == str(version.version):
                times.append(datetime.fromisoformat(event["when"]))
    return max(times, default=None)


def tag_version(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    """Set tags on a version (an audit record, a journalled decision); an empty value removes the tag."""
    for key, value in tags.items():
        if value:
            client.set_model_version_tag(name, version, key, value)
        else:
            client.delete_model_version_tag(name, version, key)


def status(client: MlflowClient, name: str) -> dict[str, Any]:
    """Aliases with their versions, metrics tags and creation times: what `retrain status` prints."""
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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_digest(path: Path, ignore: Iterable[str] = ()) -> str:
    """SHA-256 of a model directory: every file's relative path and own SHA-256, in path order.

    Every file counts (MLmodel names the pickle and the loader, so any of them can change what
    loading runs), except those a downloading client writes itself (CLIENT_WRITTEN, `ignore`). A
    symbolic link is refused: it would make the digest vouch for a file outside the directory.
    """
    root, skip = Path(path), CLIENT_WRITTEN | set(ignore)
    files = []
    for folder, dirs, names in os.walk(root):
        for entry in (*dirs, *names):
            if os.path.islink(os.path.join(folder, entry)):
                raise RegistryError(f"{os.path.join(folder, entry)} is a symbolic link; a model directory holds files")
        files += [Path(folder, name) for name in names]
    outer = hashlib.sha256()
    for rel, file in sorted((f.relative_to(root).as_posix(), f) for f in files):
        if rel not in skip:
            outer.update(f"{rel}\0{_file_sha256(file)}\n".encode())
    return outer.hexdigest()


def stored_digest(model_uri: str) -> str:
    """The digest of a logged model as the registry stores it: downloaded back, as every router will fetch it."""
    with tempfile.TemporaryDirectory(prefix="ticket-ab-digest-") as tmp:
        return model_digest(Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp)))


def register_pipeline(pipeline: Model, name: str, example: pandas.DataFrame, tags: dict[str, str]) -> str:
    """Log a fitted text Pipeline to the active run and register it with its tags; returns the new version.

    The tags are part of the registration call, so a version never exists without them (its run
    key, gate verdict and ARTIFACT_DIGEST_TAG, the SHA-256 of its files, which the router checks
    before unpickling): a retry after any failure finds it whole. cloudpickle with explicit
    requirements: the skops default took 70 s and refuses csr_matrix, and requirement inference
    costs ~11 s and pins packages the model never imports.
    """
    signature = infer_signature(example, pipeline.predict(example))
    requirements = [f"scikit-learn=={sklearn.__version__}", f"pandas=={pandas.__version__}",
                    f"numpy=={numpy.__version__}", f"scipy=={scipy.__version__}",
                    f"cloudpickle=={cloudpickle.__version__}"]
    info = mlflow.sklearn.log_model(pipeline, name=MODEL_ARTIFACT, serialization_format="cloudpickle",
                                    pip_requirements=requirements, signature=signature, input_example=example)
    signed = {**tags, ARTIFACT_DIGEST_TAG: stored_digest(info.model_uri)}
    return str(mlflow.register_model(info.model_uri, name, tags=signed).version)


def publish(tracking_uri: str, name: str, pipeline: Model, example: pandas.DataFrame, *,
            alias: str | None = None, why: str = "", tags: dict[str, str] | None = None,
            experiment: str = "ticket-ab", artifact_root: Path | None = None) -> str:
    """Log, register and optionally alias an already fitted pipeline in a run of its own.

    For models trained outside `train_and_register` (tests, benchmarks, imports).
    """
    client = connect(tracking_uri)
    use_experiment(tracking_uri, experiment, artifact_root)
    with mlflow.start_run(run_name=f"publish-{name}"):
        version = register_pipeline(pipeline, name, example, tags or {})
    if alias:
        move_alias(client, name, alias, version, why=why or "published")
    return version


def model_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"


def version_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


def load_pipeline(name: str, alias: str) -> Model:
    """The served sklearn Pipeline behind an alias (needs `connect` first)."""
    return mlflow.sklearn.load_model(model_uri(name, alias))


def load_version(name: str, version: str) -> Model:
    """The sklearn Pipeline of one registered version (needs `connect` first)."""
    return mlflow.sklearn.load_model(version_uri(name, version))


def load_trusted(version: ModelVersion) -> tuple[pandas.DataFrame, str]:
    """(text, topic) of the version's trusted held-out set and where it came from.

    Versions registered before the trusted set existed fall back to their training reference:
    not held out, so it favours the champion, which only makes the per-topic gate stricter.
    """
    try:
        path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=TRUSTED_ARTIFACT)
        return pandas.read_parquet(path)[["text", "topic"]], f"v{version.version} trusted set"
    except (MlflowException, OSError):
        return load_reference(version)[["text", "topic"]], f"v{version.version} training reference (fallback)"


def load_reference(version: ModelVersion, dst: Path | None = None) -> pandas.DataFrame:
    """The training reference (text, topic, predicted) stored with a version's run."""
    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=str(dst) if dst else None
    )
    return pandas.read_parquet(path)


def load_local(path: Path) -> Model:
    """The sklearn Pipeline of an MLflow model directory on disk (the router's cache of a version)."""
    return mlflow.sklearn.load_model(str(path))


@dataclass(frozen=True)
class Artifact:
    """A local file or directory to attach to a run, and the folder of the run it goes to."""

    path: Path
    folder: str


@dataclass(frozen=True)
class NewVersion:
    """A fitted pipeline to register in the run that describes it; `tags` are part of the registration."""

    pipeline: Model
    example: pandas.DataFrame
    tags: dict[str, str]


def log_run(settings: Settings, run_name: str, *, tags: dict[str, str], params: dict[str, Any] | None = None,
            metrics: dict[str, float] | None = None, artifacts: Iterable[Artifact] = (),
            model: NewVersion | None = None) -> tuple[str, str | None]:
    """One run of the settings' experiment with its tags, params, metrics and files; with `model`, the
    pipeline is registered from inside it. Returns (run id, new version or None)."""
    connect(settings.tracking_uri)
    use_settings_experiment(settings)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(tags)
        if params:
            mlflow.log_params(params)
        if metrics:
            mlflow.log_metrics(metrics)
        for artifact in artifacts:
            log = mlflow.log_artifacts if artifact.path.is_dir() else mlflow.log_artifact
            log(str(artifact.path), artifact_path=artifact.folder)
        version = register_pipeline(model.pipeline, settings.model_name, model.example, model.tags) if model else None
    return run.info.run_id, version


def attach(tracking_uri: str, run_id: str, artifact: Artifact) -> None:
    """Add a file to an existing run (the run report goes with the run's drift evidence)."""
    connect(tracking_uri).log_artifact(run_id, str(artifact.path), artifact_path=artifact.folder)


@dataclass(frozen=True)
class RegistryVersion:
    """What an alias points at; the run id tells a reused version number from a cached one, the digest
    (ARTIFACT_DIGEST_TAG, None when the version carries none) is what its files must hash to."""

    version: str
    run_id: str
    digest: str | None = None


@dataclass(frozen=True)
class RegistryState:
    """One poll's answer: where the served aliases point (None: no such alias) and the A/B config tag."""

    aliases: dict[str, RegistryVersion | None]
    config_tag: str | None = None


class ServingRegistry:
    """The router's reads (and its one write, the A/B config tag), failing fast when MLflow is down."""

    def __init__(self, tracking_uri: str, model_name: str, timeout_s: float = 3.0) -> None:
        # The client's defaults retry for minutes; the router's poll loop retries on its own schedule instead.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._client: MlflowClient | None = None
        # A version's run and digest never change (the digest tag is write-once), but a recreated
        # registry reuses version numbers: the key carries the registered model's creation time, so
        # a recreated model is looked up afresh.
        self._versions: dict[tuple[int | None, str], RegistryVersion] = {}

    def state(self) -> RegistryState:
        """One `get_registered_model` (aliases and tags) per poll; a version's run id only when first seen."""
        client = self._connect()
        try:
            model = client.get_registered_model(self.model_name)
        except MlflowException as exc:
            # An unregistered model -> RESOURCE_DOES_NOT_EXIST: no aliases and no config yet; anything
            # else (connection errors arrive as INTERNAL_ERROR) means "could not ask".
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return RegistryState({alias: None for alias in SERVED_ALIASES})
            raise self._unavailable(exc) from None
        try:
            aliases = {alias: self._target(client, model, alias) for alias in SERVED_ALIASES}
        except MlflowException as exc:  # an alias names a version we cannot read: ask again next poll
            raise self._unavailable(exc) from None
        return RegistryState(aliases, model.tags.get(AB_CONFIG_TAG))

    def download(self, version: str, dst: Path) -> Path:
        """By version, not alias: the alias may move again while we download."""
        path = mlflow.artifacts.download_artifacts(artifact_uri=version_uri(self.model_name, version),
                                                   dst_path=str(dst), tracking_uri=self.tracking_uri)
        return Path(path)

    def _unavailable(self, exc: MlflowException) -> RegistryUnavailable:
        return RegistryUnavailable(f"MLflow at {self.tracking_uri}: {exc.message}")

    def _connect(self) -> MlflowClient:
        """A fast /health preflight first: a down server fails in milliseconds, not after client retries."""
        try:
            check_reachable(self.tracking_uri, self.timeout_s)
            if self._client is None:
                self._client = connect(self.tracking_uri)
        except RegistryError as exc:
            raise RegistryUnavailable(str(exc)) from None
        return self._client

    def _target(self, client: MlflowClient, model: RegisteredModel, alias: str) -> RegistryVersion | None:
        version = model.aliases.get(alias)
        if version is None:
            return None
        key = (model.creation_timestamp, str(version))
        if key not in self._versions:
            found = client.get_model_version(self.model_name, str(version))
            self._versions[key] = RegistryVersion(version=str(version), run_id=found.run_id or "",
                                                  digest=found.tags.get(ARTIFACT_DIGEST_TAG))
        return self._versions[key]
