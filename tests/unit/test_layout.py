"""The house rules a newcomer relies on: rooms that import only downwards, a serving image that holds
serving code only, one module that talks to MLflow, small functions, visible imports, no path edits."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Each room's floor, from the bottom: a room imports rooms of lower floors only (and itself).
FLOORS = {"ticket_ab": 0, "router": 1, "retrain": 1, "load_test": 1, "analysis": 2, "ops": 3, "airflow": 3,
          "bench": 4}
PRODUCT = tuple(FLOORS)
PACKAGES = tuple(room for room in FLOORS if (REPO / room / "__init__.py").exists())
# What the router image must never hold: the other rooms and the training, drift and orchestration stacks.
NOT_SERVING = ("retrain", "analysis", "load_test", "ops", "pycaret", "evidently", "airflow", "cleanlab")
REGISTRY_ADAPTER = "ticket_ab/registry.py"
MAX_FUNCTION_LINES = 60
# Where an import inside a function is deliberate: CLI commands import their room on use (so
# `ticket-ab --help` stays fast), gunicorn's master hooks import libraries before forking, and
# Airflow re-parses the DAG file every few minutes, so its tasks import the heavy rooms themselves.
LAZY_IMPORTS_ALLOWED = {"ops/cli.py", "router/gunicorn.conf.py", "airflow/dags/ticket_drift_retrain.py",
                        "airflow/dags/ticket_experiment.py"}


def _sources() -> list[Path]:
    return sorted(p for top in PRODUCT for p in (REPO / top).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[str, ast.AST]]:
    return {_rel(p): (text, ast.parse(text)) for p in _sources() for text in [p.read_text()]}


def test_no_product_code_edits_the_import_path(parsed):
    offenders = [name for name, (text, _) in parsed.items() if "sys.path" in text]
    assert not offenders, f"the project is installed; these edit sys.path: {offenders}"


def test_no_function_is_longer_than_sixty_lines(parsed):
    long = [f"{name}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
            for name, (_, tree) in parsed.items() for fn in _functions(tree)
            if fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "split these functions:\n" + "\n".join(long)


def _imported(tree: ast.AST, module: str) -> set[str]:
    """Every module `tree` imports, anywhere in it (lazy imports count), with relative imports resolved."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def _module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def test_rooms_import_only_rooms_below_them(parsed):
    upward = []
    for name, (_, tree) in parsed.items():
        room = name.split("/")[0]
        for target in _imported(tree, _module_name(name)):
            other = target.split(".")[0]
            if other in FLOORS and other != room and FLOORS[other] >= FLOORS[room]:
                upward.append(f"{name} imports {target} ({other} is not below {room})")
    assert not upward, "imports must run downwards:\n" + "\n".join(sorted(upward))


def router_closure(parsed) -> set[str]:
    """The project modules `router/` reaches through its imports (the entry points gunicorn loads)."""
    modules = {_module_name(name): tree for name, (_, tree) in parsed.items() if name.split("/")[0] in PACKAGES}
    todo = [m for m in modules if m.split(".")[0] == "router"]
    seen: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for target in _imported(modules[current], current):
            parts = target.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules]
    return seen


def test_the_routers_import_closure_holds_only_the_foundation_and_the_router(parsed):
    rooms = {module.split(".")[0] for module in router_closure(parsed)}
    assert rooms == {"ticket_ab", "router"}, f"the router reaches {sorted(rooms - {'ticket_ab', 'router'})}"


def test_no_module_of_the_routers_closure_imports_a_training_library(parsed):
    by_module = {_module_name(name): tree for name, (_, tree) in parsed.items()}
    heavy = [f"{module} imports {target}" for module in router_closure(parsed)
             for target in _imported(by_module[module], module) if target.split(".")[0] in NOT_SERVING]
    assert not heavy, heavy


def test_the_serving_image_copies_exactly_the_rooms_the_router_needs(parsed):
    copied = re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)/\s", (REPO / "Dockerfile.flask").read_text(), re.MULTILINE)
    packages = {room for room in copied if room in PACKAGES}
    assert packages == {module.split(".")[0] for module in router_closure(parsed)}


def test_only_the_registry_adapter_names_mlflows_client():
    sources = [p for top in (*PRODUCT, "tests") for p in (REPO / top).rglob("*.py") if "__pycache__" not in p.parts]
    others = [_rel(p) for p in sources if "MlflowClient" in p.read_text()
              and _rel(p) not in (REGISTRY_ADAPTER, _rel(Path(__file__)))]
    assert not others, f"only {REGISTRY_ADAPTER} talks to the MLflow registry; these name MlflowClient: {others}"


def test_imports_sit_at_module_top_so_the_dependency_graph_is_visible(parsed):
    hidden = [f"{name}:{node.lineno} in {fn.name}" for name, (_, tree) in parsed.items()
              if name not in LAZY_IMPORTS_ALLOWED for fn in _functions(tree) for node in ast.walk(fn)
              if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not hidden, "move these imports to the module top:\n" + "\n".join(hidden)


def test_no_init_module_in_airflow_folder_or_dags():
    assert not list((REPO / "airflow").rglob("__init__.py")), "it would shadow the installed airflow package"


def test_readme_pieces_table_names_every_room():
    readme = (REPO / "README.md").read_text()
    pieces = readme[readme.index("## The pieces"):readme.index("## API")]
    rooms = [_rel(p.parent) for p in (*REPO.glob("*/__init__.py"), *REPO.glob("*/*/__init__.py"))
             if p.parts[-3] != "tests" and "tests" not in p.relative_to(REPO).parts]
    missing = [room for room in rooms if f"`{room}/" not in pieces]
    assert not missing, f"README 'The pieces' lacks {missing}"
