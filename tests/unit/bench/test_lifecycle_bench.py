"""A smoke test of the lifecycle bench (`bench/lifecycle_bench.py`) on a tiny population: the simulator
keeps its invariants and the last line keeps the format other scripts parse. Its numbers are the bench's."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from ticket_ab.settings import ABSettings, RolloutSettings

BENCH = Path(__file__).resolve().parents[3] / "bench" / "lifecycle_bench.py"
RUNS = 2
FINAL = re.compile(r"lifecycle: A/A promoted \d+/(\d+), \+8pt promoted \d+/\1 \(median (\d+\.\d|nan) h\), "
                   r"-8pt stopped \d+/\1 \(max exposure \d+\.\d%\), degraded rolled back \d+/\1")


@pytest.fixture(scope="module")
def bench():
    """The bench script as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("lifecycle_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    sys.path.insert(0, str(BENCH.parent))  # as when it runs as a script: its neighbours (heavy_tail) import
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH.parent))
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def setup(bench):
    """120 customers, 60 tickets an hour, a day's experiment, a look every 2 h: seconds for every scenario."""
    return bench.make_setup(bench.Population(customers=120, rate=60.0, look_minutes=120.0),
                            RolloutSettings(max_hours=24, watch_hours=12, min_customers=5), ABSettings(min_labelled=20))


@pytest.fixture(scope="module")
def results(bench, setup):
    return bench.run_all(setup, RUNS, first_seed=100_000, workers=1, progress=False)


def test_the_challengers_shift_gives_each_scenarios_average_gain(bench, setup):
    u = setup.pop.sigma * np.random.default_rng(7).standard_normal(100_000)
    assert expit(setup.level + u).mean() == pytest.approx(setup.pop.p0, abs=0.005)
    for scenario, gain in bench.GAINS.items():
        gained = expit(setup.level + u + setup.thetas[scenario]) - expit(setup.level + u)
        assert gained.mean() == pytest.approx(gain, abs=0.005)


def test_a_ramp_only_adds_customers_to_the_challenger(bench, setup):
    arms = bench.make_world(100_000, setup).arms
    assert all((arms[i] <= arms[i + 1]).all() for i in range(len(arms) - 1))
    assert arms[-1].any() and not arms[0].all()


def test_every_experiment_ends_by_the_rule_within_its_maximum_duration(bench, setup, results):
    every = setup.pop.look_minutes / 60
    for scenario in (bench.AA, bench.PLUS, bench.MINUS):
        assert len(results[scenario]) == RUNS
        for ended in results[scenario]:
            assert ended.action in ("promote", "stop") and ended.hours <= setup.policy.max_hours + every
            assert ended.ramps == sorted(ended.ramps) and len(ended.ramps) < len(setup.policy.ramp_steps)
            assert (ended.why == "promote") == (ended.action == "promote")
            back = ended.rollback_hours
            assert back is None or (scenario == bench.PLUS and 0 < back <= setup.policy.watch_hours)


def test_exposure_is_the_share_of_active_customers_in_the_highest_step_reached(bench, setup, results):
    for seed, ended in enumerate(results[bench.PLUS], start=100_000):
        world = bench.make_world(seed, setup)
        active = np.unique(world.stream.customer[world.stream.hour < ended.hours])
        top = world.arms[len(ended.ramps)]
        assert 0 < ended.exposure <= top[active].mean() + 1e-12
        steps = setup.policy.ramp_steps
        assert ended.exposure <= steps[len(ended.ramps)] + 4 * np.sqrt(0.25 / len(active))  # ramp share + noise


def test_the_heavy_tailed_runs_report_a_verdict_and_the_labels_it_took(bench, results):
    for scenario in (bench.HEAVY_AA, bench.HEAVY_PLUS):
        for one_look, peeking, labelled in results[scenario]:
            assert isinstance(one_look, str) and isinstance(peeking, str)
            assert 0 < labelled <= bench.HEAVY["labelled"] and labelled % (bench.HEAVY["labelled"] // 10) == 0


def test_the_summary_ends_with_the_parsed_line_and_judges_every_bar(bench, setup, results):
    line = bench.final_line(results)
    match = FINAL.fullmatch(line)
    assert match and int(match.group(1)) == RUNS, line
    heavy = bench.heavy_summary(results)
    checked = bench.bars(results, heavy, setup)
    assert len(checked) == 7 and all(isinstance(met, bool) for _, met, _ in checked)
