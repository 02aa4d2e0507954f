"""`python load_test/testing.py` and `python analysis/analysis.py` run as scripts from the repo root, as the
README and the demo run them (real processes, so not in the unit tier)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from experiment_logs import LogSpec, Phase, write_ab_logs
from fake_router import FakeRouter

from ops import env as services


@pytest.fixture
def fake():
    with FakeRouter() as router:
        yield router


def test_the_load_test_runs_as_a_script_from_the_repo_root(fake):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "load_test/testing.py", "--url", fake.url, "--n", "5",
                             "--feedback-rate", "0", "--no-progress"], capture_output=True, text=True,
                            cwd=services.REPO, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["requests"] == 5


def test_the_analysis_runs_as_a_script_from_the_repo_root(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    logs = write_ab_logs(tmp_path / "logs", LogSpec(phases=[Phase(300)]))
    result = subprocess.run([sys.executable, "analysis/analysis.py", "--logs", str(logs), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, cwd=services.REPO, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "VERDICT:" in result.stdout and (tmp_path / "r" / "ab_report.html").exists()
