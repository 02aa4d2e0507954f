"""`ticket-ab export --format onnx` as a user runs it: a real process against a real MLflow server, on a word+char
model registered as champion; the file it writes scores like the registered pipeline and the version records it."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from load_test.simulate.generator import generate
from ops.env import REPO, child_env
from retrain.ml.automl import served_pipeline
from retrain.ml.features import text_pipeline
from retrain.ml.onnx_convert import MAX_PROBABILITY_DIFF, MIN_SAME_TOPIC, OnnxScorer
from ticket_ab import registry

PARITY_LINE = re.compile(r"parity on (\d+) tickets: ([\d.]+)% identical topics, max probability difference (\S+) ")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


@pytest.fixture
def champion(make_settings, mlflow_server, tmp_path):
    """A small `svm_wc` pipeline (word and char_wb grams, calibrated LinearSVC) registered as champion."""
    settings = make_settings(tracking_uri=mlflow_server.uri)
    tickets = generate("baseline", 600, 5, ru_share=0.3)
    pipeline = served_pipeline("svm_wc").fit(tickets[["text"]], tickets["topic"])
    version = registry.publish(settings.tracking_uri, settings.model_name, pipeline, tickets[["text"]].head(2),
                               alias=registry.CHAMPION, artifact_root=tmp_path / "artifacts")
    return settings, version, pipeline


def test_export_writes_a_checked_onnx_file_and_tags_the_version(champion, tmp_path):
    settings, version, pipeline = champion
    out = tmp_path / "export" / "champion.onnx"
    result = run_cli("export", "--format", "onnx", "--alias", "champion", "--out", str(out), env=child_env(settings))
    assert result.returncode == 0, result.stderr
    n, same, diff = PARITY_LINE.search(result.stdout).groups()
    assert int(n) == 2000 and float(same) / 100 >= MIN_SAME_TOPIC and float(diff) <= MAX_PROBABILITY_DIFF
    data = out.read_bytes()
    tags = registry.version_for(registry.connect(settings.tracking_uri), settings.model_name, "champion").tags
    assert tags["onnx_sha256"] == hashlib.sha256(data).hexdigest()
    assert tags["onnx_parity_passed"] == "true" and tags["onnx_parity_tickets"] == "2000"
    assert float(tags["onnx_parity_same_topic"]) == pytest.approx(float(same) / 100, abs=1e-6)
    texts = ["Outlook: вложения не открываются, ошибка 0x80070005", "VPN keeps dropping since v3.14.2"]
    want = pipeline.predict_proba(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(OnnxScorer(data).probabilities(texts), want, atol=MAX_PROBABILITY_DIFF)


def test_export_of_a_missing_alias_is_one_error_line(make_settings, mlflow_server, tmp_path):
    settings = make_settings(tracking_uri=mlflow_server.uri)
    out = tmp_path / "challenger.onnx"
    result = run_cli("export", "--format", "onnx", "--alias", "challenger", "--out", str(out), env=child_env(settings))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: model {settings.model_name!r} has no 'challenger' version to export "
                                     "(see `ticket-ab status`)")
    assert not out.exists()


def test_export_without_a_registry_is_one_error_line(tmp_path, make_settings):
    settings = make_settings(tracking_uri="http://127.0.0.1:9")
    result = run_cli("export", "--format", "onnx", "--out", str(tmp_path / "m.onnx"), env=child_env(settings))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: MLflow tracking server at http://127.0.0.1:9 is not reachable")


def test_export_of_a_part_without_converter_names_it_and_writes_nothing(make_settings, mlflow_server, tmp_path):
    settings = make_settings(tracking_uri=mlflow_server.uri)
    tickets = generate("baseline", 200, 5)
    pipeline = text_pipeline(LogisticRegression(max_iter=200))
    pipeline.steps[0][1].transformers[0] = ("tfidf", TfidfVectorizer(analyzer="char"), "text")
    pipeline.fit(tickets[["text"]], tickets["topic"])
    version = registry.publish(settings.tracking_uri, settings.model_name, pipeline, tickets[["text"]].head(2),
                               alias=registry.CHAMPION, artifact_root=tmp_path / "artifacts")
    out = tmp_path / "m.onnx"
    result = run_cli("export", "--format", "onnx", "--out", str(out), env=child_env(settings))
    assert result.returncode == 2 and "Traceback" not in result.stderr and not out.exists()
    assert result.stderr.strip() == (f"error: cannot export v{version} as ONNX: features: analyzer 'char' has no "
                                     "ONNX converter (word, char_wb)")
