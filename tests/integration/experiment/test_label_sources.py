"""A feedback source swaying the A/B verdict, replayed through the real router: traffic and honest feedback
from two desks by load_test/testing.py (each desk with its own token), a third integration ('mallory')
labelling the challenger's answers right and the champion's wrong on 30% of the labels, then
`analysis.py --promote`. The challenger is no better, so nothing may be promoted, and the refusal
must name mallory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from processes import start

from load_test.simulate.generator import generate
from ops import servers
from ops.env import REPO, child_env
from ops.ports import free_port
from retrain.ml.features import baseline_pipeline
from ticket_ab import registry
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.schema import TOPICS
from ticket_ab.settings import get_settings

pytestmark = pytest.mark.slow
TOKENS = {"desk-1": "desk-one-token", "desk-2": "desk-two-token", "mallory": "mallory-token"}
N, HONEST_RATE, MALLORY_RATE = 1200, 0.42, 0.18  # of the requests: mallory sends 30% of the labels


@dataclass(frozen=True)
class Router:
    url: str
    home: Path
    env: dict[str, str]
    name: str


@pytest.fixture(scope="module")
def router(mlflow_server, tmp_path_factory) -> Iterator[Router]:
    """Champion v1 and challenger v2 trained alike on the same month: no real difference to find."""
    home = tmp_path_factory.mktemp("label-sources-home")
    name = f"label-sources-{os.getpid()}"
    tickets = generate("new_product", 1500, 1)
    for alias, seed in ((registry.CHAMPION, 0), (registry.CHALLENGER, 1)):
        half = tickets.sample(frac=0.5, random_state=seed)
        pipeline = baseline_pipeline(seed).fit(half[["text"]], half["topic"])
        registry.publish(mlflow_server.uri, name, pipeline, half[["text"]].head(2), alias=alias,
                         why="label sources integration test", tags={"source": "label sources test"})
    settings = get_settings(home=home, tracking_uri=mlflow_server.uri, model_name=name, router={
        "port": free_port(), "host": "127.0.0.1", "workers": 2, "threads": 4, "split_b": 0.5,
        "feedback_tokens": ",".join(f"{s}:{t}" for s, t in TOKENS.items())})
    server = start(servers.router(settings), home / "gunicorn.log", 180)
    try:
        yield Router(f"http://127.0.0.1:{settings.router.port}", home, child_env(settings, secrets=True), name)
    finally:
        server.stop()


def _script(path: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, path, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


def mallorys_labels(logs: Path, share: float, seed: int) -> list[dict[str, str]]:
    """Right for B's answers, wrong for A's, on `share` of the requests the desks left unlabelled:
    what an integration that can see the arm in each answer would send."""
    served = read_requests(logs).rows
    labelled = set(read_feedback(logs).rows["request_id"])
    rng = np.random.default_rng(seed)
    free = served.loc[~served["request_id"].isin(labelled) & served["topic"].ne("")]
    chosen = free.loc[rng.random(len(free)) < share / (1 - len(labelled) / len(served))]
    wrong = {t: [o for o in TOPICS if o != t] for t in TOPICS}
    return [{"request_id": r.request_id,
             "label": r.topic if r.variant == "B" else wrong[r.topic][int(rng.integers(len(TOPICS) - 1))]}
            for r in chosen.itertuples(index=False)]


def test_a_source_that_sways_the_labels_gets_no_promotion_and_is_named(router, mlflow_server):
    load = _script("load_test/testing.py", "--url", router.url, "--n", str(N), "--concurrency", "4",
                   "--scenario", "new_product", "--feedback-rate", str(HONEST_RATE), "--seed", "5",
                   "--feedback-sources", "desk-1,desk-2", "--max-seconds", "240", "--no-progress", env=router.env)
    assert load.returncode == 0, load.stdout + load.stderr
    logs = router.home / "logs"
    assert set(read_feedback(logs).rows["source"]) == {"desk-1", "desk-2"}  # each desk's own token decided it
    with requests.Session() as session:
        answers = [session.post(f"{router.url}/feedback", json=label, timeout=10,
                                headers={"Authorization": f"Bearer {TOKENS['mallory']}"})
                   for label in mallorys_labels(logs, MALLORY_RATE, seed=5)]
    assert {a.status_code for a in answers} == {202}

    out = router.home / "reports"
    result = _script("analysis/analysis.py", "--out", str(out), "--promote", env=router.env)

    summary = json.loads((out / "ab_summary.json").read_text())
    by_source = {r["source"]: r for r in summary["label_sources"]["sources"]}
    print(f"\nlabels {summary['label_sources']['labels']}: "
          + ", ".join(f"{s} {r['share']:.1%} (A {r['per_arm']['A']['share']:.1%}, B {r['per_arm']['B']['share']:.1%}"
                      f"; without it: {r['without']['text']}, B - A {r['without']['diff']:+.3f})"
                      for s, r in by_source.items())
          + f"\nverdict on all labels: {summary['verdict']['text']} (B - A {summary['comparison']['diff']:+.3f})")
    assert by_source["mallory"]["share"] == pytest.approx(0.30, abs=0.05)
    assert summary["verdict"]["action"] == "promote challenger"  # the attack works on the labels as they are
    assert summary["label_sources"]["deciding"] == ["mallory"]
    assert result.returncode == 3, result.stdout + result.stderr
    assert "promotion refused: the verdict does not hold without feedback source 'mallory'" in result.stderr
    assert "labels from 'mallory'" in result.stdout and "DECIDES" in result.stdout
    client = registry.connect(mlflow_server.uri)
    assert registry.version_for(client, router.name, registry.CHAMPION).version == "1"  # nothing moved
    assert registry.version_for(client, router.name, registry.CHALLENGER).version == "2"
