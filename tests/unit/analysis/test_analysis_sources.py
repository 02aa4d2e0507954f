"""No single feedback source decides the verdict: shares per arm, leave-one-source-out verdicts, the veto."""

import json
import shutil

import pandas as pd
import pytest
from experiment_logs import LogSpec, Phase
from logfiles import append_rows

from analysis import analysis, experiment, sources, traffic
from analysis.prepare import prepare
from analysis.verdict import PROMOTE
from ticket_ab import logscan
from ticket_ab.requestlog import FEEDBACK_COLUMNS, read_feedback, read_requests
from ticket_ab.settings import ABSettings

HONEST = (("desk-1", 0.35), ("desk-2", 0.35))
REPLAY = {"acc_a": 0.80, "acc_b": 0.80, "feedback_sources": (*HONEST, ("mallory", 0.30)), "biased_source": "mallory"}
NO_REGISTRY = ["--no-cupac", "--tracking-uri", "http://127.0.0.1:9"]
QUICK = ABSettings(resamples=50)  # macro-F1's bootstrap plays no part in the verdict


def _run(logs, out, *flags) -> tuple[int, dict]:
    code = analysis.main(["--logs", str(logs), "--out", str(out), *NO_REGISTRY, *flags])
    return code, json.loads((out / "ab_summary.json").read_text())


def _analysed(logs) -> tuple[experiment.Analysis, dict]:
    """The analysis and its label sources, as analysis.py's `load` makes them (without the files)."""
    feedback = read_feedback(logs).rows
    result = experiment.analyse(read_requests(logs).rows, feedback, thresholds=QUICK)
    return result, result.summary["label_sources"]


def test_replay_a_source_swaying_the_labels_decides_the_verdict_and_its_promotion_is_refused_by_name(ab_logs):
    # Both models are equally good; 'mallory' (30% of the labels) marks B's answers right and A's wrong.
    result, label_sources = _analysed(ab_logs(LogSpec(phases=[Phase(1600)], seed=3, **REPLAY)))

    assert result.summary["verdict"]["action"] == PROMOTE  # on every label the attack works: the veto must catch it
    by_source = {r["source"]: r for r in label_sources["sources"]}
    assert label_sources["deciding"] == ["mallory"] and by_source["mallory"]["without"]["action"] != PROMOTE
    assert by_source["desk-1"]["without"]["action"] == PROMOTE  # an honest desk left out: mallory still sways it
    for arm in ("A", "B"):
        assert by_source["mallory"]["per_arm"][arm]["share"] == pytest.approx(0.30, abs=0.05)
    promotion = analysis.promote_if_due({**result.summary, "label_sources": label_sources}, "http://127.0.0.1:9", "m")
    assert promotion["refused"] and not promotion["done"]  # refused before the registry is even asked
    assert promotion["status"].startswith("promotion refused: the verdict does not hold without feedback source "
                                          "'mallory': the promotion rests on source 'mallory' (")


def test_with_one_source_the_report_says_the_verdict_rests_on_it_and_nothing_is_left_out(ab_logs):
    result, label_sources = _analysed(ab_logs(LogSpec(phases=[Phase(600)], seed=6)))
    assert label_sources["single_source"] and label_sources["sources"][0]["without"] is None
    assert not label_sources["deciding"] and label_sources["majority"] == "agent"
    assert label_sources["statement"] == (f"the verdict rests on one feedback source, 'agent' (all "
                                          f"{result.summary['data']['labelled_analysed']:,} labels): there is no "
                                          "other source to check it against (the normal case for a single desk)")


@pytest.mark.slow
def test_a_source_labelling_the_challenger_right_and_the_champion_wrong_cannot_get_it_promoted(ab_logs, tmp_path,
                                                                                              capsys):
    # Replay: both models are equally good; 'mallory' (30% of the labels) marks B's answers right, A's wrong.
    code, s = _run(ab_logs(LogSpec(phases=[Phase(4000)], seed=3, **REPLAY)), tmp_path / "r", "--promote")

    assert s["verdict"]["action"] == PROMOTE  # on every label the attack works: this is what the veto must catch
    by_source = {r["source"]: r for r in s["label_sources"]["sources"]}
    assert s["label_sources"]["deciding"] == ["mallory"] and by_source["mallory"]["decides"]
    assert by_source["mallory"]["without"]["action"] != PROMOTE
    assert by_source["desk-1"]["without"]["action"] == PROMOTE  # an honest desk left out: mallory still sways it
    for arm in ("A", "B"):
        assert by_source["mallory"]["per_arm"][arm]["share"] == pytest.approx(0.30, abs=0.04)
    assert code == analysis.EXIT_REFUSED and s["promotion"]["done"] is False and s["promotion"]["refused"]
    captured = capsys.readouterr()
    assert captured.err.startswith("error: promotion refused: the verdict does not hold without feedback source "
                                   "'mallory'")
    assert "labels from 'mallory'" in captured.out and "DECIDES" in captured.out
    page = (tmp_path / "r" / "ab_report.html").read_text()
    assert "Rests on one source: the promotion rests on source &#39;mallory&#39;" in page
    assert s["label_sources"]["statement"] in s["notes"]


@pytest.mark.slow
def test_the_verdict_without_a_source_is_the_analysis_run_on_the_other_sources_labels(ab_logs, tmp_path):
    logs = ab_logs(LogSpec(phases=[Phase(3000)], acc_a=0.80, acc_b=0.88, feedback_sources=(*HONEST, ("desk-3", 0.3)),
                           seed=4))
    _, s = _run(logs, tmp_path / "all")
    feedback = read_feedback(logs).rows
    _rewrite(logs, tmp_path / "without", feedback.loc[feedback["source"] != "desk-2"])
    _, without = _run(tmp_path / "without", tmp_path / "r2")

    (desk_2,) = [r for r in s["label_sources"]["sources"] if r["source"] == "desk-2"]
    assert desk_2["without"]["diff"] == pytest.approx(without["comparison"]["diff"])
    assert desk_2["without"]["labelled"] == without["comparison"]["n_a"] + without["comparison"]["n_b"]
    assert desk_2["without"]["action"] == without["verdict"]["action"]
    assert sum(r["labels"] for r in s["label_sources"]["sources"]) == s["data"]["labelled_analysed"]
    assert s["label_sources"]["majority"] is None and not s["label_sources"]["deciding"]


def _rewrite(logs, target, feedback):
    """A copy of `logs` whose feedback log holds only `feedback`."""
    shutil.copytree(logs / "requests", target / "requests")
    rows = feedback.assign(timestamp=feedback["timestamp"].map(lambda t: t.isoformat()))
    append_rows(target, FEEDBACK_COLUMNS, rows[list(FEEDBACK_COLUMNS)].astype(str).to_dict("records"))


@pytest.mark.slow
def test_one_source_is_stated_and_never_blocks_a_promotion(ab_logs, tmp_path, capsys):
    code, s = _run(ab_logs(acc_a=0.80, acc_b=0.88), tmp_path / "r", "--promote")

    assert s["label_sources"]["single_source"] and s["label_sources"]["sources"][0]["without"] is None
    assert s["label_sources"]["statement"].startswith("the verdict rests on one feedback source, 'agent'")
    assert s["verdict"]["action"] == PROMOTE and not s["label_sources"]["deciding"]
    assert s["promotion"]["status"].startswith("promotion failed")  # attempted: only the test's registry is missing
    assert code == analysis.EXIT_USER_ERROR
    assert "sources: the verdict rests on one feedback source" in capsys.readouterr().out


@pytest.mark.slow
def test_a_source_with_most_labels_is_marked_and_a_real_gain_holds_without_it(ab_logs, tmp_path):
    logs = ab_logs(LogSpec(phases=[Phase(5000)], acc_a=0.75, acc_b=0.90, feedback_sources=(("big", 0.6),
                                                                                            ("small", 0.4)), seed=5))
    code, s = _run(logs, tmp_path / "r")
    label_sources = s["label_sources"]
    assert code == 0 and label_sources["majority"] == "big"
    assert s["verdict"]["action"] == PROMOTE and not label_sources["deciding"]
    assert all(r["without"]["action"] == PROMOTE for r in label_sources["sources"])
    assert "(more than half); the promotion holds without any one of them" in label_sources["statement"]


def test_shares_per_arm_follow_the_join_rule_the_last_label_of_a_request_counts():
    requests = pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-01T09:00Z"] * 4), "request_id": ["r1", "r2", "r3",
                                                                                                     "r4"],
                             "variant": ["A", "A", "B", "B"], "topic": "email", "mode": "split", "split_b": "0.5",
                             "customer_id": ["c1", "c2", "c3", "c4"]})
    feedback = pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-01T10:00Z", "2026-01-01T11:00Z",
                                                          "2026-01-01T10:00Z", "2026-01-01T10:00Z",
                                                          "2026-01-01T10:00Z"]),
                             "request_id": ["r1", "r1", "r2", "r3", "r9"], "label": ["access", "email", "email",
                                                                                      "access", "email"],
                             "source": ["x", "y", "", "x", "x"]})
    with logscan.connect(256) as con:
        logscan.frames(con, requests, feedback)
        prepared = prepare(con, None)
        traffic.window(prepared, None)
        traffic.analysed(prepared, list(traffic.periods(prepared)["key"]), [])
        traffic.labels(prepared, traffic.sources(prepared))
        by_request = prepared.frame("SELECT request_id, source, COLUMNS('without_.*') FROM lab_rows").set_index(
            "request_id")
        names = traffic.sources(prepared)
    by_request = by_request.rename(columns={f"without_{i}": f"without:{n}" for i, n in enumerate(names)})
    assert by_request["source"].replace("", sources.UNNAMED).to_dict() == {"r1": "y", "r2": sources.UNNAMED, "r3": "x"}
    assert by_request["without:y"].to_dict() == {"r1": "access", "r2": "email", "r3": "access"}  # x's earlier label
    assert pd.isna(by_request.loc["r3", "without:x"]) and by_request.loc["r1", "without:x"] == "email"


def test_leaving_a_source_out_gives_cells_of_the_labels_the_other_sources_give(ab_logs):
    logs = ab_logs(LogSpec(phases=[Phase(600)], seed=5, **REPLAY))
    feedback = read_feedback(logs).rows
    earlier = feedback.head(80).assign(timestamp=lambda f: f["timestamp"] - pd.Timedelta(seconds=1), source="second",
                                       label=lambda f: f["label"].map({"billing": "access"}).fillna("billing"))
    with logscan.connect(256) as con:  # 80 requests labelled twice: without the later source the earlier label counts
        logscan.frames(con, read_requests(logs).rows, pd.concat([earlier, feedback], ignore_index=True))
        prepared = prepare(con, None)
        traffic.window(prepared, None)
        traffic.analysed(prepared, list(traffic.periods(prepared)["key"]), [])
        names = traffic.sources(prepared)
        traffic.labels(prepared, names)
        traffic.label_cells(prepared, len(names))
        requests = prepared.frame("SELECT * FROM lab_rows")
        labelled = traffic.cells(prepared, "label")
        for i, name in enumerate(names):
            found = experiment._without_source(prepared, names, False, name)
            per_label = found.groupby("label", observed=True)["count"].sum()
            assert per_label.to_dict() == requests[f"without_{i}"].value_counts().to_dict()
            assert found["count"].sum() < labelled["count"].sum()  # the source's only labels are dropped
            assert not per_label.equals(labelled.groupby("label", observed=True)["count"].sum())
