"""Today's compiled scorers vs onnxruntime on the same model: process CPU per ticket, single tickets and batches.

      .venv/bin/python bench/onnx_bench.py [--n 2000] [--train 2000] [--rounds 3] [--batch 256]
      .venv/bin/python bench/onnx_bench.py --tracking-uri URI [--model-name NAME] [--alias champion]

The model is a two-head version as the demo's bootstrap trains one on `--train` generated tickets: the AutoML
winner's shape, word + char_wb TF-IDF with a sigmoid-calibrated class-weighted LinearSVC (`svm_wc`), for the topic,
and a head of the same kind for the priority on the same features (ticket_ab.twohead.TwoHeadModel); or a
registered version when a tracking URI is given (an older one-head Pipeline gives the topic rows only). Both
runtimes score the same `--n` generated tickets (English and Russian), twice:
- topic: the topic head alone (`head_pipeline("topic")`, as a one-head version is served): router.predictor's
  `compile_scorer` vs a session on the one-head graph;
- two-head: both heads, as a two-head version is served: `compile_both` (the TF-IDF row built once, both heads
  on it) vs a session on the two-head graph (`probabilities` and `priority_probabilities` in one run);
each as `single` (one ticket per call, as `/predict` scores it; the session runs a one-element batch) and `batch`
(`--batch` tickets per call, as the router scores a batch: `score_many` / `score_many_both` vs one session run).
The onnxruntime session is single-threaded (intra_op_num_threads=1, as one gunicorn worker per core would
run it). CPU is this process's CPU time (time.process_time: unaffected by other processes' load on the shared
machine); the rounds alternate the runtimes and the best round of each is reported. The last lines are the
summaries others parse: `onnx: compiled <x> us/ticket, onnxruntime <y> us/ticket (single); ... (batch <b>)` for the
topic head and `onnx two-head: ...` alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from load_test.simulate.generator import generate
from retrain.ml.automl import served_pipeline
from retrain.ml.onnx_convert import OnnxScorer, parity, to_onnx
from router.predictor import compile_both, compile_scorer, score_many, score_many_both
from ticket_ab import registry
from ticket_ab.twohead import PRIORITY_HEAD, TOPIC_HEAD, TwoHeadModel, heads_of

WINNER = "svm_wc"  # the current AutoML winner (retrain.ml.candidates), for both heads
TRAIN_SEED, TEST_SEED = 1, 26
TOPIC, TWO_HEAD = "topic", "two-head"


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


def load_model(args: argparse.Namespace) -> tuple[Any, str]:
    """The registered version behind the alias, or a two-head `svm_wc` model trained on generated tickets."""
    if args.tracking_uri:
        registry.connect(args.tracking_uri)
        return registry.load_pipeline(args.model_name, args.alias), f"{args.model_name}@{args.alias}"
    train = generate("baseline", args.train, TRAIN_SEED)
    served = served_pipeline(WINNER)
    model = TwoHeadModel(served.named_steps["features"], served.named_steps["clf"],
                         served_pipeline(WINNER).named_steps["clf"])
    model.fit(train[["text"]], train["topic"], priority=train["priority"])
    return model, f"{WINNER} topic + {WINNER} priority heads trained on {args.train} generated tickets"


def cpu_us_per_ticket(score: Callable[[list[str]], object], texts: list[str], size: int) -> float:
    """Process CPU per ticket of scoring `texts` in calls of `size` tickets."""
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    score(chunks[0])  # warm: first-call allocations are not per-ticket cost
    started = time.process_time()
    for chunk in chunks:
        score(chunk)
    return (time.process_time() - started) / len(texts) * 1e6


def topic_runs(model: Any, texts: list[str], args: argparse.Namespace) -> dict[str, Callable]:
    """The topic head alone in both runtimes (a one-head version's serving), after its parity line."""
    pipeline = model.head_pipeline(TOPIC_HEAD) if isinstance(model, TwoHeadModel) else model
    session = OnnxScorer(to_onnx(pipeline).SerializeToString(), threads=1)
    print(f"{TOPIC}: {parity(pipeline, session, texts)}")
    return _runs("the topic head", pipeline, compile_scorer, score_many, session.probabilities, args)


def two_head_runs(model: Any, texts: list[str], args: argparse.Namespace) -> dict[str, Callable]:
    """Both heads in both runtimes (a two-head version's serving), after the graph's size and parity line."""
    data = to_onnx(model).SerializeToString()
    session = OnnxScorer(data, threads=1)
    print(f"{TWO_HEAD}: ONNX {len(data) / 1e6:.1f} MB; {parity(model, session, texts)}")
    return _runs("the two heads", model, compile_both, score_many_both, session.both, args)


def _runs(what: str, model: Any, compile_fn: Callable, batch_fn: Callable, onnx_fn: Callable,
          args: argparse.Namespace) -> dict[str, Callable]:
    """The four timed runs of one model: the router's compiled scorer and onnxruntime, single and batched."""
    compiled, name = compile_fn(model)
    if name != "tfidf":
        print(f"note: the router would score {what} with its {name!r} path, not the compiled one")
    return {"compiled single": lambda chunk: compiled(chunk[0]), "onnxruntime single": onnx_fn,
            f"compiled batch {args.batch}": lambda chunk: batch_fn(model, chunk),
            f"onnxruntime batch {args.batch}": onnx_fn}


def measure(runs: dict[str, dict[str, Callable]], texts: list[str], args: argparse.Namespace,
            ) -> dict[str, dict[str, list[float]]]:
    """Every run's CPU per ticket, each round alternating all of them."""
    results = {model: {key: [] for key in keyed} for model, keyed in runs.items()}
    for _ in range(args.rounds):
        for model, keyed in runs.items():
            for key, score in keyed.items():
                results[model][key].append(cpu_us_per_ticket(score, texts, 1 if "single" in key else args.batch))
    return results


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> list[float]:
    """The table (both runtimes side by side per model), the verdicts and the parseable summaries; the best values."""
    print(f"\nprocess CPU per ticket over {args.n} tickets, best of {args.rounds} alternating rounds "
          "(all rounds in brackets)")
    print(f"{'model':<10}{'path':<28}{'us/ticket':>11}   rounds")
    summaries, bests = [], []
    for model, keyed in results.items():
        best = [min(values) for values in keyed.values()]
        for (key, values), value in zip(keyed.items(), best, strict=True):
            print(f"{model:<10}{key:<28}{value:>11.1f}   [{', '.join(f'{v:.1f}' for v in values)}]")
        single, batch = best[1] / best[0], best[3] / best[2]
        print(f"{'':<10}onnxruntime CPU / compiled CPU: single {single:.2f}x, batch {batch:.2f}x -> single tickets "
              f"are cheaper with {_faster(single)}, batches with {_faster(batch)}")
        name = "onnx" if model == TOPIC else f"onnx {model}"
        summaries.append(f"{name}: compiled {best[0]:.1f} us/ticket, onnxruntime {best[1]:.1f} us/ticket (single); "
                         f"compiled {best[2]:.1f} us/ticket, onnxruntime {best[3]:.1f} us/ticket (batch {args.batch})")
        bests += best
    print("", *summaries, sep="\n")
    return bests


def _faster(ratio: float) -> str:
    return "the compiled scorer" if ratio >= 1 else "onnxruntime"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model, source = load_model(args)
    texts = generate("baseline", args.n, TEST_SEED)["text"].tolist()
    print(f"model: {source}")
    runs = {TOPIC: topic_runs(model, texts, args)}
    if PRIORITY_HEAD in heads_of(model):
        runs[TWO_HEAD] = two_head_runs(model, texts, args)
    else:
        print(f"{TWO_HEAD}: not measured (the model answers the topic only)")
    best = report(measure(runs, texts, args), args)
    return 0 if np.isfinite(best).all() else 1


if __name__ == "__main__":
    sys.exit(main())
