"""Today's compiled scorer vs onnxruntime on the same model: process CPU per ticket, single tickets and batches.

      .venv/bin/python bench/onnx_bench.py [--n 2000] [--train 2000] [--rounds 3] [--batch 256]
      .venv/bin/python bench/onnx_bench.py --tracking-uri URI [--model-name NAME] [--alias champion]

The model is the AutoML winner's shape, word + char_wb TF-IDF with a sigmoid-calibrated class-weighted LinearSVC
(`svm_wc`), trained on `--train` generated tickets as the demo's bootstrap trains its champion, or a registered
version when a tracking URI is given. Both runtimes score the same `--n` generated tickets (English and Russian):
- single: one ticket per call, as `/predict` scores it: router.predictor's compiled scorer (`compile_scorer`)
  vs an onnxruntime session run on a one-element batch;
- batch: `--batch` tickets per call, as the router scores a batch (`score_many`, one `predict_proba`) vs one
  session run on the batch.
The onnxruntime session is single-threaded (intra_op_num_threads=1, as one gunicorn worker per core would
run it). CPU is this process's CPU time (time.process_time: unaffected by other processes' load on the shared
machine); the rounds alternate the two runtimes and the best round of each is reported. The last line is the
summary others parse: `onnx: compiled <x> us/ticket, onnxruntime <y> us/ticket (single); ... (batch <b>)`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from load_test.simulate.generator import generate
from retrain.ml.automl import served_pipeline
from retrain.ml.onnx_convert import OnnxScorer, parity, to_onnx
from router.predictor import compile_scorer, score_many
from ticket_ab import registry

WINNER = "svm_wc"  # the current AutoML winner (retrain.ml.candidates)
TRAIN_SEED, TEST_SEED = 1, 26


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="tickets scored per runtime and round")
    parser.add_argument("--train", type=int, default=2000, help="generated tickets the model is trained on")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is reported")
    parser.add_argument("--batch", type=int, default=256, help="tickets per batched call")
    parser.add_argument("--tracking-uri", help="score a registered version instead of training one")
    parser.add_argument("--model-name", default="ticket-classifier")
    parser.add_argument("--alias", default="champion")
    return parser.parse_args(argv)


def load_model(args: argparse.Namespace):
    """The registered version behind the alias, or an `svm_wc` pipeline trained on generated tickets."""
    if args.tracking_uri:
        registry.connect(args.tracking_uri)
        return registry.load_pipeline(args.model_name, args.alias), f"{args.model_name}@{args.alias}"
    train = generate("baseline", args.train, TRAIN_SEED)
    pipeline = served_pipeline(WINNER)
    pipeline.fit(train[["text"]], train["topic"])
    return pipeline, f"{WINNER} trained on {args.train} generated tickets"


def cpu_us_per_ticket(score: Callable[[list[str]], object], texts: list[str], size: int) -> float:
    """Process CPU per ticket of scoring `texts` in calls of `size` tickets."""
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    score(chunks[0])  # warm: first-call allocations are not per-ticket cost
    started = time.process_time()
    for chunk in chunks:
        score(chunk)
    return (time.process_time() - started) / len(texts) * 1e6


def measure(pipeline, session: OnnxScorer, texts: list[str], args: argparse.Namespace) -> dict[str, list[float]]:
    compiled, name = compile_scorer(pipeline)
    if name != "tfidf":
        print(f"note: the router would score this model with its {name!r} path, not the compiled one")
    runs = {"compiled single": lambda chunk: compiled(chunk[0]),
            "onnxruntime single": session.probabilities,
            f"compiled batch {args.batch}": lambda chunk: score_many(pipeline, chunk),
            f"onnxruntime batch {args.batch}": session.probabilities}
    results: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(args.rounds):
        for key, score in runs.items():
            results[key].append(cpu_us_per_ticket(score, texts, 1 if "single" in key else args.batch))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pipeline, source = load_model(args)
    model = to_onnx(pipeline).SerializeToString()
    session = OnnxScorer(model, threads=1)
    texts = generate("baseline", args.n, TEST_SEED)["text"].tolist()
    checked = parity(pipeline, session, texts)
    print(f"model: {source}; ONNX {len(model) / 1e6:.1f} MB; {checked}")
    results = measure(pipeline, session, texts, args)
    best = {key: min(values) for key, values in results.items()}
    print(f"\nprocess CPU per ticket over {args.n} tickets, best of {args.rounds} alternating rounds "
          "(all rounds in brackets)")
    print(f"{'path':<28}{'us/ticket':>11}   rounds")
    for key, values in results.items():
        print(f"{key:<28}{best[key]:>11.1f}   [{', '.join(f'{v:.1f}' for v in values)}]")
    keys = list(best)
    single, batch = (best[keys[1]] / best[keys[0]], best[keys[3]] / best[keys[2]])
    def faster(ratio: float) -> str:
        return "the compiled scorer" if ratio >= 1 else "onnxruntime"

    print(f"\nonnxruntime CPU / compiled CPU: single {single:.2f}x, batch {batch:.2f}x -> by CPU per ticket, single "
          f"tickets are cheaper with {faster(single)}, batches with {faster(batch)}")
    print(f"onnx: compiled {best[keys[0]]:.1f} us/ticket, onnxruntime {best[keys[1]]:.1f} us/ticket (single); "
          f"compiled {best[keys[2]]:.1f} us/ticket, onnxruntime {best[keys[3]]:.1f} us/ticket (batch {args.batch})")
    return 0 if np.isfinite(list(best.values())).all() else 1


if __name__ == "__main__":
    sys.exit(main())
