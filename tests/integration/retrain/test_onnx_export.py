"""`ticket-ab export --format onnx` as a user runs it: a real process against a real MLflow server, on a word+char
model registered as champion (an older one-head Pipeline, and a two-head topic + priority model with an urgent
threshold); the file it writes scores like the registered model and the version records it."""

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
from retrain.ml.onnx_convert import MAX_PROBABILITY_DIFF, MIN_SAME_LABEL, OnnxScorer
from ticket_ab import registry
from ticket_ab.twohead import TwoHeadModel

PARITY_LINE = re.compile(r"parity on (\d+) tickets: ([\d.]+)% identical topics, max probability difference (\S+) ")
PRIORITY_LINE = re.compile(r" and ([\d.]+)% identical priorities, max priority probability difference (\S+) "
                           r"\(meets the bar for each head")
TEXTS = ["Outlook: вложения не открываются, ошибка 0x80070005", "VPN keeps dropping since v3.14.2",
         "URGENT: production is down for every customer, we lose money every minute", "Счёт оплачен дважды, срочно!"]


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
    assert int(n) == 2000 and float(same) / 100 >= MIN_SAME_LABEL and float(diff) <= MAX_PROBABILITY_DIFF
    data = out.read_bytes()
    tags = registry.version_for(registry.connect(settings.tracking_uri), settings.model_name, "champion").tags
    assert tags["onnx_sha256"] == hashlib.sha256(data).hexdigest()
    assert tags["onnx_parity_passed"] == "true" and tags["onnx_parity_tickets"] == "2000"
    assert float(tags["onnx_parity_same_topic"]) == pytest.approx(float(same) / 100, abs=1e-6)
    assert "onnx_parity_same_priority" not in tags and PRIORITY_LINE.search(result.stdout) is None
    want = pipeline.predict_proba(pd.DataFrame({"text": TEXTS}))
    np.testing.assert_allclose(OnnxScorer(data).probabilities(TEXTS), want, atol=MAX_PROBABILITY_DIFF)


@pytest.fixture
def two_head_champion(make_settings, mlflow_server, tmp_path):
    """A small two-head model as training builds one (`svm_wc`'s word and char_wb grams and calibrated LinearSVC
    for the topic, a calibrated LinearSVC priority head on the same features) with an urgent threshold."""
    settings = make_settings(tracking_uri=mlflow_server.uri)
    tickets = generate("baseline", 600, 5, ru_share=0.3)
    served = served_pipeline("svm_wc")
    model = TwoHeadModel(served.named_steps["features"], served.named_steps["clf"],
                         served_pipeline("svm_wc").named_steps["clf"], urgent_threshold=0.3)
    model.fit(tickets[["text"]], tickets["topic"], priority=tickets["priority"])
    version = registry.publish(settings.tracking_uri, settings.model_name, model, tickets[["text"]].head(2),
                               alias=registry.CHAMPION, artifact_root=tmp_path / "artifacts")
    return settings, version, model


def test_export_of_a_two_head_model_checks_and_tags_both_heads(two_head_champion, tmp_path):
    settings, version, model = two_head_champion
    out = tmp_path / "champion.onnx"
    result = run_cli("export", "--format", "onnx", "--alias", "champion", "--out", str(out), env=child_env(settings))
    assert result.returncode == 0, result.stderr
    assert f"v{version} (champion) as ONNX: topic and priority (priority by urgent when P(urgent) >= 0.3)" in (
        result.stdout)
    n, same, diff = PARITY_LINE.search(result.stdout).groups()
    same_priority, priority_diff = PRIORITY_LINE.search(result.stdout).groups()
    assert int(n) == 2000 and float(same) / 100 >= MIN_SAME_LABEL and float(diff) <= MAX_PROBABILITY_DIFF
    assert float(same_priority) / 100 >= MIN_SAME_LABEL and float(priority_diff) <= MAX_PROBABILITY_DIFF
    tags = registry.version_for(registry.connect(settings.tracking_uri), settings.model_name, "champion").tags
    assert tags["onnx_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() and tags["onnx_parity_passed"] == "true"
    assert float(tags["onnx_parity_same_priority"]) == pytest.approx(float(same_priority) / 100, abs=1e-6)
    assert float(tags["onnx_parity_priority_max_probability_diff"]) == pytest.approx(float(priority_diff), rel=1e-2)
    got = OnnxScorer(out.read_bytes()).run(TEXTS)
    frame = pd.DataFrame({"text": TEXTS})
    topic, priority = model.predict_both(frame)
    np.testing.assert_allclose(got["probabilities"], topic, atol=MAX_PROBABILITY_DIFF)
    np.testing.assert_allclose(got["priority_probabilities"], priority, atol=MAX_PROBABILITY_DIFF)
    assert list(got["label"]) == list(model.predict(frame))
    assert list(got["priority_label"]) == list(model.predict_priority(frame))


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
