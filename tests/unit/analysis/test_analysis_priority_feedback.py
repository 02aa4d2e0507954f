"""Feedback correcting only the priority in the A/B report's window: it is no topic label (every topic figure of the
summary stays what it was without it) and it is not blank either (`prepare` counts it as `priority_only`). The log
files mix shards written before the feedback log had a `priority` column with shards that have it."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from experiment_logs import LogSpec, Phase
from logfiles import append_rows
from summaries import topic_figures

from analysis.experiment import Options, analyse_logs
from analysis.prepare import prepare
from ticket_ab import logscan
from ticket_ab.logstore import FEEDBACK, shard_files
from ticket_ab.requestlog import FEEDBACK_COLUMNS, read_feedback, read_requests
from ticket_ab.schema import PRIORITIES
from ticket_ab.settings import ABSettings

pytestmark = pytest.mark.slow  # runs whole A/B reports: `make test` runs it, `make check` does not

FAST = Options(ABSettings(resamples=50))
OLD_FEEDBACK = tuple(c for c in FEEDBACK_COLUMNS if c != "priority")


def _priority_only(logs, seed: int = 0) -> int:
    """Priority-only corrections, in a shard with the column: for labelled and unlabelled requests (several for some,
    the last one after the request's topic label) and one for a request the log does not have. Returns their count."""
    rng = np.random.default_rng(seed)
    requests = read_requests(logs).rows
    chosen = requests.sample(n=300, random_state=seed)
    rows = [{"timestamp": (stamp + pd.Timedelta(minutes=int(rng.integers(1, 90)))).isoformat(), "request_id": rid,
             "label": "", "source": str(rng.choice(["agent", "desk"])), "priority": str(rng.choice(PRIORITIES))}
            for stamp, rid in zip(chosen["timestamp"], chosen["request_id"], strict=True) for _ in range(2)]
    rows.append({"timestamp": requests["timestamp"].iloc[0].isoformat(), "request_id": "no-such-request",
                 "label": "", "source": "agent", "priority": "urgent"})
    append_rows(logs, FEEDBACK_COLUMNS, sorted(rows, key=lambda r: r["timestamp"]))
    return len(rows)


def _as_older_shards(logs) -> None:
    """The feedback log rewritten by a writer from before the `priority` column (its header lacks it)."""
    rows = read_feedback(logs).rows
    shutil.rmtree(logs / FEEDBACK)
    rows = rows.assign(timestamp=rows["timestamp"].map(lambda t: t.isoformat()))[list(OLD_FEEDBACK)]
    append_rows(logs, OLD_FEEDBACK, rows.to_dict("records"))
    assert all(OLD_FEEDBACK == tuple(open(f).readline().strip().split(",")[:-1]) for f in shard_files(logs, FEEDBACK))


def test_priority_only_feedback_changes_no_topic_figure_of_the_ab_summary(ab_logs):
    logs = ab_logs(LogSpec(phases=[Phase(3000)], acc_a=0.80, acc_b=0.86, feedback_rate=0.5,
                           feedback_sources=(("agent", 0.6), ("desk", 0.4))))
    _as_older_shards(logs)
    before = analyse_logs(logs, logs, None, FAST).summary
    assert before["data"]["labelled_analysed"] > 1000
    added = _priority_only(logs)
    feedback = read_feedback(logs).rows
    assert feedback["priority"].ne("").sum() == added and feedback["label"].eq("").sum() == added

    after = analyse_logs(logs, logs, None, FAST).summary

    assert after["data"]["feedback_rows"] == before["data"]["feedback_rows"] + added
    assert topic_figures(after) == topic_figures(before)


def test_a_priority_only_row_is_counted_as_such_not_blank():
    requests = pd.DataFrame({"timestamp": pd.to_datetime(["2026-11-24T10:00:00Z"] * 3, utc=True),
                             "request_id": ["r1", "r2", "r3"], "variant": "A", "model_version": "3", "topic": "email",
                             "mode": "split", "split_b": "0.5", "text": "t"})
    feedback = pd.DataFrame({"timestamp": pd.to_datetime(["2026-11-24T10:01:00Z"] * 5, utc=True),
                             "request_id": ["r1", "r1", "r2", "r3", ""], "label": ["email", "", "", " ", "email"],
                             "source": "agent", "priority": ["", "urgent", "low", "", "low"]})
    with logscan.connect(256) as con:
        logscan.frames(con, requests, feedback)
        prepared = prepare(con, None)
        labels = dict(con.execute("SELECT request_id, label FROM w WHERE label IS NOT NULL").fetchall())
    assert labels == {"r1": "email"}
    assert {k: prepared.counts[k] for k in ("feedback_rows", "blank", "priority_only", "superseded")} == {
        "feedback_rows": 5, "blank": 2, "priority_only": 2, "superseded": 0}
