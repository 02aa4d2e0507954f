"""One settings object for every process: each knob is an environment variable, each default stated once.

The router, the DAG, the CLI and the experiment tools all call `get_settings()`, so a value set once
in the environment (or in docker compose's `.env`) reaches every process the same way. The knobs
come in groups (`settings.router`, `settings.drift`, ...), and the groups are what the code takes:
`drift.decide(signals, settings.drift)` reads the same object the environment filled in.
Field descriptions are the README's configuration table (a test checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="forbid", env_ignore_empty=True,
                              populate_by_name=True)


def _env(name: str, default: Any, description: str, **constraints: Any) -> Any:
    """A field read from an environment variable whose name is not the group prefix + field name."""
    return Field(default, description=description, validation_alias=AliasChoices(name), **constraints)


class RouterSettings(BaseSettings):
    """The A/B router: where it listens, how it is split, what it accepts."""

    model_config = _config("TICKET_AB_")
    host: str = Field("127.0.0.1", description="router bind address")
    port: int = Field(8000, ge=1, le=65535, description="router port")
    workers: int = Field(2, ge=1, description="gunicorn worker processes")
    threads: int = Field(4, ge=1, description="threads per gunicorn worker")
    reload_s: float = Field(10.0, ge=0.1, description="how often each worker polls the registry for moved aliases")
    split_b: float = Field(0.5, ge=0.0, le=1.0,
        description="share of customers for the challenger until `POST /config` sets one")
    admin_token: str = Field("", repr=False, description="bearer token for `POST /config` (unset: it answers 403)")
    feedback_token: str = Field("", repr=False,
                                description="bearer token for `POST /feedback`, its feedback recorded as source `api`")
    feedback_tokens: str = Field("", repr=False, description="one bearer token per integration for `POST /feedback`, "
                                 "`source:token,...`: the token decides the recorded source (the body's is ignored)")
    client_token: str = Field("", repr=False, description="bearer token for the scoring endpoints (`/predict`, "
                              "`/invocations`, `/v2/models/<name>/infer`), its requests recorded as integration `api`")
    client_tokens: str = Field("", repr=False, description="one bearer token per integration for the scoring "
                               "endpoints, `integration:token,...`: the token decides the integration counted and "
                               "logged")
    allow_anonymous: bool = Field(False, description="score requests without a client token (as integration "
                                  "`anonymous`) even when client tokens are set; with none set, scoring is open "
                                  "(a warning says so) and every request is `anonymous`")
    client_rate: float = Field(100.0, ge=0.0, description="tickets per second each integration may score on one "
                               "replica (divided among its workers; more get 429 with Retry-After; 0: no limit)")
    client_burst: int = Field(512, ge=1, description="tickets an integration may send at once above its rate, per "
                              "worker (at least TICKET_AB_MAX_BATCH, so a full batch can pass)")
    config_store: str = Field("", repr=False, description="the A/B config's transactional store: "
                              "`postgresql://user@host:port/db` (password in the URL or a PGPASSFILE) or "
                              "`sqlite:///path` (empty: home/router/config.db, one host only)")
    customer_key: str = Field("", repr=False, description="secret key of the logged pseudonyms of customer ids "
                              "that are e-mails or phones; the same on every replica (unset: a public development key)")
    max_body_bytes: int = Field(64 * 1024, ge=1, description="larger request bodies get 413")
    max_text_chars: int = Field(20_000, ge=1, description="longer ticket texts get 413")
    max_batch: int = Field(256, ge=1, description="most tickets one request may carry (`/predict` with `tickets`, "
                           "`/invocations`, `/v2/models/<name>/infer`); more get 413")
    max_batch_body_bytes: int = Field(4 * 1024 * 1024, ge=1,
                                      description="larger bodies of the batch-capable endpoints get 413")
    max_batch_chars: int = Field(1_000_000, ge=1, description="most ticket-text characters one request may carry "
                                 "in all (a worker scores about 3 M characters a second); more get 413")
    log_champion_confidence: bool = Field(True, description="score the challenger's requests with the champion too, "
                                          "so every row logs `champion_confidence` (the A/B report's CUPAC "
                                          "covariate; off: blank on them): +15-22% router CPU per request at 50/50 "
                                          "serving svm_wc (bench/champion_confidence_bench.py)")


AutoMLEngine = Literal["local", "dask"]
PrepareEngine = Literal["duckdb", "dask"]


class TrainingSettings(BaseSettings):
    """PyCaret's model search and the quality gate."""

    model_config = _config("TICKET_AB_")
    automl_budget_s: float = Field(180.0, ge=1.0, description="PyCaret's time budget for model selection")
    automl_folds: int = Field(3, ge=2, description="cross-validation folds of the selection")
    automl_models: str = Field("svm_wc,lr_wc,vote_wc,svm,nb",
                               description="candidate models (keys of retrain.ml.candidates, comma-separated)")
    automl_tune_min_rows: int = Field(3000, ge=0, description="tune the winner's regularisation (PyCaret "
                                      "tune_model) from this many training tickets; below, CV noise decides")
    automl_engine: AutoMLEngine = Field("local", description="where PyCaret cross-validates the candidates: "
                                        "`local` one after another in the training process, `dask` one task per "
                                        "candidate on a dask.distributed cluster (PyCaret's Fugue backend; the time "
                                        "budget then gates only tuning, as every candidate runs)")
    automl_dask_scheduler: str = Field("", description="address of the dask.distributed scheduler (tcp://host:8786) "
                                       "for automl_engine=dask; empty: a LocalCluster of this machine's cores")
    gate_margin: float = Field(0.01, ge=0.0, le=1.0,
                               description="a challenger may trail the champion's accuracy by at most this")
    reference_rows: int = Field(5000, ge=10,
        description="training tickets stored with each version as the drift reference")
    gate_confidence: float = Field(0.95, ge=0.5, lt=1.0, description="the gate passes when the challenger's "
                                   "accuracy gain (customer-clustered) is above -gate_margin with this confidence")
    gate_topic_margin: float = Field(0.10, ge=0.0, le=1.0,
        description="a challenger whose recall on one topic of the trusted set trails the champion's by more fails")
    gate_topic_min_rows: int = Field(15, ge=1, description="trusted tickets a topic needs to be judged on its own")
    gate_held_share: float = Field(0.5, ge=0.0, le=1.0, description="a topic whose window labels were quarantined "
                                   "(held) fails the gate when the challenger gives it to fewer of the window's "
                                   "tickets it was not trained on than this fraction of the champion's count")
    gate_held_agreement: float = Field(0.9, ge=0.0, le=1.0, description="... or agrees on less than this share of "
                                       "those tickets the champion gives it with TICKET_AB_FEEDBACK_PATTERN_CONFIDENCE")
    gate_priority_margin: float = Field(0.02, ge=0.0, le=1.0, description="a challenger whose priority macro-F1 "
                                        "trails the champion's by more on the held-out tickets with a priority fails "
                                        "(a point check, no interval)")
    gate_urgent_min_rows: int = Field(30, ge=1, description="held-out urgent tickets the gate needs before a rise in "
                                      "urgent tickets predicted low fails it (fewer: reported only)")
    gate_urgent_low_margin: float = Field(0.02, ge=0.0, le=1.0, description="a challenger fails when the "
                                          "customer-clustered lower bound (gate_confidence) of its share of held-out "
                                          "urgent tickets predicted low, minus the champion's, is above this")
    priority_urgent_recall: float | None = Field(None, gt=0.0, le=1.0, description="answer `urgent` from the "
                                                 "probability that reaches this urgent recall out of fold in "
                                                 "training (unset: the likeliest priority)")
    store_max_rows: int = Field(20000, ge=100,
        description="training memory: the newest labelled tickets of the label store each retrain draws at most")
    store_retention_days: int = Field(365, ge=0,
        description="the label store forgets tickets older than this (the champion's bootstrap reference and "
                    "pending late labels excepted; 0: keep forever)")

    @property
    def candidate_models(self) -> list[str]:
        return [m.strip() for m in self.automl_models.split(",") if m.strip()]


class PipelineSettings(BaseSettings):
    """When the DAG runs."""

    model_config = _config("TICKET_AB_")
    schedule: str = Field("@daily", description="the DAG's time schedule (cron or preset); new tickets also trigger it")
    watch_interval_s: int = Field(300, ge=10, description="how often the log watcher counts new tickets; it triggers "
                                  "the DAG once TICKET_AB_MIN_WINDOW have arrived since the watermark")


class StackSettings(BaseSettings):
    """The native production stack (`make stack`): the compose topology as local processes."""

    model_config = _config("TICKET_AB_")
    postgres_port: int = Field(5432, ge=1, le=65535, description="port of the stack's PostgreSQL (MLflow and Airflow)")
    prometheus_port: int = Field(9090, ge=1, le=65535, description="port of the stack's Prometheus")
    redis_port: int = Field(6379, ge=1, le=65535, description="port of the stack's Redis (Celery broker)")
    executor: Literal["LocalExecutor", "CeleryExecutor"] = Field("LocalExecutor", description="Airflow executor "
        "of the stack and of compose: `CeleryExecutor` adds a Redis broker and a Celery worker")
    replicas: int = Field(2, ge=1, le=16, description="router replicas of the stack, on consecutive ports from "
                          "TICKET_AB_PORT")
    parallelism: int = Field(4, ge=1, description="Airflow task slots of the stack")


class DriftSettings(BaseSettings):
    """Where each drift signal fires. Defaults were set on generated and real tickets (bench/drift_bench.py)."""

    model_config = _config("TICKET_AB_DRIFT_")
    min_window: int = _env("TICKET_AB_MIN_WINDOW", 200, "fewer new tickets: the run skips, with the reason", ge=1)
    window_sample_rows: int = _env("TICKET_AB_WINDOW_SAMPLE_ROWS", 50_000, "the DAG measures drift on a seeded "
                                   "sample of at most this many of the window's routed tickets and keeps every "
                                   "labelled one; ten times TICKET_AB_REFERENCE_ROWS, past which the drift tests "
                                   "gain little and cost memory", ge=1)
    text_p: float = Field(0.01, ge=0.0, le=1.0,
        description="text drift (domain-classifier AUC) must be significant at this level")
    text_min_auc: float = Field(0.52, ge=0.5, le=1.0, description="... and reach at least this AUC")
    oov_delta: float = Field(0.03, ge=0.0, le=1.0, description="rise in the share of words unknown to the champion")
    language_delta: float = Field(0.10, ge=0.0, le=1.0, description="change in the Russian share")
    prediction_p: float = Field(0.01, ge=0.0, le=1.0,
        description="predicted-topic mix change must be significant at this level")
    prediction_js: float = Field(0.10, ge=0.0, le=1.0,
                                 description="... and reach at least this Jensen-Shannon distance")
    accuracy_drop: float = Field(0.05, ge=0.0, le=1.0,
        description="champion accuracy drop on labelled tickets that triggers retraining")
    accuracy_z: float = Field(2.33, ge=0.0, description="... by at least this many standard errors (one-sided p 0.01)")
    min_labelled: int = Field(50, ge=1, description="labelled tickets needed before accuracy counts as a signal")


class FeedbackSettings(BaseSettings):
    """When a window's feedback looks implausible enough to refuse."""

    model_config = _config("TICKET_AB_FEEDBACK_")
    max_source_share: float = Field(0.8, ge=0.0, le=1.0,
        description="one feedback source above this share (and new to it) refuses the window's labels")
    max_label_share: float = Field(0.7, ge=0.0, le=1.0,
        description="one label above this share refuses the window's labels")
    max_priority_share: float = Field(0.9, ge=0.0, le=1.0,
        description="one priority above this share refuses the window's priorities (above the labels' limit: an "
                    "outage makes most tickets urgent)")
    min_rows: int = Field(50, ge=1, description="the guards above apply from this many feedback rows")
    pattern_confidence: float = Field(0.8, ge=0.0, le=1.0,
        description="a feedback label the champion contradicts at this confidence counts towards a label pattern")
    pattern_share: float = Field(0.2, ge=0.0, le=1.0, description="a pattern (topic -> other label) covering this "
                                 "share of the champion's confident tickets of that topic is quarantined")
    pattern_min_rows: int = Field(8, ge=1, description="... and at least this many feedback labels")
    confirmed_patterns: str = Field("", description="label patterns an operator confirmed, e.g. "
                                    "`network->billing,...`: no longer quarantined")


class RelabelSettings(BaseSettings):
    """cleanlab cleaning and pseudo-labelling of a window."""

    model_config = _config("TICKET_AB_")
    pseudo_precision: float = Field(0.95, ge=0.0, le=1.0,
        description="pseudo-labels are kept above the lowest confidence proven to reach this precision (95%, over all "
                    "thresholds tried) unless the untouched gold rejects it")
    pseudo_min_support: int = Field(30, ge=1,
        description="holdout tickets above a threshold needed to trust its precision")
    gold_holdout: float = Field(0.3, ge=0.0, le=0.9,
        description="share of gold feedback held out untouched (before cleaning) for the quality gate and to verify "
                    "the pseudo-label threshold")
    min_gold: int = Field(50, ge=1, description="gold labels needed to clean and pseudo-label")
    min_holdout: int = Field(30, ge=1, description="gold tickets held out needed to gate a challenger")
    calibration_share: float = Field(0.3, ge=0.1, le=0.9,
        description="share of the cleaned gold (not held out) on which the pseudo-label threshold is chosen")
    cleanlab_folds: int = Field(3, ge=2, description="cross-validation folds of cleanlab's out-of-sample probabilities")


class LogSettings(BaseSettings):
    """The request and feedback logs: where they live, how big a file grows, how long days are kept."""

    model_config = _config("TICKET_AB_LOG_")
    root: str = Field("", description="root of the request and feedback logs, shared by replicas "
                      "(empty: home/logs; relative: below home)")
    max_bytes: int = Field(64 * 1024 * 1024, ge=4096,
                           description="a log file rolls over to a new one past this size (bytes)")
    settle_s: float = Field(60.0, ge=0.0, description="the DAG reads requests stamped at least this long ago, so rows "
                            "still in flight (stamped, not yet written or visible on a shared volume) are not skipped")
    retention_days: int = Field(90, ge=0,
        description="the DAG removes log days older than this once its window is read, and run folders and "
                    "reports untouched for as long (0: keep forever)")
    request_sync: Literal["every", "interval"] = Field("interval", description="when a request row is on disk: "
        "`every` fsyncs before the answer (group commit), `interval` within TICKET_AB_LOG_SYNC_INTERVAL_MS (what "
        "a power cut may lose); feedback rows are always fsynced before their 202")
    sync_interval_ms: int = Field(200, ge=1, le=60_000,
        description="with `interval`, the most milliseconds of request rows a power cut may lose")


class ABSettings(BaseSettings):
    """The A/B verdict of `analysis/analysis.py` (its flags override the first four). The false-promotion
    rate and power of these defaults are measured by bench/ab_calibration.py."""

    model_config = _config("TICKET_AB_TEST_")
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="false-promotion rate the verdict allows, however often "
                         "it is looked at (each end of its intervals is a one-sided bound at this level)")
    min_gain: float = Field(0.01, ge=0.0, lt=1.0, description="promote only when the accuracy interval's lower end "
                            "is at least this gain (a fraction: 0.01 is 1 point)")
    min_labelled: int = Field(200, ge=1, description="feedback-labelled requests per arm before any verdict")
    horizon: int = Field(2000, ge=10, description="labelled requests (both arms) at which the always-valid interval "
                         "is tightest: the planned size of a test")
    power: float = Field(0.8, gt=0.0, lt=1.0, description="power of the labelled requests the report says a test "
                         "still needs")
    srm_alpha: float = Field(0.001, gt=0.0, lt=1.0, description="sample-ratio mismatch flag: customers per arm vs "
                             "the configured split")
    error_margin: float = Field(0.01, ge=0.0, le=1.0, description="guardrail: the challenger's error rate may exceed "
                                "the champion's by at most this much")
    fallback_margin: float = Field(0.01, ge=0.0, le=1.0, description="guardrail: the challenger's fallback rate may "
                                   "exceed the champion's by at most this much")
    latency_margin: float = Field(0.25, ge=0.0, description="guardrail: the challenger's p95 latency may exceed the "
                                  "champion's by at most this share ...")
    latency_margin_ms: float = Field(25.0, ge=0.0, description="... or by this many ms, whichever is larger")
    resamples: int = Field(200, ge=50, description="customer-level bootstrap resamples (macro-F1, p95 latency)")
    topic_margin: float = Field(0.15, ge=0.0, le=1.0, description="guardrail: no topic's accuracy may be credibly "
                                "lower in B than in A by more than this")
    urgent_missed_margin: float = Field(0.05, ge=0.0, le=1.0, description="guardrail: the share of urgent-labelled "
                                        "tickets the challenger answers low, medium or not at all may not be credibly "
                                        "higher than the champion's by more than this (two-head versions with priority "
                                        "feedback)")
    customer_cap: int = Field(10, ge=0, description="the accuracy comparison weighs each customer's labelled "
                              "requests as at most this many plus its earlier labelled ones (CUPED's record; a "
                              "declared estimand: a few busy customers cannot dominate it; 0: every request weighs "
                              "the same)")
    prior_strength: float | None = Field(None, ge=0.0, description="CUPED: a customer's earlier accuracy, the "
                                         "covariate of the accuracy comparison, is its earlier mean shrunk towards the "
                                         "pooled earlier mean, which counts as much as this many labels; unset: "
                                         "estimated from the earlier period (empirical Bayes, method of moments)")
    prior_days: int = Field(7, ge=0, description="the experiment DAG reads this many days before the experiment for "
                            "each customer's earlier accuracy (CUPED); 0: none")
    cupac_max_scored: int = Field(200_000, ge=0, description="CUPAC scores at most this many labelled tickets with the "
                                  "champion (about 0.35 ms each); a larger window is compared unadjusted, and says so")
    memory_mb: int = Field(512, ge=64, description="memory the analysis' query engine (DuckDB) may hold; it spills the "
                           "rest of a large window to a temporary folder")
    prepare_engine: PrepareEngine = Field("duckdb", description="where the report types the window's raw log rows: "
                                          "`duckdb` in the analysis process, `dask` one task per day on a "
                                          "dask.distributed cluster, each a DuckDB of TICKET_AB_TEST_MEMORY_MB over "
                                          "its day's files (the same report; analysis/scatter.py)")
    dask_scheduler: str = Field("", description="address of the dask.distributed scheduler (tcp://host:8786) for "
                                "prepare_engine=dask; its workers read the log files by path, so each must see the log "
                                "root where this process does (and have this project installed); empty: a LocalCluster "
                                "of this machine's cores")
    dask_scratch: str = Field("", description="folder the day tasks write typed rows into (a subfolder per run, "
                              "removed afterwards); with workers on other hosts, one every worker and this process "
                              "see at the same path (a shared volume); empty: a private temporary folder here")


def _ramp(text: str) -> tuple[float, ...]:
    """`0.05,0.25,0.5`: increasing shares of customers for the challenger, each above 0 and at most 1."""
    try:
        steps = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated shares such as 0.05,0.25,0.5, got {text!r}") from None
    if not steps or any(not 0.0 < s <= 1.0 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"expected increasing shares above 0 and at most 1, such as 0.05,0.25,0.5, got {text!r}")
    return steps


ActionMode = Literal["auto", "ask", "off"]


class RolloutSettings(BaseSettings):
    """The experiment policy the experiment DAG applies: how a challenger's exposure ramps, when it is promoted,
    stopped or rolled back, and which of those it may do by itself (`auto`), only after an operator's
    `ticket-ab rollout approve` (`ask`), or never (`off`). Significance and the guardrails' margins are
    TICKET_AB_TEST_*."""

    model_config = _config("TICKET_AB_ROLLOUT_")
    steps: str = Field("0.05,0.25,0.5", description="shares of customers a challenger is ramped through, in one "
                       "experiment (raising the split only adds customers to it)")
    start: Literal["step", "shadow", "configured"] = Field("step", description="what a newly registered challenger "
        "gets: the first step, shadow mode (no customer sees it), or the split configured before (no ramp)")
    min_customers: int = Field(30, ge=1, description="labelled customers per arm in a step before it may ramp")
    min_step_minutes: float = Field(60.0, ge=0.0, description="minutes a step lasts at least before it may ramp "
                                    "or promote")
    harm_margin: float = Field(0.02, ge=0.0, lt=1.0, description="ramp only when the accuracy interval shows the "
                               "challenger at most this much worse than the champion (a fraction)")
    max_hours: float = Field(168.0, gt=0.0, description="an experiment still undecided after this long stops and "
                             "keeps the champion")
    watch_hours: float = Field(72.0, ge=0.0, description="after a promotion, the new champion is watched this long "
                               "and rolled back if its live accuracy is conclusively below its predecessor's")
    check_minutes: int = Field(5, ge=1, le=59, description="how often the experiment DAG looks (it also runs when "
                               "new log partitions arrive)")
    router_url: str = Field("", description="the router the experiment DAG changes the split through (`POST /config` "
                            "with TICKET_AB_ADMIN_TOKEN; empty: http://TICKET_AB_HOST:TICKET_AB_PORT)")
    ramp: ActionMode = Field("auto", description="ramping to the next step: auto, ask or off")
    promote: ActionMode = Field("auto", description="promoting the challenger: auto, ask or off")
    stop: ActionMode = Field("auto", description="stopping the experiment (split 0, challenger alias removed): "
                             "auto, ask or off")
    rollback: ActionMode = Field("auto", description="rolling a watched champion back to `previous`: auto, ask or off")

    @field_validator("steps")
    @classmethod
    def _valid_steps(cls, value: str) -> str:
        _ramp(value)
        return value

    @property
    def ramp_steps(self) -> tuple[float, ...]:
        return _ramp(self.steps)


class AlertSettings(BaseSettings):
    """Where the loop's alerts go (Apprise URLs: `tgram://BOT_TOKEN/CHAT_ID`, `slack://...`, `json://host/path`)."""

    model_config = _config("TICKET_AB_ALERT_")
    urls: str = Field("", repr=False, description="Apprise URLs, comma-separated, that every alert is sent to "
                      "(they may hold tokens: environment or secret file only; unset: alerts are only logged)")
    link: str = Field("", description="base URL an alert links to (empty: the MLflow tracking server)")
    timeout_s: float = Field(10.0, gt=0.0, description="how long one alert may take to send before it is given up "
                             "(logged; the decision it reports stands)")


class Settings(BaseSettings):
    """Typed view of the environment: shared names at the top, one group per component."""

    model_config = _config("TICKET_AB_")
    home: Path = Field(Path("var"),
        description="root of all runtime state: mlflow/, airflow/, logs/, reports/, router/, incoming/, data/, run/")
    mlflow_port: int = Field(5000, ge=1, le=65535,
        description="port of the local MLflow server that `make mlflow` and `make demo` start")
    airflow_port: int = Field(8080, ge=1, le=65535,
        description="port of the Airflow UI (`airflow standalone`) that `make airflow` starts")
    tracking_uri: str = _env("MLFLOW_TRACKING_URI", "",
                             "MLflow tracking server or a sqlite:/// URI (empty: the local server on "
                             "TICKET_AB_MLFLOW_PORT)")
    model_name: str = Field("ticket-classifier", description="registered model whose aliases are served")
    experiment: str = Field("ticket-ab", description="MLflow experiment of training and drift runs")
    seed: int = Field(42, ge=0, description="seed of splits, selection and sampling")
    router: RouterSettings = Field(default_factory=RouterSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    relabel: RelabelSettings = Field(default_factory=RelabelSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    ab: ABSettings = Field(default_factory=ABSettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    alert: AlertSettings = Field(default_factory=AlertSettings)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return Path(value).resolve()

    def model_post_init(self, _context: Any) -> None:
        if not self.tracking_uri:
            object.__setattr__(self, "tracking_uri", f"http://127.0.0.1:{self.mlflow_port}")

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def airflow_dir(self) -> Path:
        return self.home / "airflow"

    @property
    def logs_dir(self) -> Path:
        """The log root: `requests/` and `feedback/` partitions below it (see ticket_ab.logstore)."""
        return self.home / (self.log.root or "logs")  # a relative root is below the home, whatever the cwd

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


GROUPS: dict[str, type[BaseSettings]] = {
    name: info.annotation for name, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings)
}


def _env_name(group: type[BaseSettings], field: str) -> str:
    alias = group.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{group.model_config.get('env_prefix', '')}{field}".upper()


def _knobs() -> list[tuple[str | None, type[BaseSettings], str]]:
    """(group or None for the top level, class, field) for every environment knob."""
    top = [(None, Settings, name) for name in Settings.model_fields if name not in GROUPS]
    return top + [(group, cls, name) for group, cls in GROUPS.items() for name in cls.model_fields]


def env_names() -> dict[str, str]:
    """Setting path (`port` is `router.port`) -> environment variable: the README table and compose use it."""
    return {(f"{group}.{name}" if group else name): _env_name(cls, name) for group, cls, name in _knobs()}


def describe() -> list[dict[str, str]]:
    """Group, environment variable, default and description of every knob: the README's configuration table."""
    rows = []
    for group, cls, name in _knobs():
        info = cls.model_fields[name]
        default = "(none)" if info.default in ("", None) else str(info.default)
        rows.append({"group": group or "shared", "variable": f"`{_env_name(cls, name)}`", "default": f"`{default}`",
                     "what it sets": info.description or ""})
    return rows


def to_env(settings: Settings, *, secrets: bool = False) -> dict[str, str]:
    """The environment that recreates `settings` in a child process (tokens only if asked)."""
    env = {}
    for group, cls, name in _knobs():
        holder = getattr(settings, group) if group else settings
        value = getattr(holder, name)
        if value is not None and (secrets or cls.model_fields[name].repr is not False):  # None: unset, the default
            env[_env_name(cls, name)] = str(value)
    return env


def _message(error: ValidationError) -> str:
    """Name the environment variable, whichever group raised (a group reads the environment itself)."""
    raised_by = {cls.__name__: cls for cls in (Settings, *GROUPS.values())}.get(error.title, Settings)
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        owner = GROUPS.get(loc[0], raised_by) if len(loc) > 1 else raised_by
        field = loc[-1]
        name = _env_name(owner, field) if field in owner.model_fields else field
        problems.append(f"{name}={item.get('input')!r}: {item['msg']}")
    return "; ".join(problems)


def get_settings(**overrides: Any) -> Settings:
    """Read the environment now (not at import), so tests and subprocesses see their own values.

    Overrides name top-level fields (`home=...`) or a group with a dict of its fields
    (`drift={"text_p": 0.001}`); everything not named keeps its environment value.
    """
    try:
        settings = Settings()
        if not overrides:
            return settings
        values = settings.model_dump()
        for key, value in overrides.items():
            if key not in Settings.model_fields:
                raise SettingsError(f"unknown settings: {key!r}")
            values[key] = {**values[key], **value} if key in GROUPS else value
        if "mlflow_port" in overrides and "tracking_uri" not in overrides:
            values["tracking_uri"] = ""
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_message(exc)) from None
