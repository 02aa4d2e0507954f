"""Realised precision of accepted pseudo-labels against the true labels, window by window.

The pipeline promises pseudo-labels >= TICKET_AB_PSEUDO_PRECISION (0.95) precise: the threshold is
chosen on one split of the cleaned gold (fixed-sequence Clopper-Pearson bounds over a fixed grid) and
kept only when the untouched agents' labels prove the target (one-sided 95% Clopper-Pearson bound);
otherwise nothing is pseudo-labelled (such a window counts as met: no wrong pseudo-label reached
training, and the summary says how many). This measures the
promise where the truth is known: generated windows (scenarios in turn, 5% agent label noise) and
random windows of real tickets (/work/shared/data/it_service_tickets.csv.gz, when present). Fixed
before the run: 20 windows each, 2,000 tickets, 40% labelled, target met in >= 19 of 20.

    .venv/bin/python bench/pseudo_label_bench.py [--windows 20] [--real PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from load_test.simulate.generator import generate
from retrain.ml.relabel import PSEUDO, relabel
from ticket_ab.settings import RelabelSettings

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "it_service_tickets.csv.gz"
SCENARIOS = ("baseline", "new_product", "outage", "policy_change", "new_language")
WINDOW, LABELLED, NOISE = 2000, 0.4, 0.05


Row = tuple[str, int, float, dict]


def realised(window: pd.DataFrame, reference: pd.DataFrame, seed: int) -> tuple[int, float, dict]:
    """(accepted pseudo-labels, their precision against `true_topic`, relabel's stats) for one window."""
    rng = np.random.default_rng(seed)
    gold = rng.random(len(window)) < LABELLED
    noisy = window["true_topic"].where(rng.random(len(window)) >= NOISE,
                                       window["true_topic"].sample(frac=1.0, random_state=seed).to_numpy())
    frame = window.assign(label=noisy.where(gold), request_id=None)
    result = relabel(frame, reference, RelabelSettings(), seed)
    pseudo = result.train.loc[result.train["label_origin"] == PSEUDO]
    truth = frame.set_index("ticket_id")["true_topic"]
    if pseudo.empty:
        return 0, float("nan"), result.stats
    right = pseudo["topic"].to_numpy() == truth.loc[pseudo["ticket_id"]].to_numpy()
    return len(pseudo), float(right.mean()), result.stats


def generated(windows: int) -> list[Row]:
    reference = generate("baseline", 5000, 1)[["text", "topic"]]
    out = []
    for i in range(windows):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        window = generate(scenario, WINDOW, 100 + i, start="2026-04-01T00:00:00Z")
        out.append((scenario, *realised(window, reference, i)))
    return out


def real(windows: int, path: Path) -> list[Row]:
    tickets = pd.read_csv(path).dropna(subset=["text", "topic"]).reset_index(drop=True)
    tickets = tickets.assign(ticket_id=[f"real-{i}" for i in range(len(tickets))], true_topic=tickets["topic"])
    reference = tickets.sample(n=5000, random_state=0)
    rest = tickets.drop(reference.index)
    out = []
    for i in range(windows):
        window = rest.sample(n=WINDOW, random_state=100 + i).reset_index(drop=True)
        out.append(("real", *realised(window, reference[["text", "topic"]], i)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--real", type=Path, default=REAL)
    args = parser.parse_args()
    runs = {"generated": generated(args.windows)}
    if args.real.exists():
        runs["real"] = real(args.windows, args.real)
    for name, rows in runs.items():
        report(name, rows)


def report(name: str, rows: list[Row]) -> None:
    """One line per window (with the chosen threshold and what the untouched gold said), then the summary."""
    print(f"\n{name}: window, accepted pseudo-labels, realised precision, threshold, untouched agreement, verified")
    for i, (kind, n, precision, s) in enumerate(rows):
        checked = s["pseudo_precision"]
        agreement = "-" if checked is None else f"{checked:.3f} of {s['pseudo_verified_support']}"
        print(f"  {i:2d} {kind:14s} {n:5d} {precision:.4f}  t={s['pseudo_threshold']}  {agreement:>12s}  "
              f"{s['pseudo_verified']}")
    accepted = np.array([p for _, n, p, _ in rows if n])
    met = sum(n == 0 or precision >= 0.95 for _, n, precision, _ in rows)
    spread = f"min {accepted.min():.4f}, median {np.median(accepted):.4f}" if len(accepted) else "none"
    print(f"{name}: precision >= 0.95 in {met} of {len(rows)} windows ({len(rows) - len(accepted)} accepted nothing "
          f"and count as met); precision of the {len(accepted)} that accepted some: {spread}")


if __name__ == "__main__":
    main()
