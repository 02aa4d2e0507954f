"""What the stack's security tests ask: the registry's REST API as anyone (or one account) would, and what
each process of the stack holds in its command line and environment (read as root from /proc).

Registry calls here are raw HTTP on MLflow's documented REST paths, with or without basic-auth
credentials, so a refusal is the server's answer and not something a client library decided.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families
from supervisor.options import ServerOptions

from ops.stack import run
from ops.stack.topology import Paths
from tests.integration.stack.stack_probe import StackHandle
from ticket_ab import registry

API = "/api/2.0/mlflow"


def account(handle: StackHandle, name: str) -> tuple[str, str]:
    """(user, password) of one of the registry's accounts, from the stack's secrets file."""
    return name, handle.secrets[f"registry_{name}_password"]


def call(handle: StackHandle, method: str, path: str, body: dict | None = None,
         auth: tuple[str, str] | None = None) -> requests.Response:
    """One REST call to the stack's MLflow (`auth` None: no credentials at all)."""
    url = handle.settings.tracking_uri + API + path
    if method == "GET":
        return requests.get(url, params=body, auth=auth, timeout=30)
    return requests.request(method, url, json=body, auth=auth, timeout=30)


def writes(handle: StackHandle, version: str) -> dict[str, tuple[str, str, dict]]:
    """One write of each kind the registry takes, against the served model and one of its versions."""
    name = handle.settings.model_name
    return {
        "move alias champion": ("POST", "/registered-models/alias", {"name": name, "alias": "champion",
                                                                     "version": version}),
        "set alias challenger": ("POST", "/registered-models/alias", {"name": name, "alias": "challenger",
                                                                      "version": version}),
        "remove alias champion": ("DELETE", "/registered-models/alias", {"name": name, "alias": "champion"}),
        "set a model tag": ("POST", "/registered-models/set-tag", {"name": name, "key": "ab_config",
                                                                   "value": "{}"}),
        "set a version tag": ("POST", "/model-versions/set-tag", {"name": name, "version": version,
                                                                  "key": "validation_status", "value": "x"}),
        "register a version": ("POST", "/model-versions/create", {"name": name, "source": f"models:/{name}/{version}"}),
        "create a model": ("POST", "/registered-models/create", {"name": "planted-model"}),
        "rename the model": ("POST", "/registered-models/rename", {"name": name, "new_name": "moved-away"}),
    }


@contextlib.contextmanager
def acting_as(handle: StackHandle, name: str) -> Iterator[None]:
    """MLflow's client in this process acts as account `name` (it reads the variables on every request)."""
    saved = {var: os.environ.get(var) for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = account(handle, name)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def secret_values(handle: StackHandle) -> dict[str, str]:
    """Every secret of the stack by name: its secrets file and PostgreSQL's password."""
    return {**handle.secrets, "postgres_password": handle.cluster().password()}


@dataclass(frozen=True)
class Seen:
    """One running process of the stack: the program it belongs to, its command line and environment."""

    program: str
    pid: int
    ppid: int
    cmdline: str
    environ: dict[str, str]


def _environ(pid: int) -> dict[str, str]:
    """/proc/<pid>/environ, as root reads it (the environment the process was started with)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def processes(handle: StackHandle) -> list[Seen]:
    """supervisord and every process below it, each named by its program (`supervisord` for itself)."""
    supervisord = int((Paths.of(handle.settings).supervisor / "supervisord.pid").read_text())
    mains = {info["pid"]: name for name, info in run.manager(handle.settings).processes().items() if info["pid"]}
    seen = []
    for proc in [psutil.Process(supervisord), *psutil.Process(supervisord).children(recursive=True)]:
        # a task's short-lived process (the scheduler runs the DAGs meanwhile) may end while it is looked at
        with contextlib.suppress(psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            seen.append(Seen(_owner(proc, supervisord, mains), proc.pid, proc.ppid(), " ".join(proc.cmdline()),
                             _environ(proc.pid)))
    return seen


def _owner(proc: psutil.Process, supervisord: int, mains: dict[int, str]) -> str:
    """The program whose main process `proc` descends from (`reaper` for supervisord's event listener)."""
    walk = proc
    while walk is not None and walk.pid != supervisord:
        if walk.pid in mains:
            return mains[walk.pid]
        walk = walk.parent()
    return "supervisord" if proc.pid == supervisord else "reaper"


def processes_of(seen: list[Seen], program: str) -> list[Seen]:
    """The processes of one program, its main process first."""
    mine = [process for process in seen if process.program == program]
    pids = {process.pid for process in mine}
    return sorted(mine, key=lambda process: process.ppid in pids)


def declared_environments(handle: StackHandle) -> dict[str, dict[str, str]]:
    """Each program's own `environment=` as supervisord reads it from the rendered config (its own parser)."""
    options = ServerOptions()
    options.configfile = str(run.manager(handle.settings).config)
    options.process_config(do_usage=False)
    return {config.name: dict(config.environment or {})
            for group in options.process_group_configs for config in group.process_configs}


def files_holding(root: Path, secrets: dict[str, str], skip: set[Path]) -> dict[str, list[str]]:
    """file -> names of the secrets it contains, for every regular file below `root` but `skip` (files, or
    directories whose whole content is skipped)."""
    needles = {name: value.encode() for name, value in secrets.items()}
    found = {}
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink() or path in skip or any(d in path.parents for d in skip):
            continue
        data = path.read_bytes()
        names = [name for name, value in needles.items() if value in data]
        if names:
            found[str(path)] = names
    return found


class Planted:
    """A model file as an attacker would swap it in: unpickling it runs code (here: it creates `marker`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


def stored_model_file(handle: StackHandle, version: str) -> Path:
    """The pickle of a registered version in the stack's artifact store on disk (what MLflow serves from)."""
    client = registry.connect(handle.settings.tracking_uri)
    source = client.get_model_version(handle.settings.model_name, version).source
    model_id = source.removeprefix("models:/")
    found = list((handle.settings.mlflow_dir / "artifacts").glob(f"*/models/{model_id}/artifacts/model.pkl"))
    assert len(found) == 1, f"v{version} ({source}): {found}"
    return found[0]


def refusals(url: str, alias: str, version: str) -> float:
    """ticket_ab_model_refusals_total of one replica for `alias` v`version`, summed over reasons."""
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "ticket_ab_model_refusals_total"
               and (sample.labels.get("alias"), sample.labels.get("version")) == (alias, version))


def predict(handle: StackHandle, url: str, text: str) -> requests.Response:
    """One scoring request with the stack's client token (when the routers take one)."""
    token = handle.secrets.get("client_token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(url + "/predict", json={"text": text, "customer_id": "security-test"}, headers=headers,
                         timeout=30)
