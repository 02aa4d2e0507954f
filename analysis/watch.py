"""The watch after a promotion: is the new champion's live accuracy conclusively below its predecessor's?

A promotion rests on an experiment; the watch checks that what was promoted holds up once it serves
everyone. It compares the new champion's labelled requests since its promotion (`after`) with the
old champion's labelled requests of the experiment (arm A), through the machinery of the A/B
comparison: the difference of accuracies clustered by customer (`inference.cluster_diff`), each
customer's labelled requests weighing as at most `ABSettings.customer_cap` (the declared estimand
of `analysis.compare`), with the always-valid interval (`analysis.sequential`), so the DAG may look
at every run of the watch without raising the false-rollback rate above alpha. A customer seen in
both periods is one cluster across them.

Like the verdict's rule 2, no interval is given before `min_labelled` labelled requests on each
side: `rollout.watch` then holds ("not enough labelled requests yet"). Pure: the experiment DAG and
the lifecycle bench call it with the same rows.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis import inference, sequential
from analysis.rollout import Watch
from ticket_ab.settings import ABSettings


def compare_champions(outcomes: pd.DataFrame, th: ABSettings, seq: bool = True) -> Watch:
    """New - old champion accuracy on `outcomes` (one row per labelled request: `unit` (customer),
    `right` (bool) and `after` (bool: served by the new champion after its promotion; False: served by
    the old champion in the experiment's arm A)), as the `rollout.Watch` the rule reads."""
    after = outcomes["after"].astype(bool).to_numpy()
    labelled = int(len(outcomes))
    if min(int(after.sum()), labelled - int(after.sum())) < th.min_labelled:
        return Watch(math.nan, math.nan, math.nan, labelled)
    units = outcomes["unit"]
    weights = inference.capped_weights(units, th.customer_cap) if th.customer_cap else None
    diff = inference.cluster_diff(outcomes["right"].astype(float), after, units, weights=weights)
    low, high = sequential.interval(diff, th, seq)
    return Watch(diff.value, low, high, labelled)
