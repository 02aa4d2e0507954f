"""One source of truth for configuration: every knob is an environment variable with a default.

The router, the DAG, the CLI and the experiment tools all call `get_settings()`, so a value set
once in the environment (or in docker compose's `.env`) reaches every process the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _float(name: str, default: float, lo: float | None = None, hi: float | None = None) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SettingsError(f"{name}={raw!r} must be within [{lo}, {hi}]")
    return value


def _int(name: str, default: int, lo: int = 0) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < lo:
        raise SettingsError(f"{name}={raw!r} must be >= {lo}")
    return value


def _field(env: str, parse, *args: object, secret: bool = False, **kwargs: object):
    """A settings field read from `env` at construction; the name is kept for docs and checks."""
    return field(default_factory=lambda: parse(env, *args, **kwargs), repr=not secret, metadata={"env": env})


def env_names() -> dict[str, str]:
    """Settings field -> environment variable: the README table and the compose check use it."""
    return {f.name: f.metadata["env"] for f in fields(Settings) if "env" in f.metadata}


def to_env(settings: Settings, *, secrets: bool = False) -> dict[str, str]:
    """The environment that recreates `settings` in a child process (tokens only if asked)."""
    return {f.metadata["env"]: str(getattr(settings, f.name)) for f in fields(Settings)
            if "env" in f.metadata and (secrets or f.repr)}


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment. Field docs are the README's configuration table."""

    # Where all runtime state lives: mlflow/, airflow/, logs/, reports/, router/, incoming/.
    home: Path = field(default_factory=lambda: Path(_env("TICKET_AB_HOME", "var")).resolve(),
                       metadata={"env": "TICKET_AB_HOME"})
    # MLflow tracking server (the demo starts one here) or a sqlite:/// URI.
    tracking_uri: str = _field("MLFLOW_TRACKING_URI", _env, "http://127.0.0.1:5000")
    model_name: str = _field("TICKET_AB_MODEL_NAME", _env, "ticket-classifier")
    experiment: str = _field("TICKET_AB_EXPERIMENT", _env, "ticket-ab")

    # Router.
    host: str = _field("TICKET_AB_HOST", _env, "127.0.0.1")
    port: int = _field("TICKET_AB_PORT", _int, 8000, lo=1)
    workers: int = _field("TICKET_AB_WORKERS", _int, 2, lo=1)
    threads: int = _field("TICKET_AB_THREADS", _int, 4, lo=1)
    reload_s: float = _field("TICKET_AB_RELOAD_S", _float, 10.0, lo=0.1)
    ab_split_b: float = _field("TICKET_AB_SPLIT_B", _float, 0.5, 0.0, 1.0)
    admin_token: str = _field("TICKET_AB_ADMIN_TOKEN", _env, "", secret=True)
    feedback_token: str = _field("TICKET_AB_FEEDBACK_TOKEN", _env, "", secret=True)
    max_body_bytes: int = _field("TICKET_AB_MAX_BODY_BYTES", _int, 64 * 1024, lo=1)
    max_text_chars: int = _field("TICKET_AB_MAX_TEXT_CHARS", _int, 20_000, lo=1)

    # Training and the quality gate.
    automl_budget_s: float = _field("TICKET_AB_AUTOML_BUDGET_S", _float, 180.0, lo=1.0)
    automl_folds: int = _field("TICKET_AB_AUTOML_FOLDS", _int, 3, lo=2)
    automl_models: str = _field("TICKET_AB_AUTOML_MODELS", _env, "lr,sgd,svm,ridge,nb")
    gate_margin: float = _field("TICKET_AB_GATE_MARGIN", _float, 0.01, 0.0, 1.0)
    reference_rows: int = _field("TICKET_AB_REFERENCE_ROWS", _int, 5000, lo=10)
    seed: int = _field("TICKET_AB_SEED", _int, 42)

    # Drift and the DAG.
    schedule: str = _field("TICKET_AB_SCHEDULE", _env, "@daily")
    min_window: int = _field("TICKET_AB_MIN_WINDOW", _int, 200, lo=1)
    drift_text_p: float = _field("TICKET_AB_DRIFT_TEXT_P", _float, 0.01, 0.0, 1.0)
    drift_text_min_auc: float = _field("TICKET_AB_DRIFT_TEXT_MIN_AUC", _float, 0.52, 0.5, 1.0)
    drift_oov_delta: float = _field("TICKET_AB_DRIFT_OOV_DELTA", _float, 0.03, 0.0, 1.0)
    drift_language_delta: float = _field("TICKET_AB_DRIFT_LANGUAGE_DELTA", _float, 0.10, 0.0, 1.0)
    drift_prediction_p: float = _field("TICKET_AB_DRIFT_PREDICTION_P", _float, 0.01, 0.0, 1.0)
    drift_prediction_js: float = _field("TICKET_AB_DRIFT_PREDICTION_JS", _float, 0.10, 0.0, 1.0)
    drift_accuracy_drop: float = _field("TICKET_AB_DRIFT_ACCURACY_DROP", _float, 0.05, 0.0, 1.0)
    drift_min_labelled: int = _field("TICKET_AB_DRIFT_MIN_LABELLED", _int, 50, lo=1)

    # Feedback guards and relabelling.
    feedback_max_source_share: float = _field("TICKET_AB_FEEDBACK_MAX_SOURCE_SHARE", _float, 0.8, 0.0, 1.0)
    feedback_max_label_share: float = _field("TICKET_AB_FEEDBACK_MAX_LABEL_SHARE", _float, 0.7, 0.0, 1.0)
    feedback_min_rows: int = _field("TICKET_AB_FEEDBACK_MIN_ROWS", _int, 50, lo=1)
    pseudo_precision: float = _field("TICKET_AB_PSEUDO_PRECISION", _float, 0.95, 0.0, 1.0)
    gold_holdout: float = _field("TICKET_AB_GOLD_HOLDOUT", _float, 0.3, 0.0, 0.9)
    min_gold: int = _field("TICKET_AB_MIN_GOLD", _int, 50, lo=1)
    min_holdout: int = _field("TICKET_AB_MIN_HOLDOUT", _int, 30, lo=1)

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def airflow_dir(self) -> Path:
        return self.home / "airflow"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def router_dir(self) -> Path:
        return self.home / "router"

    @property
    def incoming_dir(self) -> Path:
        return self.home / "incoming"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def request_log(self) -> Path:
        return self.logs_dir / "ab_logs.csv"

    @property
    def feedback_log(self) -> Path:
        return self.logs_dir / "feedback.csv"

    @property
    def candidate_models(self) -> list[str]:
        return [m.strip() for m in self.automl_models.split(",") if m.strip()]


def get_settings(**overrides: object) -> Settings:
    """Read the environment now (not at import), so tests and subprocesses see their own values."""
    settings = Settings()
    if not overrides:
        return settings
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise SettingsError(f"unknown settings: {sorted(unknown)}")
    values = {f.name: getattr(settings, f.name) for f in fields(Settings)}
    values.update(overrides)
    values["home"] = Path(values["home"]).resolve()
    return Settings(**values)
