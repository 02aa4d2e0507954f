"""Flask-tutorial-style fixtures: an app over an in-memory model store and a fake registry, and its test client."""

from __future__ import annotations

import pytest

from router import create_app
from router.models import LoadedModel
from tests.unit.router.router_testkit import (
    ADMIN_TOKEN,
    FEEDBACK_TOKEN,
    Exploding,
    FakeRegistry,
    MemoryStore,
    check_error,
    fitted_pipeline,
    fitted_two_head,
    loaded,
)
from ticket_ab.twohead import TwoHeadModel


@pytest.fixture(scope="session")
def champion_model() -> LoadedModel:
    return loaded(fitted_pipeline(seed=0), "champion", "1")


@pytest.fixture(scope="session")
def challenger_model() -> LoadedModel:
    return loaded(fitted_pipeline(seed=1, per_topic=20), "challenger", "2")


@pytest.fixture(scope="session")
def two_head() -> TwoHeadModel:
    """A fitted two-head model (topic + priority) on a few hundred generated tickets."""
    return fitted_two_head(seed=0)


@pytest.fixture
def exploding_challenger(champion_model: LoadedModel) -> LoadedModel:
    return loaded(Exploding(champion_model.classes), "challenger", "3")


@pytest.fixture
def settings(make_settings):
    return make_settings(router={"admin_token": ADMIN_TOKEN, "feedback_token": FEEDBACK_TOKEN, "split_b": 0.5},
                         rollout={"start": "configured"})  # the tests of the step start set their own


@pytest.fixture
def registry() -> FakeRegistry:
    """The registry every replica of a test shares: aliases and the A/B config tag."""
    return FakeRegistry()


@pytest.fixture
def store(settings, registry: FakeRegistry, champion_model: LoadedModel, challenger_model: LoadedModel) -> MemoryStore:
    return MemoryStore(champion_model, challenger_model, settings, registry)


@pytest.fixture
def app(settings, store: MemoryStore):
    app = create_app(settings, store=store)
    app.config["TESTING"] = True
    yield app
    app.extensions["ticket_ab"].requests.close()
    app.extensions["ticket_ab"].feedback.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin() -> dict[str, str]:
    """The admin's headers for POST /config: the token, and `If-Match: *` (change whatever is set)."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "If-Match": "*"}


@pytest.fixture
def agent() -> dict[str, str]:
    return {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


@pytest.fixture
def expect_error():
    return check_error
