"""The router image ships Flask, scikit-learn and mlflow-skinny only, so the router must never import training,
drift, orchestration or analysis libraries: a worker would fail to boot in its container."""

from __future__ import annotations

import subprocess
import sys

TRAINING_ONLY = ("pycaret", "evidently", "airflow", "cleanlab", "statsmodels", "matplotlib")

IMPORT_THE_ROUTER = f"""
import sys
from router import create_app
import router.views, router.store, router.scoring
print(",".join(sorted(name for name in {TRAINING_ONLY!r} if name in sys.modules)))
"""


def test_the_router_imports_no_training_drift_airflow_or_analysis_library():
    # A fresh interpreter: this test session has long imported everything.
    done = subprocess.run([sys.executable, "-c", IMPORT_THE_ROUTER], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing the router pulled in: {done.stdout.strip()}"
