"""Registry alias moves, the quality gate and the served artifact, against a real MLflow server."""

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest

from load_test.simulate.generator import generate
from retrain.ml.automl import same_features
from retrain.ml.train import fingerprint
from retrain.register import train_and_register
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab import registry
from ticket_ab.names import CHALLENGER, CHAMPION
from ticket_ab.registry import ServingRegistry
from ticket_ab.twohead import heads_of


@pytest.fixture
def settings(make_settings, mlflow_server):
    return make_settings(tracking_uri=mlflow_server.uri, training={"automl_models": "lr,nb", "reference_rows": 50})


@pytest.fixture
def client(settings):
    return registry.connect(settings.tracking_uri)


def _quiet(_: str) -> None:
    pass


def test_first_model_becomes_champion_with_tags_and_reference(settings, client, tiny_tickets):
    outcome = train_and_register(tiny_tickets, settings, alias="champion", source="tiny", progress=_quiet)
    assert outcome.passed and outcome.alias == "champion"
    version = registry.version_for(client, settings.model_name, "champion")
    assert version.version == outcome.version
    tags = version.tags
    assert tags["validation_status"] == "passed"
    assert tags["data_fingerprint"] == fingerprint(tiny_tickets)
    assert tags["automl_winner"] in settings.training.candidate_models
    assert int(tags["train_rows"]) + int(tags["holdout_rows"]) == len(tiny_tickets)
    assert any(key.startswith("alias_event.") for key in tags)
    reference = registry.load_reference(version)
    assert list(reference.columns) == ["text", "topic", "predicted"]
    assert len(reference) == 50


def test_registered_model_serves_a_frame_through_sklearn_and_pyfunc(settings, tiny_tickets):
    train_and_register(tiny_tickets, settings, alias="champion", source="tiny", progress=_quiet)
    frame = pd.DataFrame({"text": ["vpn offline", "invoice refund", "laptop battery"]})
    model = registry.load_pipeline(settings.model_name, "champion")
    assert list(model.predict(frame)) == ["network", "billing", "hardware"]
    assert set(model.classes_) == {"access", "billing", "hardware", "network"}
    pyfunc = mlflow.pyfunc.load_model(registry.model_uri(settings.model_name, "champion"))
    assert len(pyfunc.predict(frame)) == 3


def test_worse_candidate_is_registered_as_failed_and_moves_no_alias(settings, client, tiny_tickets):
    champion = train_and_register(tiny_tickets, settings, alias="champion", source="tiny", progress=_quiet)
    shuffled = tiny_tickets.assign(topic=tiny_tickets["topic"].sample(frac=1.0, random_state=3).to_numpy())
    outcome = train_and_register(shuffled, settings, alias="challenger", source="shuffled",
                                 holdout=tiny_tickets, progress=_quiet)
    assert not outcome.passed and outcome.alias is None
    failed = client.get_model_version(settings.model_name, outcome.version)
    assert failed.tags["validation_status"] == "failed"
    assert registry.version_for(client, settings.model_name, "challenger") is None
    assert registry.version_for(client, settings.model_name, "champion").version == champion.version


def test_same_key_registers_once(settings, client, tiny_tickets):
    first = train_and_register(tiny_tickets, settings, alias="champion", key="dag:2026-11-24", progress=_quiet)
    again = train_and_register(tiny_tickets, settings, alias="champion", key="dag:2026-11-24", progress=_quiet)
    assert again.reused and again.version == first.version
    assert len(client.search_model_versions(f"name = '{settings.model_name}'")) == 1


def test_promote_then_rollback_moves_aliases_and_records_why(settings, client, tiny_tickets):
    v1 = train_and_register(tiny_tickets, settings, alias="champion", progress=_quiet).version
    v2 = train_and_register(tiny_tickets, settings, alias="challenger", holdout=tiny_tickets,
                            progress=_quiet).version
    moves = registry.promote(client, settings.model_name, why="A/B won", who="tester")
    assert [(m.alias, m.version) for m in moves] == [("previous", v1), ("champion", v2), ("challenger", None)]
    assert registry.version_for(client, settings.model_name, "champion").version == v2
    assert registry.version_for(client, settings.model_name, "previous").version == v1
    assert registry.version_for(client, settings.model_name, "challenger") is None
    events = [v for k, v in client.get_model_version(settings.model_name, v2).tags.items()
              if k.startswith("alias_event.")]
    assert any('"why": "A/B won"' in e and '"who": "tester"' in e for e in events)

    registry.rollback(client, settings.model_name, why="bad week", who="tester")
    assert registry.version_for(client, settings.model_name, "champion").version == v1
    assert registry.version_for(client, settings.model_name, "previous") is None
    assert client.get_model_version(settings.model_name, v2).tags["validation_status"] == "rolled_back"


def test_promote_without_challenger_is_a_clear_error(settings, client, tiny_tickets):
    train_and_register(tiny_tickets, settings, alias="champion", progress=_quiet)
    with pytest.raises(registry.RegistryError, match="no 'challenger' to promote"):
        registry.promote(client, settings.model_name, why="x")


def test_unreachable_server_fails_fast_with_advice():
    with pytest.raises(registry.RegistryError, match="not reachable.*make mlflow"):
        registry.check_reachable("http://127.0.0.1:9", timeout_s=1)


def test_status_of_unknown_model_says_not_registered(make_settings, mlflow_server):
    settings = make_settings(tracking_uri=mlflow_server.uri)
    state = registry.status(registry.connect(settings.tracking_uri), settings.model_name)
    assert state == {"model": settings.model_name, "registered": False, "aliases": {}, "versions": 0}


def test_run_logs_leaderboard_and_metrics(settings, tiny_tickets):
    outcome = train_and_register(tiny_tickets, settings, alias="champion", progress=_quiet)
    run = mlflow.get_run(outcome.run_id)
    assert 0.0 < run.data.metrics["holdout_macro_f1"] <= 1.0
    artifacts = {a.path for a in registry.connect(settings.tracking_uri).list_artifacts(outcome.run_id, "automl")}
    assert {"automl/leaderboard.csv", "automl/leaderboard.md", "automl/holdout_metrics.json"} <= artifacts


def test_the_legacy_ab_config_tag_comes_with_the_aliases_in_one_call(make_settings, mlflow_server, monkeypatch):
    """Routers seed the config store once from the tag earlier versions kept their split in."""
    settings = make_settings(tracking_uri=mlflow_server.uri)
    name, example = settings.model_name, pd.DataFrame({"text": ["vpn drops", "printer jam"]})
    source = ServingRegistry(settings.tracking_uri, name)
    assert source.state().aliases == {CHAMPION: None, CHALLENGER: None}
    version = registry.publish(settings.tracking_uri, name, fitted_pipeline(seed=0), example, alias=CHAMPION)
    client = registry.connect(settings.tracking_uri)
    assert registry.ab_config(client, name) is None
    client.set_registered_model_tag(name, registry.AB_CONFIG_TAG, '{"ab_split_b": 0.3}')
    assert registry.ab_config(client, name) == '{"ab_split_b": 0.3}'
    first = source.state()
    assert (first.aliases[CHAMPION].version, first.aliases[CHALLENGER], first.config_tag) == (
        version, None, '{"ab_split_b": 0.3}')
    assert first.aliases[CHAMPION].run_id == client.get_model_version(name, version).run_id
    lookups = []
    real = registry.Client.get_model_version
    monkeypatch.setattr(registry.Client, "get_model_version",
                        lambda self, *args: lookups.append(args) or real(self, *args))
    assert source.state() == first
    assert lookups == [], "a poll with known versions is one get_registered_model call"


def test_a_champion_trained_on_tickets_with_priorities_registers_both_heads(settings, client):
    tickets = generate("baseline", 300, 5)[["text", "topic", "priority"]]
    outcome = train_and_register(tickets, settings, alias="champion", source="generated", progress=_quiet)
    version = registry.version_for(client, settings.model_name, "champion")
    assert version.version == outcome.version and outcome.priority["n"] == int(version.tags["holdout_rows"])
    allowed = same_features(settings.training.candidate_models, version.tags["automl_winner"])
    assert version.tags["heads"] == "topic,priority" and version.tags["priority_winner"] in allowed
    assert float(version.tags["holdout_priority_macro_f1"]) == pytest.approx(outcome.priority["macro_f1"], abs=1e-4)
    model = registry.load_pipeline(settings.model_name, "champion")
    assert heads_of(model) == ("topic", "priority")
    assert set(model.predict_priority(tickets[["text"]].head(20))) <= {"low", "medium", "high", "urgent"}
    reference = registry.load_reference(version)
    assert {"priority", "predicted_priority"} <= set(reference.columns)
    assert "priority macro-F1" in outcome.summary()
