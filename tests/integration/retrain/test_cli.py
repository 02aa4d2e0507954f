"""`python -m retrain` as a user runs it: a real process against a real MLflow server."""

import subprocess
import sys

import pandas as pd
import pytest

from ops.env import REPO, child_env
from ops.ports import free_port
from retrain.ml.evaluate import predict
from ticket_ab import registry
from ticket_ab.settings import get_settings


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


@pytest.fixture
def env(make_settings, mlflow_server):
    """The CLI's environment: this test's home and model, the shared MLflow, a quick model search, and a gate
    that judges the tiny file's holdout (the default asks for 30 untouched gold tickets)."""
    return child_env(make_settings(tracking_uri=mlflow_server.uri, training={"automl_models": "lr,nb"},
                                          relabel={"min_holdout": 10}))


def test_bad_training_file_is_one_error_line_not_a_traceback(tmp_path, env):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(bad, index=False)
    result = run_cli("train", "--data", str(bad), env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: {bad} (1 rows): missing required column 'text'" in result.stderr


def test_unreachable_tracking_server_is_reported_with_advice(env):
    result = run_cli("status", "--tracking-uri", "http://127.0.0.1:9", env=env)
    assert result.returncode == 2
    assert "not reachable" in result.stderr and "Traceback" not in result.stderr


def test_train_status_promote_evaluate_round_trip(tmp_path, env, tiny_tickets):
    data = tmp_path / "tiny.csv"
    tiny_tickets.to_csv(data, index=False)
    first = run_cli("train", "--data", str(data), "--alias", "champion", env=env)
    assert first.returncode == 0, first.stderr
    assert "alias moved: champion: none -> v1" in first.stdout
    second = run_cli("train", "--data", str(data), "--alias", "challenger", env=env)
    assert second.returncode == 0, second.stderr

    status = run_cli("status", env=env)
    assert "champion   v1" in status.stdout and "challenger v2" in status.stdout

    evaluate = run_cli("evaluate", "--data", str(data), env=env)
    assert evaluate.returncode == 0, evaluate.stderr
    assert "champion v1: accuracy" in evaluate.stdout and "challenger v2: accuracy" in evaluate.stdout

    scored_path = tmp_path / "scored.csv"
    predicted = run_cli("predict", "--data", str(data), "--out", str(scored_path), "--no-progress", env=env)
    assert predicted.returncode == 0, predicted.stderr
    assert f"wrote {len(tiny_tickets)} rows" in predicted.stdout and str(scored_path) in predicted.stdout
    scored = pd.read_csv(scored_path)
    settings = get_settings(tracking_uri=env["MLFLOW_TRACKING_URI"], model_name=env["TICKET_AB_MODEL_NAME"])
    registry.connect(settings.tracking_uri)
    champion = registry.load_pipeline(settings.model_name, "champion")
    assert scored["predicted_topic"].tolist() == predict(champion, tiny_tickets).tolist()
    assert set(scored["model_version"].astype(str)) == {"1"} and scored["confidence"].between(0, 1).all()

    promote = run_cli("promote", "--reason", "cli test", env=env)
    assert "champion: v1 -> v2" in promote.stdout and "previous: none -> v1" in promote.stdout
    rollback = run_cli("rollback", env=env)
    assert "champion: v2 -> v1" in rollback.stdout


def test_rollback_without_previous_says_so(env):
    result = run_cli("rollback", env=env)
    assert result.returncode == 2
    assert "no 'previous' version to roll back to" in result.stderr


def test_mlflow_on_a_taken_port_is_one_error_line_naming_the_variable(tmp_path, taken_port):
    result = run_cli("mlflow", env=child_env(get_settings(home=tmp_path, mlflow_port=taken_port)))
    assert result.returncode == 2
    assert result.stderr == (f"error: port {taken_port} (MLflow) is already in use on 127.0.0.1; "
                             "set TICKET_AB_MLFLOW_PORT to another port\n")


def test_demo_refuses_a_taken_router_port_before_starting_anything(tmp_path, taken_port):
    settings = get_settings(home=tmp_path, mlflow_port=free_port(), router={"port": taken_port})
    result = run_cli("demo", env=child_env(settings))
    assert result.returncode == 2
    assert result.stderr == (f"error: port {taken_port} (router) is already in use on 127.0.0.1; "
                             "set TICKET_AB_PORT to another port\n")
    assert not settings.mlflow_dir.exists()
