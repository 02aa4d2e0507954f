from pathlib import Path

import pytest

from ticket_ab.settings import SettingsError, get_settings, to_env


def test_defaults_match_the_documented_ones(monkeypatch):
    for name in ("TICKET_AB_HOME", "MLFLOW_TRACKING_URI", "TICKET_AB_MODEL_NAME", "TICKET_AB_RELOAD_S"):
        monkeypatch.delenv(name, raising=False)
    settings = get_settings()
    assert settings.home == Path("var").resolve()
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.model_name == "ticket-classifier"
    assert settings.router.reload_s == 10.0


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("TICKET_AB_HOME", str(tmp_path))
    monkeypatch.setenv("TICKET_AB_SPLIT_B", "0.3")
    monkeypatch.setenv("TICKET_AB_AUTOML_MODELS", "lr, nb")
    settings = get_settings()
    assert settings.home == tmp_path
    assert settings.logs_dir == tmp_path / "logs"
    assert settings.router.split_b == 0.3
    assert settings.training.candidate_models == ["lr", "nb"]


def test_bad_number_names_the_variable(monkeypatch):
    monkeypatch.setenv("TICKET_AB_RELOAD_S", "soon")
    with pytest.raises(SettingsError, match="TICKET_AB_RELOAD_S"):
        get_settings()


def test_split_outside_unit_interval_is_rejected(monkeypatch):
    monkeypatch.setenv("TICKET_AB_SPLIT_B", "1.5")
    with pytest.raises(SettingsError, match="TICKET_AB_SPLIT_B"):
        get_settings()


def test_overrides_reject_unknown_names():
    with pytest.raises(SettingsError, match="unknown settings"):
        get_settings(no_such_setting=1)


def test_tokens_do_not_appear_in_repr(monkeypatch):
    monkeypatch.setenv("TICKET_AB_ADMIN_TOKEN", "s3cret-admin")
    monkeypatch.setenv("TICKET_AB_FEEDBACK_TOKEN", "s3cret-feedback")
    text = repr(get_settings())
    assert "s3cret" not in text


def test_to_env_recreates_the_settings_in_a_child_without_tokens(monkeypatch, tmp_path):
    original = get_settings(home=tmp_path, drift={"text_p": 0.002}, router={"admin_token": "s3cret"})
    env = to_env(original)
    assert "TICKET_AB_ADMIN_TOKEN" not in env and "s3cret" not in env.values()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = get_settings()
    assert again.drift.text_p == 0.002 and again.home == tmp_path
    assert to_env(original, secrets=True)["TICKET_AB_ADMIN_TOKEN"] == "s3cret"


def test_overrides_reject_unknown_fields_of_a_group():
    with pytest.raises(SettingsError, match="no_such_knob"):
        get_settings(drift={"no_such_knob": 1})


def test_group_override_keeps_the_environment_for_the_other_fields(monkeypatch):
    monkeypatch.setenv("TICKET_AB_DRIFT_OOV_DELTA", "0.2")
    settings = get_settings(drift={"text_p": 0.001})
    assert (settings.drift.text_p, settings.drift.oov_delta) == (0.001, 0.2)


def test_tracking_uri_follows_the_mlflow_port_unless_set(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TICKET_AB_MLFLOW_PORT", "5123")
    assert get_settings().tracking_uri == "http://127.0.0.1:5123"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert get_settings().tracking_uri == "sqlite:///x.db"


def test_the_log_root_can_sit_outside_the_home_so_replicas_share_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TICKET_AB_HOME", str(tmp_path / "replica-1"))
    monkeypatch.setenv("TICKET_AB_LOG_ROOT", str(tmp_path / "shared"))
    settings = get_settings()
    assert settings.logs_dir == tmp_path / "shared"
    assert (settings.log.max_bytes, settings.log.retention_days) == (64 * 1024 * 1024, 90)


def test_a_relative_log_root_is_below_the_home_whatever_the_working_directory(tmp_path, monkeypatch):
    settings = get_settings(home=tmp_path / "home", log={"root": "shared-logs"})
    monkeypatch.chdir(tmp_path)
    assert settings.logs_dir == tmp_path / "home" / "shared-logs"
    assert get_settings(home=tmp_path, log={"root": "/mnt/logs"}).logs_dir == Path("/mnt/logs")
