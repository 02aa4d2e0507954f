"""A registered two-head model loads where the router runs: with `ticket_ab` and scikit-learn, no training code."""

from __future__ import annotations

import pickle
import subprocess
import sys

import cloudpickle
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from load_test.simulate.generator import generate
from ticket_ab.twohead import TwoHeadModel

URGENT_TEXT = "URGENT: the whole office is down"


def test_the_model_unpickles_in_a_fresh_interpreter_with_only_ticket_ab_and_scikit_learn(tmp_path):
    # Registered versions are cloudpickled: the class must pickle by reference to a module the router image holds.
    tickets = generate("baseline", n=400, seed=26)
    model = TwoHeadModel(ColumnTransformer([("tfidf", TfidfVectorizer(min_df=2), "text")]),
                         LogisticRegression(max_iter=500), LogisticRegression(max_iter=500))
    model.fit(tickets[["text"]], tickets["topic"], priority=tickets["priority"])
    path = tmp_path / "model.pkl"
    path.write_bytes(cloudpickle.dumps(model))
    assert b"ticket_ab.twohead" in path.read_bytes()
    script = (f"import pickle, sys, pandas as pd; m = pickle.loads(open({str(path)!r}, 'rb').read()); "
              f"print(m.predict_priority(pd.DataFrame({{'text': [{URGENT_TEXT!r}]}}))[0]); "
              "print(sorted({n.split('.')[0] for n in sys.modules} & {'retrain', 'pycaret', 'load_test', 'router'}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer, rooms = done.stdout.split("\n")[:2]
    assert answer == model.predict_priority(pd.DataFrame({"text": [URGENT_TEXT]}))[0]
    assert rooms == "[]"
    assert pickle.loads(path.read_bytes()).priority_classes_ == model.priority_classes_
