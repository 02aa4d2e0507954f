"""Router test kit: small real training data, a fake registry, an in-memory model store, the error-shape check.

Fitting `baseline_pipeline` on 240 pattern tickets (8 helpdesk topics) takes well under a second,
and the topics are separable enough that "vpn drops" predicts `network`, so tests assert on real
predictions. Plain module (not a conftest) so unit tests, integration tests and fixtures can import it.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
from sklearn.linear_model import LogisticRegression

from load_test.simulate.generator import generate
from retrain.ml.features import WORD_CHAR, baseline_pipeline, text_pipeline
from router.config import ConfigUnavailable
from router.models import FROM_REGISTRY, LoadedModel, Models, priority_parts
from router.predictor import compile_both
from router.store import published, shared_config
from ticket_ab.names import CHALLENGER, CHAMPION
from ticket_ab.registry import AB_CONFIG_TAG, RegistryState, RegistryUnavailable, RegistryVersion, model_digest
from ticket_ab.schema import TOPICS
from ticket_ab.settings import Settings
from ticket_ab.twohead import TwoHeadModel

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


def fitted_two_head(seed: int = 0, n: int = 400, urgent_threshold: float | None = None,
                    priority: Any = "lr") -> TwoHeadModel:
    """A real two-head model (word + character TF-IDF shared by a LogisticRegression topic head and a priority head,
    `priority` "lr" for a LogisticRegression, an estimator, or None for none) on `n` generated tickets, which
    carry a priority written into their text (load_test.simulate.generator)."""
    data = generate("baseline", n, seed=seed)
    head = LogisticRegression(max_iter=1000, random_state=seed) if priority == "lr" else priority
    features = text_pipeline(LogisticRegression(), WORD_CHAR).steps[0][1]
    model = TwoHeadModel(features, LogisticRegression(C=10.0, max_iter=1000, random_state=seed), head,
                         urgent_threshold)
    return model.fit(data[["text"]], data["topic"], priority=data["priority"] if head is not None else None)


ADMIN_TOKEN = "admin-secret-token"
FEEDBACK_TOKEN = "feedback-secret-token"


def loaded(pipeline: Any, alias: str, version: str, source: str = FROM_REGISTRY) -> LoadedModel:
    """A LoadedModel as the store builds it, minus the warm-up (so a model that always raises fits too)."""
    score, scoring = compile_both(pipeline)
    priorities, threshold = priority_parts(pipeline)
    return LoadedModel(alias=alias, version=version, run_id=f"run-{version}", pipeline=pipeline,
                       classes=tuple(str(c) for c in pipeline.classes_), score=score, scoring=scoring,
                       source=source, loaded_at="2026-11-24T11:00:00", priority_classes=priorities,
                       urgent_threshold=threshold)


class Exploding:
    """A challenger whose every prediction raises, as a model with a broken dependency would."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes_ = list(classes)

    def predict_proba(self, frame: Any) -> Any:
        raise RuntimeError("challenger exploded")


class FakeRegistry:
    """Versions, aliases and tags in memory, shared by every "replica" given it; `down` fails every call.

    Each version's real MLflow sklearn model directory of `pipelines[version]` is written once, as a
    registration stores it, with its digest recorded (`digests`; None: a version registered without
    one); `download` copies it, and `tamper` changes its files afterwards, as a swap in the store would.
    """

    def __init__(self, pipelines: dict[str, Any] | None = None) -> None:
        self.pipelines = pipelines or {}
        self.runs = {version: f"run-{version}" for version in self.pipelines}
        self.pointers: dict[str, str | None] = {CHAMPION: None, CHALLENGER: None}
        self.tags: dict[str, str] = {}
        self.down = False
        self.downloads: list[str] = []
        self.calls = 0
        self.digests: dict[str, str | None] = {}
        self._store = tempfile.TemporaryDirectory(prefix="fake-registry-")
        self._storing = threading.Lock()  # replicas in threads ask for the same version at once

    def stored(self, version: str) -> Path:
        """The version's model directory in the fake artifact store, written (and its digest recorded) once."""
        path = Path(self._store.name) / version
        with self._storing:
            if not path.exists():
                mlflow.sklearn.save_model(self.pipelines[version], str(path), serialization_format="cloudpickle",
                                          pip_requirements=[])
                self.digests.setdefault(version, model_digest(path))
        return path

    def tamper(self, version: str) -> None:
        """Swap the version's pickle after registration: another model's bytes, the digest left as recorded."""
        other = next(v for v in self.pipelines if v != version)
        shutil.copy(self.stored(other) / "model.pkl", self.stored(version) / "model.pkl")

    def state(self) -> RegistryState:
        self._answer()
        return RegistryState({alias: self._version(v) if v else None for alias, v in self.pointers.items()},
                             self.tags.get(AB_CONFIG_TAG))

    def _version(self, version: str) -> RegistryVersion:
        if version in self.pipelines:
            self.stored(version)
        return RegistryVersion(version, self.runs.get(version, f"run-{version}"), self.digests.get(version))

    def download(self, version: str, dst: Path) -> Path:
        self.downloads.append(version)
        shutil.copytree(self.stored(version), dst)
        return dst

    def _answer(self) -> None:
        if self.down:
            raise RegistryUnavailable("registry is down (test)")
        self.calls += 1


class MemoryStore:
    """The Store interface over fitted pipelines held in memory and a fake registry (unit tests: no MLflow).

    The A/B config is the real one (`router.config`, in the settings' SQLite config store) with the fake
    registry's aliases; `refresh` is one poll.
    """

    def __init__(self, champion: LoadedModel | None, challenger: LoadedModel | None, settings: Settings,
                 registry: FakeRegistry | None = None) -> None:
        self.models = Models(champion, challenger)
        self.registry = registry or FakeRegistry()
        self.registry.pointers.update({alias: model.version for alias, model in
                                       ((CHAMPION, champion), (CHALLENGER, challenger)) if model})
        self.config = shared_config(settings)
        self.started = False

    @property
    def reachable(self) -> bool:
        return not self.registry.down

    @reachable.setter
    def reachable(self, value: bool) -> None:
        self.registry.down = not value

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
        self.refresh()

    def refresh(self) -> None:
        """One poll, as ModelStore's: the models stay as set, the config follows the store and the aliases
        (an unreachable store keeps the config in effect)."""
        with contextlib.suppress(ConfigUnavailable):
            self.config.follow(None if self.registry.down else published(self.registry.state()))

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
