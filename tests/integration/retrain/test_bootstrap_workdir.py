"""Training keeps every file it makes under TICKET_AB_HOME, even on a local sqlite:/// store."""

import subprocess
import sys

import pytest

from ops.env import child_env
from ticket_ab.settings import get_settings

pytestmark = pytest.mark.slow


def test_bootstrap_on_a_local_store_leaves_the_working_directory_empty(tmp_path):
    # PyCaret opens logs.log in the working directory on import, and MLflow's default artifact root
    # for a database store is ./mlruns: a bootstrap run from any directory must leave neither.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    settings = get_settings(home=tmp_path / "home", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                            training={"automl_models": "lr,nb"})

    result = subprocess.run([sys.executable, "-m", "ops", "bootstrap", "--n", "400"], cwd=cwd,
                            env=child_env(settings), capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "alias moved: champion" in result.stdout
    assert sorted(p.name for p in cwd.iterdir()) == []
    assert list((settings.mlflow_dir / "artifacts").rglob("reference.parquet"))  # the artifacts went home
