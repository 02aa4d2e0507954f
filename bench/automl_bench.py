"""AutoML vs the plain baseline on real tickets: macro-F1, accuracy, fit times and the leaderboard.

Uses ../shared/data/it_service_tickets.csv.gz (real, CC0) when present; otherwise generated
baseline tickets, and says so. Not part of `make test`: it prints numbers.

    python bench/automl_bench.py [--rows N] [--budget-s S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from retrain.contracts.schema import TEXT, TOPIC, load_tickets
from retrain.ml.automl import select_model
from retrain.ml.evaluate import score
from retrain.ml.features import baseline_pipeline
from retrain.ml.train import split_holdout
from retrain.simulate.generator import generate

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "it_service_tickets.csv.gz"


def load(rows: int | None, seed: int):
    if REAL.exists():
        df = load_tickets(REAL, require_topic=True)
        source = f"real tickets ({REAL.name})"
    else:
        df = generate("baseline", rows or 12_000, seed)
        source = "generated baseline tickets (real data not found)"
    if rows and rows < len(df):
        df = df.sample(n=rows, random_state=seed)
    return df.reset_index(drop=True), source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="sample this many tickets (default: all)")
    parser.add_argument("--budget-s", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    df, source = load(args.rows, args.seed)
    train, holdout = split_holdout(df, 0.2, args.seed)
    print(f"data: {source}; train {len(train)}, holdout {len(holdout)} (stratified 20%)")

    started = time.perf_counter()
    base = baseline_pipeline(args.seed).fit(train[[TEXT]], train[TOPIC])
    base_fit = time.perf_counter() - started
    base_scores = score(base, holdout)

    result = select_model(train, budget_s=args.budget_s, seed=args.seed)
    auto_scores = score(result.pipeline, holdout)

    print()
    print(result.leaderboard.to_markdown(index=False))
    print()
    print("| model | holdout accuracy | holdout macro-F1 | time (s) |")
    print("|---|---|---|---|")
    print(f"| TF-IDF + LogisticRegression (baseline) | {base_scores['accuracy']:.4f} | "
          f"{base_scores['macro_f1']:.4f} | fit {base_fit:.1f} |")
    print(f"| AutoML winner `{result.winner}` | {auto_scores['accuracy']:.4f} | {auto_scores['macro_f1']:.4f} | "
          f"select {result.select_seconds:.1f} + refit {result.fit_seconds:.1f} |")
    verdict = "meets" if auto_scores["macro_f1"] >= base_scores["macro_f1"] else "DOES NOT meet"
    print(f"\nAutoML winner {verdict} the baseline's macro-F1 "
          f"({auto_scores['macro_f1']:.4f} vs {base_scores['macro_f1']:.4f}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
