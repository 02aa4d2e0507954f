"""The window's traffic in SQL: periods, arms, latency, serving failures, the figure's series; pandas gets aggregates.

Everything here reads table `w` of `analysis.prepare` through two views: `win`, the window (from
`since`, authenticated requests only once any is), and `an`, the analysed requests (the current
experiment's periods, without an integration the sample-ratio check left out, without crossover
customers). Row-level definitions are `analysis.experiment`'s and `analysis.arms`'; only the
labelled requests of the comparison come back as rows (`cells`), one per customer and cell of alike
requests, with their strings as shared categories so a window of millions stays small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.covariate import COLUMN, VARIANCE
from analysis.prepare import ORDER, Prepared
from ticket_ab import logscan
from ticket_ab.names import ARMS, SHADOW, SPLIT
from ticket_ab.requestlog import ANONYMOUS

QUANTILES = (50, 95, 99)
BUCKETS = ((0.1, "100ms"), (0.25, "250ms"), (0.5, "500ms"), (1, "1s"), (5, "5s"), (10, "10s"), (30, "30s"),
           (60, "1min"), (300, "5min"), (900, "15min"), (3600, "1h"), (6 * 3600, "6h"), (86400, "1D"))


def bucket_seconds(span: pd.Timedelta) -> tuple[float, str]:
    """A round bucket width (seconds, name) giving roughly 20-60 points over the window."""
    seconds = max(span.total_seconds(), 0.1)
    for width, name in BUCKETS:
        if seconds / width <= 60:
            return width, name
    return 7 * 86400, "7D"


def window(prepared: Prepared, since: pd.Timestamp | None) -> int:
    """View `win` (the window's requests, authenticated only once any is); the anonymous requests left out."""
    after = f"ts >= {logscan.moment(since)}" if since is not None else "true"
    prepared.con.execute(f"CREATE OR REPLACE TEMP VIEW win_all AS SELECT * FROM w WHERE {after}")
    authenticated = prepared.value(f"SELECT bool_or(integration <> '{ANONYMOUS}') FROM win_all")
    keep = f"integration <> '{ANONYMOUS}'" if authenticated else "true"
    prepared.con.execute(f"CREATE OR REPLACE TEMP VIEW win AS SELECT * FROM win_all WHERE {keep}")
    return int(prepared.value(f"SELECT count(*) FROM win_all WHERE NOT ({keep})"))


def answer_sql(arm: str, mode: str) -> tuple[str, str, str]:
    """(which rows arm `arm` answered, its answer, its model version) as SQL over a period's rows."""
    if mode == SHADOW:
        return ("topic <> ''", "topic", "model_version") if arm == "A" else (
            "shadow_topic <> ''", "shadow_topic", "shadow_version")
    return f"variant = '{arm}' AND topic <> '' AND fallback = ''", "topic", "model_version"


def periods(prepared: Prepared) -> pd.DataFrame:
    """One row per configuration of the window, in order of first use, with its counts and its arms'
    labelled answers and accuracy."""
    per_arm = []
    for arm in ARMS:
        parts = {m: answer_sql(arm, m) for m in (SPLIT, SHADOW)}
        answered = (f"CASE WHEN mode = '{SHADOW}' THEN ({parts[SHADOW][0]}) ELSE ({parts[SPLIT][0]}) END "
                    "AND label IS NOT NULL")
        answer = f"CASE WHEN mode = '{SHADOW}' THEN {parts[SHADOW][1]} ELSE {parts[SPLIT][1]} END"
        per_arm.append(f"count(*) FILTER ({answered}) AS labelled_{arm}, "
                       f"avg(CAST({answer} = label AS DOUBLE)) FILTER ({answered}) AS accuracy_{arm}")
    return prepared.frame(f"""SELECT period AS key, arg_min(mode, ({ORDER})) AS mode,
        arg_min(split_b, ({ORDER})) AS split_b, arg_min(champion, ({ORDER})) AS champion,
        arg_min(challenger, ({ORDER})) AS challenger, min(ts) AS start, max(ts) AS "end", count(*) AS requests,
        count(*) FILTER (variant = 'B') AS requests_b, {', '.join(per_arm)}, min(({ORDER})) AS first
        FROM win GROUP BY period ORDER BY first""")


def assignment_units(prepared: Prepared, period: str) -> pd.DataFrame:
    """The period's distinct (unit, variant, integration) with its mode: what the sample-ratio test counts."""
    return prepared.frame("SELECT DISTINCT unit, variant, integration, mode FROM win WHERE period = $p",
                          {"p": period})


def current(prepared: Prepared) -> str:
    """The period of the latest request with a challenger (or of the latest request, when none had one)."""
    return prepared.value(f"SELECT coalesce(arg_max(period, ({ORDER})) FILTER (challenger <> ''), "
                          f"arg_max(period, ({ORDER}))) FROM win")


def analysed(prepared: Prepared, steps: list[str], excluded: list[str]) -> dict[str, int]:
    """View `an`: the requests of the experiment's `steps` without the `excluded` integrations and without the
    customers served by both arms within one step (crossover); how many customers and requests those were."""
    con = prepared.con
    con.execute("CREATE OR REPLACE TABLE an_steps AS SELECT unnest($s::VARCHAR[]) AS period", {"s": steps})
    con.execute("CREATE OR REPLACE TABLE an_excluded AS SELECT unnest($e::VARCHAR[]) AS integration",
                {"e": excluded or ["\x00"]})
    con.execute("""CREATE OR REPLACE TEMP VIEW an_all AS SELECT * FROM win SEMI JOIN an_steps USING (period)
                   ANTI JOIN an_excluded USING (integration)""")
    con.execute(f"""CREATE OR REPLACE TABLE an_crossed AS SELECT period, unit FROM an_all
        WHERE variant IN ('A', 'B') AND mode <> '{SHADOW}' GROUP BY period, unit HAVING count(DISTINCT variant) > 1""")
    con.execute("CREATE OR REPLACE TEMP VIEW an AS SELECT * FROM an_all ANTI JOIN an_crossed USING (period, unit)")
    customers, requests = con.execute("""SELECT count(DISTINCT c.unit), count(a.unit) FROM an_crossed c
        LEFT JOIN an_all a USING (period, unit)""").fetchone()
    return {"customers": int(customers), "requests": int(requests)}


def arm(prepared: Prepared, arm_: str, mode: str) -> dict[str, Any]:
    """An arm's traffic: requests, customers, answers, fallbacks, errors, versions, latency, topic mix."""
    assigned = "true" if mode == SHADOW else f"variant = '{arm_}'"
    answered, answer, version = answer_sql(arm_, mode)
    timed = mode != SHADOW or arm_ == "A"
    levels = ", ".join(str(q / 100) for q in QUANTILES)  # one list: one buffer of the arm's latencies, not three
    latency = (f"quantile_cont(latency_ms, [{levels}]) FILTER ({assigned} AND latency_ms IS NOT NULL "
               "AND NOT isnan(latency_ms))")
    with prepared.whole():
        row = prepared.con.execute(f"""SELECT count(*) FILTER ({assigned}), count(*),
            count(DISTINCT unit) FILTER ({assigned}), count(*) FILTER ({answered}),
            count(*) FILTER ({assigned} AND fallback <> ''), count(*) FILTER ({assigned} AND topic = ''),
            list_sort(list(DISTINCT {version}) FILTER ({answered} AND {version} <> '')), {latency}
            FROM an""").fetchone()
    requests, total, customers, n_answered, fallbacks, errors, versions, quantiles = row
    quantiles = quantiles or [None] * len(QUANTILES)
    mix = prepared.frame(f"SELECT {answer} AS answer, count(*) AS n FROM an WHERE {answered} GROUP BY 1 ORDER BY 1")
    return {
        "requests": int(requests), "share": requests / total if mode == SPLIT and total else None,
        "customers": int(customers), "answered": int(n_answered),
        "fallbacks": 0 if mode == SHADOW and arm_ == "A" else int(fallbacks), "errors": int(errors),
        "versions": list(versions or []),
        "latency_ms": {f"p{q}": (float(v) if timed and v is not None else math.nan)
                       for q, v in zip(QUANTILES, quantiles, strict=True)},
        "topic_mix": {str(a): float(n / mix["n"].sum()) for a, n in zip(mix["answer"], mix["n"], strict=True)},
    }


def failure_cells(prepared: Prepared) -> pd.DataFrame:
    """Per customer and arm of the analysed requests (A and B rows only): requests, errors, fallbacks."""
    return prepared.frame("""SELECT unit, variant = 'B' AS in_b, count(*) AS n, count(*) FILTER (topic = '') AS errors,
        count(*) FILTER (fallback <> '') AS fallbacks FROM an WHERE variant IN ('A', 'B') GROUP BY unit, variant""")


def shadow_failures(prepared: Prepared) -> pd.DataFrame:
    """Per customer of the analysed shadow requests: requests and the shadow's failures (fallbacks)."""
    return prepared.frame("SELECT unit, count(*) AS n, count(*) FILTER (fallback <> '') AS fallbacks FROM an "
                          "GROUP BY unit")


def latency_at(prepared: Prepared, arm_: str, qs: list[float],
               ats: list[float] | None = None) -> tuple[list[float], pd.DataFrame]:
    """Arm `arm_`'s latency at each q of `qs` (`ats` when already known) and, per customer, its timed requests
    (`n`) and those at or below each (`below_i`)."""
    ats = latency_quantiles(prepared, arm_, qs) if ats is None else [float(at) for at in ats]
    if any(math.isnan(at) for at in ats):
        return ats, pd.DataFrame({"unit": [], "n": [], **{f"below_{i}": [] for i in range(len(qs))}})
    below = ", ".join(f"count(*) FILTER (latency_ms <= {float(at)!r}) AS below_{i}" for i, at in enumerate(ats))
    return ats, prepared.frame(f"SELECT unit, count(*) AS n, {below} FROM an WHERE {_timed(arm_)} GROUP BY unit")


def latency_quantiles(prepared: Prepared, arm_: str, qs: list[float]) -> list[float]:
    """Arm `arm_`'s latency at each of `qs` (clipped to [0, 1])."""
    listed = ", ".join(repr(min(1.0, max(0.0, q))) for q in qs)
    with prepared.whole():
        values = prepared.value(f"SELECT quantile_cont(latency_ms, [{listed}]) FROM an WHERE {_timed(arm_)}")
    return [math.nan] * len(qs) if values is None else [float(v) for v in values]


def _timed(arm_: str) -> str:
    """Arm `arm_`'s requests with a latency (SQL)."""
    return f"variant = '{arm_}' AND latency_ms IS NOT NULL AND NOT isnan(latency_ms)"


def labels(prepared: Prepared, sources: list[str]) -> None:
    """Table `lab_rows`: the analysed labelled requests (with their `request_id`), with per feedback source i of
    `sources` the label it would have without that source's feedback (`without_i`, by the same join rule), and the
    ENUM types and customer codes that give `cells` shared categories (`label_cells` casts the rows to them).
    Without source i a request keeps its label unless that label is source i's; then it takes the latest other
    source's label, which only a request labelled more than once has."""
    con = prepared.con
    params = {f"s{i}": s for i, s in enumerate(sources)}
    without, joined = "", ""
    if sources:
        others = ", ".join(f"arg_max(label, ({ORDER})) FILTER (source <> $s{i}) AS other_{i}"
                           for i in range(len(sources)))
        con.execute(f"""CREATE OR REPLACE TABLE lab_others AS SELECT request_id, {others} FROM fb
            SEMI JOIN (SELECT request_id FROM an WHERE label_rows > 1) USING (request_id)
            WHERE label <> '' AND request_id <> '' GROUP BY request_id""", params)
        without = "".join(f", CASE WHEN source <> $s{i} THEN label ELSE other_{i} END AS without_{i}"
                          for i in range(len(sources)))
        joined = "LEFT JOIN lab_others USING (request_id)"
    con.execute(f"""CREATE OR REPLACE TABLE lab_rows AS SELECT unit, variant, period,
        topic, shadow_topic, fallback <> '' AS fell_back, label, source, request_id, label_rows,
        champion_confidence{without}
        FROM an {joined} WHERE label IS NOT NULL""", params)
    _enum(prepared, "label_e", " UNION ".join(f"SELECT DISTINCT {c} AS v FROM lab_rows" for c in (
        "topic", "shadow_topic", "label")))
    # customers get integer codes by a join, not an ENUM: DuckDB's cast to an ENUM of 900,000 values held 2.4 GB
    # beside its memory cap (30M requests)
    con.execute("""CREATE OR REPLACE TABLE unit_codes AS SELECT unit,
        CAST(row_number() OVER (ORDER BY unit) - 1 AS INTEGER) AS code FROM (SELECT DISTINCT unit FROM lab_rows)""")
    prepared.categories["unit"] = pd.Index(prepared.frame("SELECT unit FROM unit_codes ORDER BY code")["unit"])
    _enum(prepared, "small_e", "SELECT DISTINCT variant AS v FROM lab_rows UNION SELECT DISTINCT period FROM lab_rows")


def label_cells(prepared: Prepared, sources: int) -> None:
    """Table `lab_cells`: what `cells` groups, `lab_rows` in the ENUM types and codes of `labels` (`sources`: how many
    `without_i` it has). Cast once, grouping small integers instead of strings makes each `cells` query (the
    comparison's and every leave-one-source-out's) 2-3 times faster: 51 s instead of 55 for a 10M window."""
    labels_e = "".join(f", CAST(without_{i} AS label_e) AS without_{i}" for i in range(sources))
    prepared.con.execute(f"""CREATE OR REPLACE TABLE lab_cells AS SELECT code AS unit,
        CAST(variant AS small_e) AS variant, CAST(period AS small_e) AS period, CAST(topic AS label_e) AS topic,
        CAST(shadow_topic AS label_e) AS shadow_topic, fell_back AS fallback, CAST(label AS label_e) AS label,
        CASE WHEN champion_confidence IS NULL THEN request_id END AS rid, champion_confidence{labels_e}
        FROM lab_rows JOIN unit_codes USING (unit)""")


def cells(prepared: Prepared, label: str = "label", covariate: bool = False) -> pd.DataFrame:
    """The analysed labelled requests as cells of identical requests (`count` of them): `unit`, `variant`,
    `period`, `topic`, `shadow_topic`, `fallback` (True when the challenger failed), `label` (`label`: the label
    that counts; `without_i`: without source i's feedback, unlabelled rows left out). With `covariate`, each cell
    also has the mean of the `champion_confidence` the router logged for its requests and its variance among them
    (`VARIANCE`: the statistics need no more, `inference.cluster_diff`), and a request the router logged none for
    is a cell of its own, with its request id as `rid` (NaN confidence: CUPAC scores it; None on the other cells).
    Strings come as categories shared between columns."""
    rid = "rid, " if covariate else ""
    spread = (f", avg(champion_confidence) AS {COLUMN}, coalesce(var_pop(champion_confidence), 0) AS {VARIANCE}"
              if covariate else "")
    frame = prepared.frame(f"""SELECT {rid}unit, variant, period, topic, shadow_topic, fallback, {label} AS label,
        count(*) AS count{spread} FROM lab_cells WHERE {label} IS NOT NULL GROUP BY ALL""")
    frame["unit"] = pd.Categorical.from_codes(frame["unit"], categories=prepared.categories["unit"])
    for column in ("variant", "period", "topic", "shadow_topic", "label"):
        frame[column] = frame[column].cat.as_unordered()
    return frame


def source_shares(prepared: Prepared) -> pd.DataFrame:
    """Labels per feedback source and arm of the analysed requests ('' where none was recorded), largest first."""
    return prepared.frame("""SELECT source, count(*) AS labels, count(*) FILTER (variant = 'A') AS a,
        count(*) FILTER (variant = 'B') AS b FROM lab_rows GROUP BY source ORDER BY labels DESC, source""")


def unlogged_confidence(prepared: Prepared) -> int:
    """Labelled analysed requests the router logged no champion confidence for: what CUPAC would have to score."""
    return int(prepared.value("SELECT count(*) FILTER (champion_confidence IS NULL) FROM lab_rows"))


def texts(prepared: Prepared, rids: Sequence[str]) -> list[str]:
    """The logged texts of labelled requests (`cells`' `rid`: their request ids), in that order: CUPAC scores them."""
    prepared.con.register("wanted", pd.DataFrame({"request_id": list(rids), "at": np.arange(len(rids))}))
    found = prepared.frame(f"""SELECT k.at, t.text FROM wanted k JOIN (
        SELECT request_id, arg_min(text, ({ORDER})) AS text FROM raw_requests SEMI JOIN wanted USING (request_id)
        GROUP BY request_id) t USING (request_id) ORDER BY k.at""")
    prepared.con.unregister("wanted")
    return found["text"].tolist()


def series(prepared: Prepared, width_s: float) -> dict[str, pd.DataFrame]:
    """The split panel's series in buckets of `width_s` seconds: requests, the share to B (split rows) and
    scored by B (shadow rows), the configured split; and each period's running share of customers in B."""
    bucket = f"to_timestamp(floor(epoch_ms(ts) / {width_s * 1000!r}) * {width_s!r})"
    buckets = prepared.frame(f"""SELECT {bucket} AS bucket, count(*) AS n,
        avg(CAST(variant = 'B' AS DOUBLE)) FILTER (mode <> '{SHADOW}') AS to_b,
        count(*) FILTER (mode <> '{SHADOW}') AS n_split,
        avg(CAST(shadow_topic <> '' AS DOUBLE)) FILTER (mode = '{SHADOW}') AS scored,
        count(*) FILTER (mode = '{SHADOW}') AS n_shadow,
        arg_max(split_b, ({ORDER})) FILTER (mode <> '{SHADOW}') AS configured FROM win GROUP BY 1 ORDER BY 1""")
    customers = prepared.frame(f"""WITH first AS (SELECT period, unit, variant,
            min({{'ts': ts, 'ord': ord}}) AS f FROM win WHERE mode <> '{SHADOW}' AND variant IN ('A', 'B')
            GROUP BY period, unit, variant),
        running AS (SELECT period, f, struct_extract(f, 'ts') AS ts,
            sum(CAST(variant = 'B' AS INTEGER)) OVER (PARTITION BY period ORDER BY f ROWS UNBOUNDED PRECEDING)
            / row_number() OVER (PARTITION BY period ORDER BY f) AS share FROM first)
        SELECT period, {bucket} AS bucket, arg_max(share, f) AS share FROM running GROUP BY 1, 2 ORDER BY 1, 2""")
    return {"buckets": buckets, "customers": customers}


def latency_histogram(prepared: Prepared, arms: list[str], bins: int = 50) -> dict[str, Any]:
    """Per arm, requests per latency bin (log-spaced over every arm's positive latencies), for the figure."""
    listed = ", ".join(f"'{a}'" for a in arms)
    low, high = prepared.con.execute(f"SELECT min(latency_ms), max(latency_ms) FROM an WHERE variant IN ({listed}) "
                                     "AND latency_ms > 0").fetchone()
    if low is None:
        return {"edges": np.array([]), "counts": {}}
    edges = np.geomspace(max(low, 0.01), high * 1.05 + 0.01, bins)
    step = math.log(edges[1] / edges[0])
    found = prepared.frame(f"""SELECT variant, least(greatest(floor(ln(latency_ms / {edges[0]!r}) / {step!r}), 0),
        {bins - 2}) AS bin, count(*) AS n FROM an WHERE variant IN ({listed}) AND latency_ms > 0 GROUP BY 1, 2""")
    counts = {}
    for a in arms:
        rows = found[found["variant"] == a]
        if len(rows):
            hist = np.zeros(bins - 1)
            hist[rows["bin"].astype(int).to_numpy()] = rows["n"].to_numpy()
            counts[a] = hist
    return {"edges": edges, "counts": counts}


def sources(prepared: Prepared) -> list[str]:
    """The distinct sources of the analysed labels (blank: none recorded), largest first."""
    found = prepared.frame("SELECT source, count(*) AS n FROM an WHERE label IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1")
    return [str(s) for s in found["source"]]


def earlier(prepared: Prepared) -> pd.DataFrame:
    """The champion's labelled answers before the experiment's first request (see `covariate.earlier`)."""
    return prepared.frame(f"""WITH start AS (SELECT min(ts) AS t FROM win SEMI JOIN an_steps USING (period)),
        before AS (SELECT * FROM win WHERE ts < (SELECT t FROM start)),
        split AS (SELECT DISTINCT period FROM before WHERE variant <> 'A')
        SELECT unit, topic = label AS right FROM before ANTI JOIN split USING (period)
        WHERE label IS NOT NULL AND topic <> '' ORDER BY {ORDER}""")


def champion_answers(prepared: Prepared) -> pd.DataFrame:
    """The window's labelled answers of arm A (`unit` as a 64-bit hash of the customer, `version`, `right`): the
    watch after a promotion. Compact types: a window of millions keeps this frame for the watch."""
    _enum(prepared, "version_e", "SELECT DISTINCT model_version AS v FROM win")
    frame = prepared.frame("""SELECT hash(unit) AS unit, CAST(model_version AS version_e) AS version,
        topic = label AS right FROM win WHERE label IS NOT NULL AND variant = 'A' AND topic <> ''""")
    frame["version"] = frame["version"].cat.as_unordered()
    return frame


def bounds(prepared: Prepared) -> dict[str, Any]:
    """First and last request of the window and of the analysed requests, and the row counts between."""
    found = {}
    for view, keys in (("win", ("first", "last", "window", "labelled_window")),
                       ("an", ("analysed_from", "analysed_to", "analysed", "labelled_analysed"))):
        row = prepared.con.execute(f"SELECT min(ts), max(ts), count(*), count(label) FROM {view}").fetchone()
        found |= dict(zip(keys, row, strict=True))
    return found


def step_customers(prepared: Prepared, period: str) -> dict[str, int]:
    """Labelled customers per arm in the current ramp step (what a ramp waits for)."""
    found = prepared.frame("SELECT variant, count(DISTINCT unit) AS n FROM an WHERE period = $p AND label IS NOT NULL "
                           "GROUP BY variant", {"p": period})
    counts = dict(zip(found["variant"], found["n"], strict=True))
    return {a: int(counts.get(a, 0)) for a in ARMS}


def _enum(prepared: Prepared, name: str, values_sql: str) -> None:
    """A DuckDB ENUM of the distinct non-NULL values of `values_sql` (column `v`), sorted: pandas gets categories."""
    prepared.con.execute(f"DROP TYPE IF EXISTS {name}")
    prepared.con.execute(f"CREATE TYPE {name} AS ENUM (SELECT DISTINCT v FROM ({values_sql}) WHERE v IS NOT NULL "
                         "ORDER BY v)")
