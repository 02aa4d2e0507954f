"""The pure ML steps of retraining.

PyCaret opens `logs.log` in the working directory as soon as any of its modules is imported. Every module
here that imports PyCaret (`automl`, `cluster`) is a submodule of this package, so pointing its log path
at the null device here, before any of them loads, keeps it out of whatever folder a command runs in
(unless PYCARET_CUSTOM_LOGGING_PATH is set).
"""

import os

os.environ.setdefault("PYCARET_CUSTOM_LOGGING_PATH", os.devnull)
