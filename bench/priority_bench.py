"""The priority head on held-out generated tickets: macro-F1 against the majority class and a TF-IDF+LR baseline.

Fixed before the run: the head is trained by `select_model` (the same two-head path as every version, default
candidates and budget) on `--train` generated `baseline` tickets of seed `--seed`; it is judged on `--holdout`
tickets of another seed (`--seed` + 1000: other customers, other texts), PII-masked as the router masks them.
Bars: the head's macro-F1 >= the majority class's + 20 points, and >= a TF-IDF+LogisticRegression priority
baseline's (fit on the same tickets) + 0 points. Printed beside them, not barred: urgent tickets predicted low,
urgent recall and precision, and the confusion cost (`retrain.ml.priority.COST`). The last line is the verdict.
A default run takes about 80 s on 2 cores (77 s measured at load average 5).

    python bench/priority_bench.py [--train N] [--holdout N] [--seed S] [--budget-s S] [--urgent-recall R]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier

from load_test.simulate.generator import generate
from retrain.ml.automl import AutoMLResult, select_model
from retrain.ml.evaluate import score
from retrain.ml.features import baseline_pipeline
from retrain.ml.priority import PRIORITY, priority_scores
from retrain.ml.train import masked
from ticket_ab.schema import TEXT, TOPIC
from ticket_ab.settings import TrainingSettings

MAJORITY_BAR = 0.20  # the head's macro-F1 gain over always answering the commonest priority
BASELINE_BAR = 0.0  # ... and over TF-IDF + LogisticRegression trained for the priority alone
HOLDOUT_SEED_OFFSET = 1000


def load(train_n: int, holdout_n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and held-out tickets from two seeds, masked, with text, topic and priority."""
    columns = [TEXT, TOPIC, PRIORITY]
    train = masked(generate("baseline", train_n, seed)[columns])
    holdout = masked(generate("baseline", holdout_n, seed + HOLDOUT_SEED_OFFSET)[columns])
    return train, holdout


def answers(result: AutoMLResult, train: pd.DataFrame, holdout: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    """Each contender's priorities for the held-out tickets."""
    texts = holdout[[TEXT]]
    majority = DummyClassifier(strategy="most_frequent").fit(train[[TEXT]], train[PRIORITY])
    baseline = baseline_pipeline(seed).fit(train[[TEXT]], train[PRIORITY])
    threshold = result.pipeline.urgent_threshold
    head = f"priority head `{result.priority_winner}`" + ("" if threshold is None else f" (urgent at {threshold:.3f})")
    return {"majority class": majority.predict(texts), "TF-IDF + LogisticRegression": baseline.predict(texts),
            head: result.pipeline.predict_priority(texts)}


def table(truth: np.ndarray, predicted: dict[str, np.ndarray]) -> dict[str, float]:
    """Print every contender's figures; return each one's macro-F1."""
    print("| model | macro-F1 | urgent predicted low | urgent recall | urgent precision | confusion cost |")
    print("|---|---|---|---|---|---|")
    f1 = {}
    for name, answer in predicted.items():
        s = priority_scores(truth, answer)
        f1[name] = s.macro_f1
        print(f"| {name} | {s.macro_f1:.4f} | {s.urgent_as_low:.4f} ({s.urgent_as_low_count}/{s.urgent_n}) | "
              f"{s.urgent_recall:.4f} | {s.urgent_precision:.4f} | {s.cost:.4f} |")
    return f1


def verdict(f1: dict[str, float]) -> int:
    """The bars, fixed before the run; the last line printed."""
    majority, baseline, head = f1.values()
    checks = [(head - majority >= MAJORITY_BAR, f"vs majority {(head - majority) * 100:+.1f} pt "
                                                f"(bar >= +{MAJORITY_BAR * 100:.0f} pt)"),
              (head - baseline >= BASELINE_BAR, f"vs TF-IDF+LR {(head - baseline) * 100:+.2f} pt "
                                                f"(bar >= +{BASELINE_BAR * 100:.0f} pt)")]
    passed = all(ok for ok, _ in checks)
    print(f"\nverdict: {'PASS' if passed else 'FAIL'}: priority head macro-F1 {head:.4f}; "
          + "; ".join(f"{'ok' if ok else 'MISS'} {line}" for ok, line in checks))
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--holdout", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=TrainingSettings().automl_budget_s)
    parser.add_argument("--candidates", default=TrainingSettings().automl_models)
    parser.add_argument("--urgent-recall", type=float, default=None, help="TICKET_AB_PRIORITY_URGENT_RECALL")
    args = parser.parse_args(argv)

    train, holdout = load(args.train, args.holdout, args.seed)
    print(f"generated baseline tickets: train {len(train)} (seed {args.seed}), held out {len(holdout)} "
          f"(seed {args.seed + HOLDOUT_SEED_OFFSET}); priorities held out: "
          f"{holdout[PRIORITY].value_counts().to_dict()}; load average {_load()}", flush=True)
    started = time.perf_counter()
    result = select_model(train, candidates=[c.strip() for c in args.candidates.split(",") if c.strip()],
                          budget_s=args.budget_s, tune_min_rows=TrainingSettings().automl_tune_min_rows,
                          seed=args.seed, urgent_recall=args.urgent_recall)
    print(f"select_model: topic `{result.winner}` (cv {result.cv_macro_f1:.4f}, held-out macro-F1 "
          f"{score(result.pipeline, holdout)['macro_f1']:.4f}), priority `{result.priority_winner}` (cv "
          f"{result.priority_cv_macro_f1:.4f}) among {list(result.priority_leaderboard['candidate'])}; "
          f"{time.perf_counter() - started:.0f} s\n")
    f1 = table(holdout[PRIORITY].to_numpy(dtype=str), answers(result, train, holdout, args.seed))
    print(f"load average at end {_load()}")
    return verdict(f1)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()) + " (1/5/15 min)"


if __name__ == "__main__":
    sys.exit(main())
