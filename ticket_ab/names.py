"""Names every component must spell the same way: registry aliases, A/B arms and modes, the DAG id.

A log row written by the router is read by the DAG and by analysis.py, and an alias moved by the
DAG is served by the router; defining these once keeps the writers and the readers in step.
"""

from __future__ import annotations

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"  # the champion before the last promotion: what rollback restores
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)
SERVED_ALIASES = (CHAMPION, CHALLENGER)

A, B = "A", "B"  # the arms: A is served by the champion, B by the challenger
ARMS = (A, B)
ARM_ALIAS = {A: CHAMPION, B: CHALLENGER}

SPLIT = "split"  # each customer gets one arm's answer
SHADOW = "shadow"  # everyone gets the champion's answer; the challenger is scored on the side
MODES = (SPLIT, SHADOW)

DAG_ID = "ticket_drift_retrain"
RELABEL_TASK, SKIP_TASK = "relabel", "skip"  # the two branches after the drift decision

# Event-driven retraining: the log watcher emits this asset when a window's worth of tickets arrived.
WATCH_DAG_ID = "ticket_log_watch"
REQUEST_LOG_ASSET = "ticket_ab_request_log"

# The experiment DAG: looks at the running A/B test and ramps, promotes, stops or rolls back.
EXPERIMENT_DAG_ID = "ticket_experiment"
# The config's `updated_by` while a challenger no change has named is served at the rollout policy's start:
# the router writes it, the experiment DAG reads it (the step then began at the challenger's registration).
ROLLOUT_START = "rollout policy"
