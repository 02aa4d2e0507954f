"""`pip install ".[router]"` in a clean venv serves the router: what the router image installs, and nothing heavy.

The venv gets the router's pins (router/requirements.txt, what Dockerfile.flask installs) and the
project as a wheel with only its `router` extra. gunicorn then runs from an empty working directory,
so every import comes from the installed package, not from this checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from processes import start

from ops.env import REPO, child_env
from ops.ports import free_port
from ops.servers import GUNICORN_CONF, Server
from tests.integration.router.router_harness import EXAMPLE
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab import registry
from ticket_ab.names import CHAMPION
from ticket_ab.settings import get_settings

UV = Path(sys.executable).with_name("uv")
HEAVY = ("pycaret", "evidently", "apache-airflow", "cleanlab", "statsmodels", "matplotlib")


def _source_copy(target: Path) -> Path:
    """The project's packaged files, copied: building a wheel writes build/ and *.egg-info next to them."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    for package in ("ticket_ab", "router", "retrain", "analysis", "load_test"):
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(scope="module")
def router_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("router-venv") / "venv"
    source = _source_copy(tmp_path_factory.mktemp("router-source"))
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                    "-c", str(REPO / "router" / "requirements.txt"), f"{source}[router]"],
                   check=True, timeout=600, cwd=source)
    return venv


def _installed(venv: Path) -> set[str]:
    listing = subprocess.run([str(UV), "pip", "list", "--format", "json", "--python", str(venv / "bin" / "python")],
                             check=True, capture_output=True, text=True, timeout=60).stdout
    return {package["name"].lower() for package in json.loads(listing)}


def test_the_router_extra_installs_no_training_stack(router_venv):
    installed = _installed(router_venv)
    assert {"ticket-ab", "flask", "gunicorn", "mlflow-skinny", "scikit-learn"} <= installed
    assert not installed & set(HEAVY)


def test_the_installed_router_serves_a_registered_champion(router_venv, mlflow_server, tmp_path):
    settings = get_settings(home=tmp_path / "home", tracking_uri=mlflow_server.uri, model_name="packaged-router",
                            router={"port": free_port(), "workers": 1, "threads": 2})
    registry.publish(settings.tracking_uri, settings.model_name, fitted_pipeline(seed=0), EXAMPLE, alias=CHAMPION,
                     why="package test")
    workdir = tmp_path / "empty-cwd"
    workdir.mkdir()
    cmd = [str(router_venv / "bin" / "gunicorn"), "-c", str(REPO / GUNICORN_CONF), "router.wsgi:app"]
    url = f"http://127.0.0.1:{settings.router.port}"
    service = start(Server("packaged router", cmd, child_env(settings), f"{url}/ready"), tmp_path / "gunicorn.log",
                    120, cwd=workdir)
    try:
        request = urllib.request.Request(f"{url}/predict", data=json.dumps({"text": "vpn is down"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        assert body["model_alias"] == CHAMPION and body["topic"] and body["logged"] is True
    finally:
        service.stop()
