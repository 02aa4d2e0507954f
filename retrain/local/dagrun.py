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

import argparse
import fcntl
import os
import subprocess
import sys
from pathlib import Path

from retrain.contracts.names import DAG_ID
from retrain.contracts.settings import Settings, get_settings, to_env
from retrain.local import launch as services

DAGS_FOLDER = services.REPO / "airflow" / "dags"
MIGRATED_MARKER = ".migrated"
STANDALONE_HOST, STANDALONE_PORT, STANDALONE_PARALLELISM = "127.0.0.1", 8080, 4


def airflow_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every `airflow` process we start: its home, its DB, our DAGs, our settings."""
    home = settings.airflow_dir
    env = services.python_env({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        **to_env(settings),
    })
    # `airflow standalone` starts its components as `airflow ...` from PATH: make it this venv's.
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    env.update(extra or {})
    return env


def _airflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow-core")


def ensure_db(settings: Settings, *, stdout=None) -> bool:
    """Migrate the sqlite DB if this home has not been migrated to this Airflow version; True if it ran."""
    home = settings.airflow_dir
    home.mkdir(parents=True, exist_ok=True)
    marker = home / MIGRATED_MARKER
    wanted = _airflow_version()
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
            raise RuntimeError(f"airflow db migrate failed with exit code {result.returncode} (AIRFLOW_HOME={home})")
        marker.write_text(wanted + "\n")
        return True


def run_dag(logical_date: str | None = None, *, settings: Settings | None = None, log_path: Path | None = None,
            timeout_s: float | None = None) -> int:
    """`airflow dags test ticket_drift_retrain [logical_date]`; returns its exit code (non-zero: run failed).

    Output streams to the terminal, or to `log_path` when given (tests read it afterwards).
    """
    settings = settings or get_settings()
    cmd = _airflow("dags", "test", DAG_ID, *([logical_date] if logical_date else []))
    if log_path is None:
        ensure_db(settings)
        return subprocess.run(cmd, env=airflow_env(settings), cwd=settings.airflow_dir, timeout=timeout_s).returncode
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        ensure_db(settings, stdout=out)
        return subprocess.run(cmd, env=airflow_env(settings), cwd=settings.airflow_dir, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout_s).returncode


def standalone_env(settings: Settings) -> dict[str, str]:
    """`airflow standalone` for the UI, kept small: 4 task slots (default 32 forks ~40 processes),
    one API worker, bound to 127.0.0.1:8080 and with the execution API pointed at it."""
    url = f"http://{STANDALONE_HOST}:{STANDALONE_PORT}"
    return airflow_env(settings, {
        "AIRFLOW__CORE__PARALLELISM": str(STANDALONE_PARALLELISM),
        "AIRFLOW__API__HOST": STANDALONE_HOST,
        "AIRFLOW__API__PORT": str(STANDALONE_PORT),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
    })


def standalone(settings: Settings | None = None) -> int:
    """Run `airflow standalone` in the foreground until Ctrl-C; returns its exit code."""
    settings = settings or get_settings()
    ensure_db(settings)
    print(f"Airflow UI on http://{STANDALONE_HOST}:{STANDALONE_PORT} (AIRFLOW_HOME={settings.airflow_dir}); "
          f"the admin password is in {settings.airflow_dir}/simple_auth_manager_passwords.json.generated", flush=True)
    try:
        return subprocess.run(_airflow("standalone"), env=standalone_env(settings), cwd=settings.airflow_dir).returncode
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m retrain.local.dagrun [LOGICAL_DATE] [--standalone]`: one DAG run, or the Airflow UI."""
    parser = argparse.ArgumentParser(prog="python -m retrain.local.dagrun", description=__doc__.splitlines()[0])
    parser.add_argument("logical_date", nargs="?", help="ISO date or datetime of the run (default: now)")
    parser.add_argument("--standalone", action="store_true", help="start `airflow standalone` instead")
    args = parser.parse_args(argv)
    if args.standalone:
        return standalone()
    return run_dag(args.logical_date)


if __name__ == "__main__":
    sys.exit(main())
