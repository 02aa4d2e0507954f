"""Router test kit: small real training data, an in-memory model store, and the error-shape check.

Fitting `baseline_pipeline` on 240 pattern tickets (8 helpdesk topics) takes well under a second,
and the topics are separable enough that "vpn drops" predicts `network`, so tests assert on real
predictions. Plain module (not a conftest) so unit tests, integration tests and fixtures can import it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pandas as pd

from retrain.contracts.schema import TOPICS
from retrain.ml.features import baseline_pipeline
from router.predictor import compile_scorer
from router.store import FROM_REGISTRY, LoadedModel, Models

WORDS = {
    "access": ["password", "login", "locked out", "account", "permission", "sso", "mfa code", "reset link"],
    "billing": ["invoice", "charge", "refund", "payment", "subscription", "receipt", "overcharged", "billing"],
    "email": ["outlook", "mailbox", "inbox", "attachment", "spam folder", "smtp", "calendar invite", "signature"],
    "hardware": ["laptop", "monitor", "keyboard", "printer", "battery", "docking station", "mouse", "screen"],
    "hr_onboarding": ["onboarding", "new hire", "badge", "contract", "payroll", "orientation", "start date", "hr"],
    "network": ["vpn", "wifi", "dns", "latency", "router", "firewall", "proxy", "ethernet"],
    "purchase": ["license", "quote", "purchase order", "vendor", "procurement", "seats", "budget", "renewal"],
    "software_bug": ["crash", "exception", "freezes", "bug", "update broke", "stack trace", "regression", "hangs"],
}
PATTERNS = [
    "{a} problem since this morning, {b} as well",
    "hi team, my {a} is not working and the {b} too",
    "please help: {a} issue, {b} keeps failing",
    "urgent {a} and {b} request from the sales office",
    "since yesterday the {a} does not work; {b} also affected",
    "question about {a} ({b}) for our department",
]
assert set(WORDS) == set(TOPICS)


def sample_tickets(per_topic: int = 30, seed: int = 0) -> pd.DataFrame:
    """`per_topic` tickets for each of the 8 topics, as a DataFrame with `text` and `topic`."""
    rng = random.Random(seed)
    rows = []
    for topic, words in WORDS.items():
        for _ in range(per_topic):
            a, b = rng.sample(words, 2)
            rows.append({"text": rng.choice(PATTERNS).format(a=a, b=b), "topic": topic})
    return pd.DataFrame(rows)


def fitted_pipeline(seed: int = 0, per_topic: int = 30):
    """A real TF-IDF + LogisticRegression pipeline fitted on `sample_tickets`."""
    data = sample_tickets(per_topic, seed)
    return baseline_pipeline(seed).fit(data[["text"]], data["topic"])


ADMIN_TOKEN = "admin-secret-token"
FEEDBACK_TOKEN = "feedback-secret-token"


def loaded(pipeline: Any, alias: str, version: str, source: str = FROM_REGISTRY) -> LoadedModel:
    """A LoadedModel as the store builds it, minus the warm-up (so a model that always raises fits too)."""
    score, scoring = compile_scorer(pipeline)
    return LoadedModel(alias=alias, version=version, run_id=f"run-{version}", pipeline=pipeline,
                       classes=tuple(str(c) for c in pipeline.classes_), score=score, scoring=scoring,
                       source=source, loaded_at="2026-11-24T11:00:00")


class Exploding:
    """A challenger whose every prediction raises, as a model with a broken dependency would."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes_ = list(classes)

    def predict_proba(self, frame: Any) -> Any:
        raise RuntimeError("challenger exploded")


class MemoryStore:
    """The Store interface over fitted pipelines held in memory (unit tests only: no MLflow)."""

    def __init__(self, champion: LoadedModel | None, challenger: LoadedModel | None) -> None:
        self.models = Models(champion, challenger)
        self.reachable: bool | None = True
        self.started = False

    def snapshot(self) -> Models:
        return self.models

    def status(self) -> dict[str, Any]:
        m = self.models
        return {"model_name": "memory", "champion": m.champion.describe() if m.champion else None,
                "challenger": m.challenger.describe() if m.challenger else None,
                "source": m.champion.source if m.champion else None,
                "registry": {"reachable": self.reachable, "checked_at": None, "error": None}, "last_error": None}

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        """Nothing runs in the background here."""

    def set(self, **models: LoadedModel | None) -> None:
        self.models = replace(self.models, **models)


def check_error(response: Any, status: int, code: str, *mentions: str) -> dict[str, str]:
    """Every error is JSON with exactly `error` and `message`, and the message names the problem."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    for word in mentions:
        assert word in body["message"]
    assert "Traceback" not in body["message"] and "<html" not in response.get_data(as_text=True).lower()
    return body
