"""testing.py's HTTP loop against a tiny in-process fake router (http.server on 127.0.0.1).

The real router is exercised in tests/integration/experiment; here the fake lets each failure mode
(slow answers, 503s, a wrong token, not ready) be produced on demand and in milliseconds.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from fake_router import TOKEN, FakeRouter

from load_test import client, summary, testing, traffic


@pytest.fixture
def fake():
    with FakeRouter() as router:
        yield router


def plans(n: int, feedback_rate: float = 0.5):
    tickets = ({"text": f"ticket {i}", "topic": "billing"} for i in range(n))
    return traffic.plan(tickets, n=n, seed=0, feedback_rate=feedback_rate, label_noise=0.0,
                        customers=traffic.CustomerPool(50, seed=0))


def test_run_sends_every_planned_request_and_its_feedback(fake):
    run = client.run(fake.url, plans(60), concurrency=4, max_seconds=30, feedback_token=TOKEN)
    assert run.stopped_by == "count"
    assert len(run.results) == len(fake.predicts) == 60
    assert all(r.status == 200 and not r.error for r in run.results)
    planned = sum(r.feedback_planned for r in run.results)
    assert len(fake.feedback) == planned == sum(r.feedback_status == 202 for r in run.results)
    assert {auth for auth, _ in fake.feedback} == {f"Bearer {TOKEN}"}
    assert {body["source"] for _, body in fake.feedback} == {"load_test"}
    sent_ids = {body["request_id"] for _, body in fake.feedback}
    assert sent_ids == {r.request_id for r in run.results if r.feedback_planned}


def test_a_429_is_waited_out_and_sent_again_with_the_client_token_and_counted_as_throttled(fake):
    fake.throttle_first = 3
    run = client.run(fake.url, plans(10, feedback_rate=0.0), concurrency=1, max_seconds=30, feedback_token="",
                     client_token="client-secret")
    assert all(r.status == 200 and not r.error for r in run.results) and len(run.results) == 10
    assert len(fake.predicts) == 13 and set(fake.predict_auth) == {"Bearer client-secret"}
    result = summary.summarize(run, planned=10, max_error_rate=0.0)
    assert (result["throttled"], result["errors"], result["passed"]) == (3, 0, True)


def test_run_stops_at_max_seconds(fake):
    fake.delay_s = 0.05
    started = time.monotonic()
    run = client.run(fake.url, plans(10_000), concurrency=2, max_seconds=0.5, feedback_token=TOKEN)
    assert run.stopped_by == "time"
    assert 2 <= len(run.results) < 100
    assert time.monotonic() - started < 2.0


def test_run_ignores_proxy_settings_from_the_environment(fake, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    run = client.run(fake.url, plans(5, 0.0), concurrency=1, max_seconds=10, feedback_token="")
    assert [r.status for r in run.results] == [200] * 5


def test_check_ready_explains_each_failure(fake):
    assert client.check_ready(fake.url)["ready"] is True
    fake.ready_status = 503
    with pytest.raises(client.Unreachable, match="is up but not ready: no champion model is loaded yet"):
        client.check_ready(fake.url)
    fake.ready_status = 404
    with pytest.raises(client.Unreachable, match="does not look like the ticket-ab router"):
        client.check_ready(fake.url)
    with pytest.raises(client.Unreachable, match=r"at http://127.0.0.1:9 \(connection refused\); start it"):
        client.check_ready("http://127.0.0.1:9")


def test_main_prints_the_summary_and_a_json_line(fake, tmp_path, capsys):
    out = tmp_path / "load.json"
    code = testing.main(["--url", fake.url, "--n", "40", "--concurrency", "3", "--feedback-rate", "0.5",
                         "--feedback-token", TOKEN, "--json-out", str(out), "--seed", "3"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary == json.loads(out.read_text())
    assert summary["requests"] == 40 == len(fake.predicts)
    assert summary["feedback"]["accepted"] == len(fake.feedback) > 0
    assert {p["customer_id"][:2] for p in fake.predicts} == {"C-"}  # generated tickets carry customers
    assert "status     200: 40" in captured.out
    assert "40/40 100%" in captured.err  # the progress bar went to stderr


def test_main_exits_1_when_the_error_rate_passes_the_limit(fake, capsys):
    fake.fail_every = 5
    code = testing.main(["--url", fake.url, "--n", "50", "--feedback-rate", "0", "--max-error-rate", "0.05",
                         "--no-progress"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status_counts"] == {"200": 40, "503": 10}
    assert summary["error_rate"] == pytest.approx(0.2)


def test_main_reports_a_wrong_feedback_token_through_the_error_rate(fake, capsys):
    code = testing.main(["--url", fake.url, "--n", "30", "--feedback-rate", "1", "--feedback-token", "wrong",
                         "--no-progress"])
    assert code == 1
    out = capsys.readouterr().out
    assert "HTTP 401: unauthorized: 30" in out


def test_main_needs_a_token_for_feedback_and_a_reachable_router(fake, monkeypatch, capsys):
    monkeypatch.delenv("TICKET_AB_FEEDBACK_TOKEN", raising=False)
    assert testing.main(["--url", fake.url, "--n", "5", "--feedback-rate", "0.3"]) == 2
    assert "needs the router's feedback token" in capsys.readouterr().err
    assert testing.main(["--url", "http://127.0.0.1:9", "--n", "5", "--feedback-rate", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "error: cannot reach the router at http://127.0.0.1:9 (connection refused); start it or pass --url\n"
    assert fake.predicts == []


def test_main_replays_a_file_and_caps_n_at_its_length(fake, tmp_path, capsys):
    path = tmp_path / "tickets.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(12)], "topic": ["billing", "email"] * 6}).to_csv(path, index=False)
    code = testing.main(["--url", fake.url, "--from", str(path), "--n", "100", "--feedback-rate", "1",
                         "--feedback-token", TOKEN, "--no-progress"])
    assert code == 0
    assert sorted(p["text"] for p in fake.predicts) == sorted(f"t{i}" for i in range(12))
    assert all(p["customer_id"].startswith("C-") for p in fake.predicts)
    assert sorted(body["label"] for _, body in fake.feedback) == ["billing"] * 6 + ["email"] * 6
    assert f"{path} has 12 tickets; sending 12" in capsys.readouterr().err


def test_main_reports_an_unreadable_file_in_one_line(fake, tmp_path, capsys):
    assert testing.main(["--url", fake.url, "--from", str(tmp_path / "missing.csv"), "--feedback-rate", "0"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.csv'}: no such file\n"
