"""`ticket-ab ...` (or `python -m ops ...`): the operator's commands over the same functions the DAG calls.

Every command prints progress and a short summary; every expected failure (bad file, MLflow down,
nothing to promote) is one `error:` line and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ticket_ab.settings import Settings, SettingsError, get_settings

EXIT_USER_ERROR = 2
EXPORT_HELP = ("write a registered version as a portable ONNX file after a parity check against scikit-learn on "
               "2,000 generated tickets; tags the version with the file's sha256 and the parity figures")
STACK_BOOTSTRAP_N = 2000  # keeps `make stack` under 2 minutes on 2 cores; bring real tickets with `bootstrap --data`


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"tracking_uri": args.tracking_uri} if getattr(args, "tracking_uri", None) else {}
    return get_settings(**overrides)


def cmd_generate(args: argparse.Namespace) -> int:
    from load_test.simulate.generator import generate
    from ticket_ab.schema import save_tickets

    df = generate(args.scenario, args.n, args.seed, ru_share=args.ru_share, label_noise=args.label_noise)
    out = save_tickets(df, args.out)
    mix = ", ".join(f"{t} {s:.0%}" for t, s in df["topic"].value_counts(normalize=True).items())
    print(f"wrote {len(df)} '{args.scenario}' tickets (seed {args.seed}) to {out}")
    print(f"topics: {mix}; russian share {df['language'].eq('ru').mean():.0%}")
    return 0


def _training_data(args: argparse.Namespace, settings: Settings, scenario: str = "baseline"):
    from ticket_ab.schema import load_tickets, save_tickets

    if args.data:  # train_and_register checks the labels (a ticket may carry only a priority)
        return load_tickets(args.data), str(args.data)
    from load_test.simulate.generator import generate

    path = settings.data_dir / f"{scenario}_seed{args.seed}_n{args.n}.csv"
    df = generate(scenario, args.n, args.seed)
    save_tickets(df, path)
    print(f"no --data given: generated {len(df)} '{scenario}' tickets at {path}")
    return df, f"generated:{scenario}:seed={args.seed}:n={args.n}"


def _print_outcome(outcome) -> None:
    print(f"registered {outcome.summary()}")
    for move in outcome.moves:
        print(f"alias moved: {move}")


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from ticket_ab import registry

    settings = _settings(args)
    client = registry.connect(settings.tracking_uri)
    current = registry.version_for(client, settings.model_name, registry.CHAMPION)
    if current is not None and not args.force:
        print(f"champion already exists: {settings.model_name} v{current.version} (use --force to retrain)")
        return 0
    from retrain.register import train_and_register  # PyCaret: only once there is something to train

    df, source = _training_data(args, settings)
    outcome = train_and_register(df, settings, alias=registry.CHAMPION, source=source)
    _print_outcome(outcome)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from retrain.register import train_and_register
    from ticket_ab.schema import load_tickets

    settings = _settings(args)
    df = load_tickets(args.data)  # train_and_register checks the labels (a ticket may carry only a priority)
    outcome = train_and_register(df, settings, alias=args.alias, source=str(args.data))
    _print_outcome(outcome)
    return 0 if outcome.passed else 1


def _moves(args: argparse.Namespace, action) -> int:
    from ticket_ab import registry

    settings = _settings(args)
    client = registry.connect(settings.tracking_uri)
    for move in action(client, settings.model_name, why=args.reason):
        print(f"alias moved: {move}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from ticket_ab import registry

    return _moves(args, registry.promote)


def cmd_rollback(args: argparse.Namespace) -> int:
    from ticket_ab import registry

    return _moves(args, registry.rollback)


def cmd_status(args: argparse.Namespace) -> int:
    from ticket_ab import registry

    settings = _settings(args)
    client = registry.connect(settings.tracking_uri)
    state = registry.status(client, settings.model_name)
    if args.json:
        print(json.dumps(state, indent=2, default=str))
        return 0
    if not state["registered"]:
        print(f"model {settings.model_name!r} is not registered yet at {settings.tracking_uri} "
              "(run `ticket-ab bootstrap`)")
        return 0
    print(f"model {state['model']} at {settings.tracking_uri}: {state['versions']} versions")
    for alias, info in state["aliases"].items():
        tags = info["tags"]
        print(f"  {alias:<10} v{info['version']:<4} {tags.get('automl_winner', '?'):<6} "
              f"macro-F1 {tags.get('holdout_macro_f1', '?')} status {tags.get('validation_status', '?')} "
              f"created {info['created']} source {tags.get('source', '?')}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """One look of the experiment DAG now; `approve` also takes the action `ask` mode is waiting for."""
    import getpass

    from analysis import autopilot
    from analysis.routerconfig import RouterConfigError

    settings = _settings(args)
    who = f"{getpass.getuser()} via ticket-ab rollout {args.action}"
    try:
        outcome = autopilot.run_once(settings, who=who, approve=args.action == "approve")
    except RouterConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(json.dumps(outcome.as_dict(), indent=2))
        return 0
    print(f"champion v{outcome.champion or '-'}, challenger v{outcome.challenger or '-'}: {outcome.action} "
          f"({outcome.mode}): {outcome.reason}")
    print(f"status: {outcome.status}")
    for label, value in (("report", outcome.report), ("mlflow run", outcome.run_id)):
        if value:
            print(f"{label}: {value}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from retrain.ml.evaluate import score
    from ticket_ab import registry
    from ticket_ab.schema import load_tickets

    settings = _settings(args)
    df = load_tickets(args.data, require_topic=True)
    client = registry.connect(settings.tracking_uri)
    results = {}
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        version = registry.version_for(client, settings.model_name, alias)
        if version is None:
            print(f"{alias}: none")
            continue
        results[alias] = score(registry.load_pipeline(settings.model_name, alias), df)
        r = results[alias]
        print(f"{alias} v{version.version}: accuracy {r['accuracy']:.4f} "
              f"macro-F1 {r['macro_f1']:.4f} on {r['n']} tickets")
    if not results:
        raise SystemExit(f"error: model {settings.model_name!r} has no champion or challenger to evaluate")
    topics = sorted({t for r in results.values() for t in r["per_topic_accuracy"]})
    print(f"{'topic':<16}" + "".join(f"{alias:>12}" for alias in results))
    for topic in topics:
        print(f"{topic:<16}" + "".join(f"{r['per_topic_accuracy'].get(topic, float('nan')):>12.3f}"
                                       for r in results.values()))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import time

    from retrain.ml.batch_predict import CONFIDENCE, PREDICTED, PREDICTED_PRIORITY, PRIORITY_CONFIDENCE, predict_frame
    from ticket_ab import registry
    from ticket_ab.schema import load_tickets, save_tickets
    from ticket_ab.twohead import PRIORITY_HEAD, heads_of, priority_note

    settings = _settings(args)
    client = registry.connect(settings.tracking_uri)
    version = args.version
    if not version:
        found = registry.version_for(client, settings.model_name, args.alias)
        if found is None:
            raise ValueError(f"model {settings.model_name!r} has no {args.alias!r} version to score with")
        version = found.version
    tickets = load_tickets(args.data)
    uri = registry.version_uri(settings.model_name, version)
    print(f"scoring {len(tickets)} tickets from {args.data} with {settings.model_name} v{version} ({uri})", flush=True)
    started = time.perf_counter()
    model = registry.load_version(settings.model_name, version)
    scored = predict_frame(model, tickets, progress=not args.no_progress)
    scored["model_version"] = str(version)
    out = save_tickets(scored, args.out)
    seconds = time.perf_counter() - started
    mix = ", ".join(f"{t} {n}" for t, n in scored[PREDICTED].value_counts().items())
    print(f"wrote {len(scored)} rows with {PREDICTED}, {CONFIDENCE}, {PREDICTED_PRIORITY} and {PRIORITY_CONFIDENCE} "
          f"to {out} in {seconds:.1f} s ({len(scored) / max(seconds, 1e-9):,.0f} tickets/s); topics: {mix}")
    if PRIORITY_HEAD in heads_of(model):
        print("priorities: " + ", ".join(f"{p} {n}" for p, n in scored[PREDICTED_PRIORITY].value_counts().items()))
    else:
        print(f"v{version} predicts topic only ({priority_note(model)}): {PREDICTED_PRIORITY} and "
              f"{PRIORITY_CONFIDENCE} are blank")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from ops import dagrun

    return dagrun.run_dag(args.logical_date, settings=_settings(args))


def cmd_airflow(args: argparse.Namespace) -> int:
    from ops import dagrun

    return dagrun.standalone(_settings(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from ops import demo

    return demo.main()


def cmd_mlflow(args: argparse.Namespace) -> int:
    from ops import demo

    demo.background_mlflow(get_settings())
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from ops import background
    from ops.demo import demo_home

    settings = get_settings()
    stopped = [*background.stop(settings), *background.stop(get_settings(home=str(demo_home(settings))))]
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Exit 0: written and parity met; 1: parity below the bar (nothing written); 2: a user error (one line)."""
    from ops.onnx_export import export_onnx

    result = export_onnx(_settings(args), args.alias, args.out)
    if result.written is None:
        print(f"error: ONNX export of v{result.version} not written to {args.out}: parity below the bar",
              file=sys.stderr)
        return 1
    print(f"wrote {result.written} ({result.size / 1e6:.1f} MB, sha256 {result.sha256}); "
          f"tagged v{result.version} with onnx_sha256 and the parity figures")
    return 0


def settings_table() -> str:
    """The README's configuration table, made from the settings' own field descriptions."""
    import pandas as pd

    from ticket_ab.settings import describe

    return pd.DataFrame(describe()).to_markdown(index=False, tablefmt="github")


def _stack_status(settings: Settings) -> int:
    """One line per service: supervisord's state and pid, its URL and log; exit 1 while nothing runs."""
    from ops.stack import run
    from ops.stack.topology import Paths, describe

    processes = run.status(settings)
    paths = Paths.of(settings)
    urls = describe(settings, paths)
    for name in [*urls, *(n for n in processes if n not in urls)]:
        info = processes.get(name)
        state = "down" if not info else (f"EXITED (exit status {info['exitstatus']})" if info["statename"] == "EXITED"
                                         else f"{info['statename']} ({info['description']})")
        print(f"{name:22} {state:40} {urls.get(name, {}).get('url', '-')}  log {paths.log(name)}")
    return 0 if processes else 1


def cmd_stack(args: argparse.Namespace) -> int:
    from ops.stack import run
    from ops.stack.topology import Paths

    settings = get_settings()
    if args.action == "down":
        stopped = run.down(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.action == "restart":
        if not args.service:
            raise ValueError("stack restart needs the service's name, e.g. `stack restart airflow-scheduler`")
        info = run.restart(settings, args.service)
        print(f"supervisord restarted {args.service} ({info['description']}); log {info['stdout_logfile']}")
        return 0
    if args.action == "status":
        return _stack_status(settings)
    services = run.up(settings, say=lambda line: print(f"==> {line}", flush=True), bootstrap_n=args.bootstrap_n)
    for name, where in services.items():
        print(f"{name:22} {where['url']}\n{'':22} log {where['log']}")
    paths = Paths.of(settings)
    print(f"secrets (mode 0600): {paths.secrets}: router tokens and customer key, the Airflow login (admin, "
          "airflow_admin_password) and the MLflow accounts (registry_<account>_password); promote as "
          "MLFLOW_TRACKING_USERNAME=promoter with its password in MLFLOW_TRACKING_PASSWORD")
    print(f"supervisord ({run.manager(settings).config}) restarts a crashed service; `make stack-down` stops them all")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_table())
        return 0
    from ticket_ab.settings import to_env

    for name, value in to_env(_settings(args)).items():
        print(f"{name}={value}")
    return 0


def _add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="tickets with a `text` column")
    p.add_argument("--out", type=Path, required=True, help="CSV or Parquet (by suffix): the input plus "
                   "predicted_topic, confidence, predicted_priority, priority_confidence (blank for a one-head "
                   "version), model_version")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", choices=["champion", "challenger", "previous"])
    which.add_argument("--version", help="a registered version number instead of an alias")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_stack(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["up", "down", "status", "restart"])
    p.add_argument("service", nargs="?", help="restart: the service supervisord should restart (e.g. router-2)")
    p.add_argument("--bootstrap-n", type=int, default=STACK_BOOTSTRAP_N,
                   help="generated tickets of the first champion (as compose's bootstrap service)")


def _add_rollout(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["look", "approve"])
    p.add_argument("--json", action="store_true", help="the outcome as JSON")


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=["onnx"], help="the export format")
    p.add_argument("--alias", default="champion", choices=["champion", "challenger", "previous"])
    p.add_argument("--out", type=Path, required=True, help="where the .onnx file goes (written only when the "
                   "parity check meets the bar)")


def build_parser() -> argparse.ArgumentParser:
    from load_test.simulate.generator import SCENARIOS

    parser = argparse.ArgumentParser(prog="ticket-ab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_text: str, registry_cmd: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if registry_cmd:
            p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
        return p

    p = add("generate", cmd_generate, "write synthetic tickets of a scenario to a CSV/Parquet file", False)
    p.add_argument("--scenario", default="baseline", choices=sorted(SCENARIOS))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ru-share", type=float, default=None, help="share of Russian tickets (scenario default)")
    p.add_argument("--label-noise", type=float, default=0.0, help="share of agent labels flipped")
    p.add_argument("--out", type=Path, required=True)

    p = add("bootstrap", cmd_bootstrap, "train the first champion (on generated baseline tickets by default)")
    p.add_argument("--data", type=Path, help="labelled tickets; default: generate baseline tickets")
    p.add_argument("--n", type=int, default=4000, help="tickets to generate when no --data")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--force", action="store_true", help="train a new champion even if one exists")

    p = add("train", cmd_train, "train on a labelled file, gate against the champion, set an alias")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--alias", default="challenger", choices=["challenger", "champion"])

    for name, func, text in (("promote", cmd_promote, "challenger -> champion (old champion -> previous)"),
                             ("rollback", cmd_rollback, "previous -> champion")):
        text += "; an authenticated registry needs an account with MANAGE on the model (the stack's promoter)"
        p = add(name, func, text)
        p.add_argument("--reason", default="manual", help="why: recorded on the version")

    add("status", cmd_status, "show the aliases and their versions").add_argument("--json", action="store_true")
    _add_predict(add("predict", cmd_predict, "score a CSV/Parquet file of tickets offline (backfills) with the "
                     "champion, another alias or a version"))

    p = add("pipeline", cmd_pipeline, "run the drift/retrain DAG once (airflow dags test, sqlite)")
    p.add_argument("logical_date", nargs="?", help="ISO date of the run (default: now)")
    add("airflow", cmd_airflow, "Airflow UI + scheduler (airflow standalone) on 127.0.0.1:TICKET_AB_AIRFLOW_PORT")
    add("demo", cmd_demo, "run the whole loop locally (what `make demo` runs)", False)
    add("mlflow", cmd_mlflow, "start the local MLflow server in the background (sqlite under TICKET_AB_HOME)", False)
    add("stop", cmd_stop, "stop the services started by `demo` or `mlflow` (and their supervisord)", False)

    _add_stack(add("stack", cmd_stack, "the production topology natively: PostgreSQL, MLflow, Airflow scheduler and "
                   "friends, router replicas, Prometheus (up | down | status | restart SERVICE)", False))

    add("settings", cmd_settings, "print the settings in force (tokens hidden); --markdown: the README table",
        False).add_argument("--markdown", action="store_true", help="every setting with its default and meaning")

    _add_rollout(add("rollout", cmd_rollout, "look at the running experiment as the experiment DAG does: `look` "
                     "decides and takes an `auto` action; `approve` also takes the action `ask` mode is waiting for"))
    _add_export(add("export", cmd_export, EXPORT_HELP))
    p = add("evaluate", cmd_evaluate, "accuracy and macro-F1 of champion and challenger on a labelled file")
    p.add_argument("--data", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ops.demo import DemoError
    from ops.health import ServiceError
    from ticket_ab.registry import RegistryError
    from ticket_ab.schema import TicketDataError

    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (TicketDataError, RegistryError, SettingsError, ServiceError, DemoError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
