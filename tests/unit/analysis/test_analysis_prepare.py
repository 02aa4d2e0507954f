"""The window prepared in SQL (`analysis.prepare`) names each request's models as the definitions say, row by row.

The SQL works per minute of traffic and row by row only where a version changes; the reference here walks
the rows one at a time, straight from `analysis.experiment`'s definitions, on random logs where versions
change, shadow rows carry the challenger, the challenger fails, request ids repeat and new challengers
arrive after short and long champion-only runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.prepare import LEAD_IN_P, SHADOW_SHARE, Prepared, prepare
from ticket_ab import logscan
from ticket_ab.requestlog import FEEDBACK_COLUMNS


def _log(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    order = np.arange(n)
    stamps = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(np.sort(rng.integers(0, n * 400, n)), unit="ms")
    champion = np.where(order < rng.integers(0, n), "3", "5")
    challenger = np.where(order < rng.integers(0, n), "", np.where(order < rng.integers(0, n), "4", "6"))
    mode = np.where(rng.random(n) < 0.1, "shadow", "split")
    split = np.where(order < rng.integers(0, n), 0.05, 0.5)
    in_b = (rng.random(n) < split) & (challenger != "") & (mode == "split")
    fallback = np.where(in_b & (rng.random(n) < 0.1), "challenger_error", "")
    shadow = np.where((mode == "shadow") & (challenger != ""), challenger, "")
    return pd.DataFrame({
        "timestamp": stamps, "request_id": [f"r{i % (n - 5)}" for i in range(n)],
        "customer_id": [f"c{k}" for k in rng.integers(0, 40, n)], "variant": np.where(in_b, "B", "A"),
        "model_version": np.where(in_b & (fallback == ""), challenger, champion), "split_b": split, "mode": mode,
        "topic": np.where(rng.random(n) < 0.05, "", "billing"), "fallback": fallback, "shadow_version": shadow,
        "shadow_topic": np.where(shadow != "", "billing", "")})


def _reference(log: pd.DataFrame) -> pd.DataFrame:
    """Each request's champion and challenger by the definitions, one row at a time."""
    rows = log.sort_values("timestamp", kind="stable")
    rows = rows[~rows["request_id"].duplicated()].reset_index(names="ord")  # ord: the row's place in the log
    answered = ((rows["variant"] == "B") & (rows["fallback"] == "") & (rows["topic"] != "")).tolist()
    champion, challenger, last_a, last_b = [], [], None, ""
    for i, row in rows.iterrows():
        if not answered[i] and row["model_version"]:
            last_a = row["model_version"]
        seen = row["model_version"] if answered[i] else row["shadow_version"]
        last_b = seen or last_b
        champion.append(last_a)
        challenger.append(last_b)
    first_a = next((c for c in champion if c), "")
    champion = [c or first_a for c in champion]
    for i in range(len(rows)):  # a new challenger's lead-in: a chance-short champion-only run just before it
        if challenger[i] and challenger[i] != (challenger[i - 1] if i else ""):
            share = rows.loc[i, "split_b"] if rows.loc[i, "mode"] == "split" else SHADOW_SHARE
            longest = int(math.log(LEAD_IN_P) / math.log(1 - share)) if 0 < share < 1 else 0
            run = 0
            while run < i and run <= longest and not answered[i - run - 1]:
                run += 1
            if 0 < run <= longest:
                challenger[i - run:i] = [challenger[i]] * run
    challenger = ["" if b == a else b for a, b in zip(champion, challenger, strict=True)]
    return pd.DataFrame({"ord": rows["ord"], "champion": champion, "challenger": challenger})


@pytest.mark.parametrize("seed", range(12))
def test_every_request_gets_the_champion_and_challenger_the_definitions_give(seed):
    log = _log(seed)
    with logscan.connect(256) as con:
        logscan.frames(con, log, pd.DataFrame(columns=list(FEEDBACK_COLUMNS)))
        prepared = prepare(con, None)
        found = prepared.frame("SELECT ord, champion, challenger FROM w ORDER BY ts, ord")
    pd.testing.assert_frame_equal(found, _reference(log), check_dtype=False)


def test_a_logged_confidence_that_is_not_a_finite_number_counts_as_not_logged():
    log = _log(1, 40).assign(champion_confidence=["nan", "inf", "-inf", "", "0.75"] * 8)
    feedback = pd.DataFrame({"timestamp": log["timestamp"], "request_id": log["request_id"], "label": "billing"})
    with logscan.connect(256) as con:
        logscan.frames(con, log, feedback.reindex(columns=FEEDBACK_COLUMNS, fill_value="").assign(
            timestamp=log["timestamp"]))
        prepared = prepare(con, None)
        logged = prepared.frame("SELECT champion_confidence FROM w WHERE label IS NOT NULL")["champion_confidence"]
    assert logged.notna().sum() == (log.drop_duplicates("request_id")["champion_confidence"] == "0.75").sum()
    assert (logged.dropna() == 0.75).all()


def test_lowering_the_engines_memory_holds_except_inside_whole_even_when_it_fails():
    with logscan.connect(256) as con:
        prepared = Prepared(con)
        setting = lambda: con.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # noqa: E731
        full = setting()
        prepared.lower(256, 128)
        lowered = setting()
        with pytest.raises(RuntimeError), prepared.whole():
            assert setting() == full
            raise RuntimeError("a query failed")
        assert setting() == lowered != full
