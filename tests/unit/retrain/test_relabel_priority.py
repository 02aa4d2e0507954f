"""Relabelling with priorities (`retrain.ml.relabel.relabel`): a window row's priority label rides along as
`priority` (trained on, held out, quarantined with its row); a row with only a priority bypasses cleaning,
pseudo-labelling and the review queue and is trained on with no topic; a reference row without a topic teaches none;
a gold row whose topic is disputed or dropped keeps its agent's priority as a row with only a priority."""

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


def test_a_gold_row_whose_topic_is_disputed_or_dropped_keeps_its_priority_as_a_priority_only_row():
    window = _window()
    tickets = generate("baseline", 300, seed=11).reset_index(drop=True)
    window.loc[:149, "label_priority"] = [p if i % 3 else None for i, p in enumerate(tickets.loc[:149, "priority"])]
    topics = sorted(window.loc[:149, "label"].unique())
    for i in range(0, 150, 5):  # an agent's wrong clicks: cleanlab disputes some of them
        window.loc[i, "label"] = topics[(topics.index(window.loc[i, "label"]) + 1) % len(topics)]
    window.loc[[190, 191, 192], ["label", "label_priority"]] = [["refund-fraud", "urgent"], ["refund-fraud", None],
                                                                ["netwrok", "high"]]  # rare unknown labels

    result = relabel(window, generate("baseline", 400, seed=12)[["text", "topic", "priority"]], CONFIG, seed=0)

    given = window.set_index("request_id")
    doubted = set(result.review.loc[result.review["given_label"].notna(), "request_id"])  # disputed: in review
    with_priority = {r for r in doubted if pd.notna(given.loc[r, "label_priority"])}
    assert result.stats["gold_disputed"] == len(doubted) and with_priority and doubted - with_priority
    assert result.stats["gold_disputed_priority_kept"] == len(with_priority)
    assert result.stats["rare_unknown_labels_dropped"] == 3 and result.stats["rare_unknown_priority_kept"] == 2
    kept = with_priority | {"r190", "r192"}
    rows = result.train.loc[result.train["request_id"].isin(kept | doubted | {"r191"})].set_index("request_id")
    assert set(rows.index) == kept and not rows.index.duplicated().any()
    assert rows["topic"].isna().all() and rows["label_origin"].eq(GOLD).all()
    assert rows["priority"].to_dict() == given.loc[sorted(kept), "label_priority"].to_dict()
    assert not {"refund-fraud", "netwrok"} & (set(result.train["topic"].dropna()) | set(result.holdout["topic"]))
    assert result.stats["train"] == len(result.train)
