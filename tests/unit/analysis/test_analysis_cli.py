"""`analysis/analysis.py` end to end on synthetic logs: files, numbers, messages and exit codes."""

import base64
import html
import json

import pytest
from experiment_logs import LogSpec, Phase

from analysis import analysis, fmt
from ticket_ab.requestlog import REQUEST_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strict_json(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_report_files_carry_the_same_numbers(ab_logs, tmp_path, capsys):
    out = tmp_path / "reports"
    assert analysis.main(["--logs", str(ab_logs(acc_a=0.80, acc_b=0.88)), "--out", str(out)]) == 0
    s = strict_json(out / "ab_summary.json")
    png = (out / "ab_report.png").read_bytes()
    page = (out / "ab_report.html").read_text()
    assert png.startswith(PNG_MAGIC) and len(png) > 50_000
    assert base64.b64encode(png).decode() in page  # self-contained: the figure is inline
    assert "<script" not in page and "src='http" not in page
    c = s["comparison"]
    numbers = [s["verdict"]["text"], fmt.pts(c["diff"]), fmt.interval([c["ci_low"], c["ci_high"]], fmt.pts),
               c["interval"], c["evidence"]["statement"], fmt.pval(s["srm"]["p_value"])]
    numbers += [fmt.interval([g["ci_low"], g["ci_high"]], fmt.ms if g["name"].endswith("latency") else fmt.pts)
                for g in s["guardrails"]]
    numbers.append(c["estimand"]["statement"])
    for arm in ("A", "B"):
        a = s["arms"][arm]
        numbers += [fmt.pct(a["accuracy"]), fmt.interval(a["accuracy_ci"]), fmt.pct(a["macro_f1"]),
                    fmt.num(a["requests"]), fmt.num(a["labelled"]), fmt.ms(a["latency_ms"]["p99"])]
        numbers += [fmt.pct(share) for share in a["topic_mix"].values()]
    missing = [n for n in numbers if html.escape(n) not in page]
    assert not missing
    console = capsys.readouterr().out
    assert f"VERDICT: {s['verdict']['text']}" in console
    assert str(out / "ab_report.html") in console and str(out / "ab_summary.json") in console
    assert fmt.pct(s["arms"]["B"]["accuracy"]) in console
    assert c["evidence"]["statement"] in console and "customers" in console
    assert f"estimand: {c['estimand']['statement']}" in console


def test_fixed_horizon_is_a_flag_and_the_thresholds_come_from_the_settings(ab_logs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TICKET_AB_TEST_MIN_GAIN", "0.5")
    monkeypatch.setenv("TICKET_AB_TEST_RESAMPLES", "50")
    out = tmp_path / "reports"
    assert analysis.main(["--logs", str(ab_logs(acc_a=0.80, acc_b=0.88)), "--out", str(out), "--fixed-horizon",
                          "--horizon", "5000"]) == 0
    s = strict_json(out / "ab_summary.json")
    assert not s["comparison"]["sequential"] and s["comparison"]["interval"].startswith("fixed-horizon")
    assert s["thresholds"]["min_gain"] == 0.5 and s["thresholds"]["horizon"] == 5000
    assert s["verdict"]["action"] == "keep champion"  # +8 points rules out a gain of 50


@pytest.mark.parametrize("spec", [
    LogSpec(phases=[Phase(600)], feedback_rate=0.0),
    LogSpec(phases=[Phase(600, split_b=0.0)]),
    LogSpec(phases=[Phase(800, mode="shadow")]),
    LogSpec(phases=[Phase(300, split_b=0.1), Phase(300, mode="shadow"), Phase(300, split_b=0.5)]),
    LogSpec(phases=[Phase(5)]),
], ids=["no-feedback", "one-arm", "shadow", "mode-and-split-changes", "five-requests"])
def test_edge_cases_still_write_a_report(spec, ab_logs, tmp_path, capsys):
    out = tmp_path / "reports"
    assert analysis.main(["--logs", str(ab_logs(spec)), "--out", str(out)]) == 0
    assert (out / "ab_report.png").read_bytes().startswith(PNG_MAGIC)
    s = strict_json(out / "ab_summary.json")
    assert s["verdict"]["action"] in ("keep collecting", "keep champion", "promote challenger")
    assert "VERDICT:" in capsys.readouterr().out


def test_missing_log_is_one_error_line_and_exit_2(tmp_path, capsys):
    assert analysis.main(["--logs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no request log at") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_header_only_log_is_exit_2_with_advice(tmp_path, capsys):
    day = tmp_path / "logs" / "requests" / "date=2026-11-24"
    day.mkdir(parents=True)
    (day / "requests-web_1-7-20261124T000000000000Z-0001.csv").write_text(",".join(REQUEST_COLUMNS) + ",crc\n")
    assert analysis.main(["--logs", str(tmp_path / "logs"), "--out", str(tmp_path / "r")]) == 2
    assert "the request log has no rows yet" in capsys.readouterr().err


def test_bad_since_is_exit_2(ab_logs, tmp_path, capsys):
    assert analysis.main(["--logs", str(ab_logs(LogSpec(phases=[Phase(50)]))), "--since", "last tuesday"]) == 2
    assert "--since 'last tuesday' is not a timestamp" in capsys.readouterr().err


def test_defaults_come_from_settings(ab_logs, tmp_path, monkeypatch):
    home = tmp_path / "home"
    ab_logs(LogSpec(phases=[Phase(200)])).rename(home.parent / "moved")
    (home).mkdir()
    (tmp_path / "moved").rename(home / "logs")
    monkeypatch.setenv("TICKET_AB_HOME", str(home))
    assert analysis.main([]) == 0
    assert (home / "reports" / "ab_summary.json").exists()


def test_promote_is_not_attempted_without_a_promote_verdict(ab_logs, tmp_path, capsys):
    out = tmp_path / "r"
    code = analysis.main(["--logs", str(ab_logs(LogSpec(phases=[Phase(300)]))), "--out", str(out), "--promote",
                          "--tracking-uri", "http://127.0.0.1:9"])
    assert code == 0
    promotion = strict_json(out / "ab_summary.json")["promotion"]
    assert promotion["done"] is False and promotion["status"].startswith("not promoted: the verdict is keep")
    assert "registry: not promoted" in capsys.readouterr().out


def test_promote_with_an_unreachable_registry_is_exit_2_but_the_report_is_written(ab_logs, tmp_path, capsys):
    out = tmp_path / "r"
    code = analysis.main(["--logs", str(ab_logs(acc_a=0.80, acc_b=0.88)), "--out", str(out), "--promote",
                          "--tracking-uri", "http://127.0.0.1:9"])
    assert code == 2
    s = strict_json(out / "ab_summary.json")
    assert s["verdict"]["action"] == "promote challenger"
    assert s["promotion"]["done"] is False and "not reachable" in s["promotion"]["status"]
    assert "promotion failed" in (out / "ab_report.html").read_text()
    err = capsys.readouterr().err
    assert err.startswith("error: promotion failed") and "Traceback" not in err
