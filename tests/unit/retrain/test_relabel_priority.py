"""Relabelling with priorities (`retrain.ml.relabel.relabel`): a window row's priority label rides along as
`priority` (trained on, held out, quarantined with its row); a row with only a priority bypasses cleaning,
pseudo-labelling and the review queue and is trained on with no topic; a reference row without a topic teaches none."""

from __future__ import annotations

import pandas as pd

from load_test.simulate.generator import generate
from retrain.ml.relabel import GOLD, PSEUDO, relabel
from ticket_ab.settings import RelabelSettings

CONFIG = RelabelSettings(min_gold=50, min_holdout=5)


def _window() -> pd.DataFrame:
    """300 generated tickets: 150 with their topic (every other one with its priority too), 40 with only their
    priority, the rest unlabelled."""
    tickets = generate("baseline", 300, seed=11).reset_index(drop=True)
    window = pd.DataFrame({"ticket_id": [f"T{i}" for i in range(300)], "request_id": [f"r{i}" for i in range(300)],
                           "customer_id": [f"C{i % 23}" for i in range(300)], "text": tickets["text"],
                           "label": None, "label_priority": None, "label_source": "desk"})
    window.loc[:149, "label"] = tickets.loc[:149, "topic"]
    window.loc[0:149:2, "label_priority"] = tickets.loc[0:149:2, "priority"]
    window.loc[150:189, "label_priority"] = tickets.loc[150:189, "priority"]
    return window


def test_priority_only_rows_are_trained_on_without_a_topic_and_bypass_cleaning_and_pseudo_labels():
    window = _window()
    reference = generate("baseline", 400, seed=12)[["text", "topic", "priority"]]
    reference.loc[:19, "topic"] = None  # priority-only rows of the champion's training data

    result = relabel(window, reference, CONFIG, seed=0)

    alone = set(window.loc[150:189, "request_id"])
    assert result.stats["priority_only"] == 40 and result.stats["unlabelled"] == 110
    rows = result.train.loc[result.train["request_id"].isin(alone)].set_index("request_id")
    assert len(rows) == 40 and rows["topic"].isna().all() and rows["label_origin"].eq(GOLD).all()
    assert rows["priority"].to_dict() == window.set_index("request_id").loc[sorted(alone), "label_priority"].to_dict()
    assert not alone & set(result.review["request_id"]) and not alone & set(result.holdout["request_id"])
    assert result.train.loc[result.train["label_origin"].eq(PSEUDO), "priority"].isna().all()
    assert "nan" not in set(result.train["topic"].dropna()) | set(result.review["suggested_topic"].dropna())
    given = window.set_index("request_id")["label_priority"]
    for frame in (result.train.loc[result.train["topic"].notna()], result.holdout):
        expected = given.reindex(frame["request_id"]).tolist()
        assert frame["priority"].tolist() == expected
    assert result.holdout["priority"].notna().any()
