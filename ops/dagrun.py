"""Run the Airflow DAG locally: `make pipeline` (one `airflow dags test`) and `make airflow` (the UI).

Both use AIRFLOW_HOME=$TICKET_AB_HOME/airflow with sqlite, examples off and this repo's
`airflow/dags` as the DAGs folder, so a local run needs no Airflow setup. `airflow db migrate`
(~11 s) runs only on first use, or after an Airflow upgrade: a marker file records the version
migrated to, and a file lock keeps two concurrent first runs from migrating at once.

The DAG runs in the `airflow` process, which reads our settings from the environment; the
settings passed here are therefore exported (TICKET_AB_HOME, MLFLOW_TRACKING_URI, ...). Its working
directory is AIRFLOW_HOME, so PyCaret's `logs.log` lands there instead of in the repo.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from ops.env import REPO, child_env
from ops.health import ServiceError
from ops.ports import airflow_endpoint
from retrain.tasks.results import XCOM_CLASSES
from ticket_ab.durable import UMASK
from ticket_ab.names import DAG_ID
from ticket_ab.settings import Settings, env_names, get_settings

DAGS_FOLDER = REPO / "airflow" / "dags"
MIGRATED_MARKER = ".migrated"
STANDALONE_PARALLELISM = 4


def dag_secrets(settings: Settings) -> dict[str, str]:
    """The only secrets the DAGs hold: the experiment DAG changes the split with the admin token, and alerts go
    to the chat URLs (which carry bot tokens). Passed in the environment, never on a command line."""
    names = env_names()
    held = {names["router.admin_token"]: settings.router.admin_token, names["alert.urls"]: settings.alert.urls}
    return {name: value for name, value in held.items() if value}


def airflow_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every `airflow` process we start: its home, its DB, our DAGs, our settings."""
    home = settings.airflow_dir
    return child_env(settings, {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": XCOM_CLASSES,  # the tasks' typed results
        **(extra or {}),
    })


def _airflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]


def ensure_db(settings: Settings, *, stdout=None) -> bool:
    """Migrate the sqlite DB if this home has not been migrated to this Airflow version; True if it ran."""
    home = settings.airflow_dir
    home.mkdir(parents=True, exist_ok=True)
    marker = home / MIGRATED_MARKER
    wanted = version("apache-airflow-core")
    with open(home / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == wanted:
            return False
        note = f"first use of {home}: airflow db migrate (Airflow {wanted})\n"
        if stdout is None:
            print(note, end="", flush=True)
        else:
            stdout.write(note.encode())
            stdout.flush()
        result = subprocess.run(_airflow("db", "migrate"), env=airflow_env(settings), cwd=home,
                                stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
        if result.returncode != 0:
            raise ServiceError(f"airflow db migrate failed with exit code {result.returncode} "
                               f"(AIRFLOW_HOME={home})")
        marker.write_text(wanted + "\n")
        return True


def run_dag(logical_date: str | None = None, *, settings: Settings | None = None, log_path: Path | None = None,
            timeout_s: float | None = None, dag_id: str = DAG_ID) -> int:
    """`airflow dags test DAG_ID [logical_date]` (the drift/retrain DAG by default); returns its exit code
    (non-zero: run failed).

    Output streams to the terminal, or to `log_path` when given (tests read it afterwards).
    """
    settings = settings or get_settings()
    cmd = _airflow("dags", "test", dag_id, *([logical_date] if logical_date else []))
    env = {**airflow_env(settings), **dag_secrets(settings)}  # the tasks run in this process
    if log_path is None:
        ensure_db(settings)
        return subprocess.run(cmd, env=env, cwd=settings.airflow_dir, timeout=timeout_s, umask=UMASK).returncode
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        ensure_db(settings, stdout=out)
        return subprocess.run(cmd, env=env, cwd=settings.airflow_dir, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout_s, umask=UMASK).returncode


def standalone_env(settings: Settings) -> dict[str, str]:
    """`airflow standalone` for the UI, kept small: 4 task slots (default 32 forks ~40 processes),
    one API worker, bound to 127.0.0.1:airflow_port and with the execution API pointed at it."""
    endpoint = airflow_endpoint(settings)
    return airflow_env(settings, {
        "AIRFLOW__CORE__PARALLELISM": str(STANDALONE_PARALLELISM),
        "AIRFLOW__API__HOST": endpoint.host,
        "AIRFLOW__API__PORT": str(endpoint.port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": endpoint.url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{endpoint.url}/execution/",
        **dag_secrets(settings),  # standalone's scheduler runs the tasks
    })


def standalone(settings: Settings | None = None) -> int:
    """Run `airflow standalone` in the foreground until Ctrl-C; returns its exit code."""
    settings = settings or get_settings()
    endpoint = airflow_endpoint(settings)
    endpoint.ensure_free()
    ensure_db(settings)
    print(f"Airflow UI on {endpoint.url} (AIRFLOW_HOME={settings.airflow_dir}); "
          f"the admin password is in {settings.airflow_dir}/simple_auth_manager_passwords.json.generated", flush=True)
    try:
        return subprocess.run(_airflow("standalone"), env=standalone_env(settings), cwd=settings.airflow_dir).returncode
    except KeyboardInterrupt:
        return 0
