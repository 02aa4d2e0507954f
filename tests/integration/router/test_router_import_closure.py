"""The router's import closure, measured in a fresh interpreter: what a worker really loads.

The router image installs Flask, scikit-learn and mlflow-skinny and copies only `ticket_ab/` and
`router/` (Dockerfile.flask), so a worker must never import another room of the project or a
training, drift, orchestration or analysis library: it would fail to boot in its container.
tests/unit/test_layout.py checks the same from the source; this checks what Python actually loads.
"""

from __future__ import annotations

import subprocess
import sys

NOT_SERVING = ("retrain", "analysis", "load_test", "ops", "bench", "pycaret", "evidently", "airflow", "cleanlab",
               "statsmodels", "matplotlib")

LOADED = f"""
import importlib, pkgutil, sys
import router
for module in pkgutil.walk_packages(router.__path__, "router."):
    if module.name != "router.wsgi":  # builds an app from the environment
        importlib.import_module(module.name)
print(",".join(sorted(name for name in sys.modules if name.split(".")[0] in {NOT_SERVING!r})))
print(",".join(sorted({{name.split(".")[0] for name in sys.modules if name.split(".")[0] in
                        ("ticket_ab", "router", "retrain", "analysis", "load_test", "ops")}})))
"""


def test_every_router_module_loads_no_other_room_and_no_training_library():
    # A fresh interpreter: this test session has long imported everything.
    done = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    heavy, rooms = done.stdout.split("\n")[:2]
    assert heavy == "", f"importing the router pulled in: {heavy}"
    assert rooms == "router,ticket_ab"
