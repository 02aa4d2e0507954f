"""The A/B report as one self-contained HTML page: the verdict, the figure inline, every number in tables.

The page itself is the jinja2 template `templates/ab_report.html.j2` (autoescaped); this module only
turns the summary into the template's rows of text, each number written by `analysis.fmt`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from analysis.figure import VERDICT_COLORS
from analysis.fmt import arm_label, interval, likelihood_ratio, missing, ms, num, pct, pts, pval, split_share, when
from analysis.verdict import __doc__ as RULE_DOC
from ticket_ab.names import ARM_ALIAS, B

TEMPLATE = "ab_report.html.j2"
_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                                autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                lstrip_blocks=True, keep_trailing_newline=True)


class Table(NamedTuple):
    """One table of the page as text: the template only lays it out (and escapes it)."""

    header: list[str]
    rows: list[list[str]]


def render_html(summary: dict[str, Any], png: bytes) -> str:
    """One self-contained page: the verdict, the figure (inline PNG) and every number in tables."""
    s = summary
    window = s["window"]
    return _TEMPLATES.get_template(TEMPLATE).render(
        arm_a=arm_label(s, "A"), arm_b=arm_label(s, "B"), mode=s["mode"], generated=s.get("generated_at", ""),
        window_from=when(window["first"]), window_to=when(window["last"]), since=window["since"],
        verdict=s["verdict"], verdict_color=VERDICT_COLORS.get(s["verdict"]["action"], "#000"),
        promotion=s.get("promotion"), notes=s["notes"], image=base64.b64encode(png).decode("ascii"),
        srm_why=s["srm"]["why"], rule=(RULE_DOC or "").strip(), tables=_tables(s),
        label_sources=s.get("label_sources"), estimand=s["comparison"]["estimand"]["statement"],
    )


def _tables(s: dict[str, Any]) -> dict[str, Table | None]:
    """Every table the template shows, by section; None for a section the data does not have."""
    c = s["comparison"]
    sources = s.get("sources")
    return {
        "arms": _arms_table(s),
        "comparison": _comparison_table(c),
        "guardrails": Table(["guardrail", "status", "B − A", "interval", "margin"],
                            [[g["name"], g["status"], *_guardrail_cells(g)] for g in s["guardrails"]]),
        "srm": _srm_table(s["srm"], s["thresholds"]["srm_alpha"]),
        "per_topic": _per_topic_table(c["per_topic"]),
        "label_sources": _label_sources_table(s.get("label_sources")),
        "mix": _mix_table(s),
        "periods": _periods_table(s["config"]["periods"]),
        "data": Table(["what", "count"], [[k.replace("_", " "), num(v)] for k, v in s["data"].items()]),
        "sources": Table(["log", "files"], [[k, ", ".join(map(str, v)) or "none"] for k, v in sources.items()])
        if sources else None,
        "thresholds": Table(["threshold", "value"], [[k, str(v)] for k, v in s["thresholds"].items()]),
    }


def _arms_table(s: dict[str, Any]) -> Table:
    a, b = s["arms"]["A"], s["arms"]["B"]
    level = f"{1 - s['thresholds']['alpha']:.0%}"

    def row(name: str, fn) -> list[str]:
        return [name, fn(a), fn(b)]

    rows = [
        row("model version", lambda x: ", ".join(x["versions"]) or "n/a"),
        row("requests", lambda x: num(x["requests"])),
        row("customers", lambda x: num(x["customers"])),
        row("share of requests", lambda x: pct(x["share"])),
        row("configured share", lambda x: pct(_configured(s, x))),
        row("answered by this arm's model", lambda x: num(x["answered"])),
        row("fallbacks to the champion", lambda x: num(x["fallbacks"])),
        row("errors (no answer)", lambda x: num(x["errors"])),
        row("feedback-labelled requests (intention-to-treat)", lambda x: num(x["labelled"])),
        row("customers with labelled requests", lambda x: num(x["labelled_customers"])),
        row("correct", lambda x: num(x["correct"])),
        row("accuracy", lambda x: pct(x["accuracy"])),
        row(f"accuracy {level} Wilson interval, customer-level", lambda x: interval(x["accuracy_ci"])),
        row("macro-F1", lambda x: pct(x["macro_f1"])),
        row(f"macro-F1 {level} bootstrap interval over customers", lambda x: interval(x["macro_f1_ci"])),
        *_priority_rows(s, row, level),
        row("latency p50", lambda x: ms(x["latency_ms"]["p50"])),
        row("latency p95", lambda x: ms(x["latency_ms"]["p95"])),
        row("latency p99", lambda x: ms(x["latency_ms"]["p99"])),
    ]
    return Table(["", arm_label(s, "A"), arm_label(s, "B")], rows)


def _priority_rows(s: dict[str, Any], row, level: str) -> list[list[str]]:
    """The arms' priority figures (`analysis.priority`): an arm without them says why in each row."""
    if "priority" not in s["arms"]["A"]:  # a summary written before priorities were reported
        return []

    def measured(fn):
        return lambda x: fn(x["priority"]) if x["priority"]["status"] == "measured" else x["priority"]["text"]

    return [
        row("priority-labelled requests", lambda x: num(x["priority"]["labelled"]) + (
            f" ({num(x['priority']['unscored'])} answered without a priority head, left out)"
            if x["priority"].get("unscored") else "")),
        row("priority accuracy", measured(lambda p: pct(p["accuracy"]))),
        row(f"priority accuracy {level} Wilson interval, customer-level",
            measured(lambda p: interval(p["accuracy_ci"]))),
        row("urgent missed (urgent-labelled answered low, medium or not at all)",
            measured(lambda p: f"{num(p['urgent_missed'])} of {num(p['urgent'])} ({pct(p['urgent_missed_rate'])})")),
    ]


def _configured(s: dict[str, Any], arm: dict[str, Any]) -> float | None:
    split_b = s["config"]["current"]["split_b"]
    if split_b is None:
        return None
    return split_b if arm["alias"] == ARM_ALIAS[B] else 1 - split_b


def _comparison_table(c: dict[str, Any]) -> Table:
    e = c["evidence"]
    rows = [
        ["estimate", c["test"]],
        ["estimand", c["estimand"]["statement"]],
        ["interval", c["interval"]],
        ["labelled requests (A / B)", f"{num(c['n_a'])} / {num(c['n_b'])}"],
        ["customers (assignment units)", num(c["units"])],
        ["accuracy difference B − A", pts(c["diff"])],
        ["customer-level standard error", pts(c["se"]).lstrip("+")],
        ["interval of the difference", interval([c["ci_low"], c["ci_high"]], pts)],
        ["z for a gain of the minimum gain (needed)", f"{num(e['z'], 2)} ({num(e['needed_z'], 2)})"],
    ]
    if c["sequential"]:
        rows.append(["likelihood ratio (needed)",
                     f"{likelihood_ratio(e['likelihood_ratio'], 2)} ({num(e['needed_ratio'], 0)})"])
    rows += [["labelled requests the decision needs in all", num(e["labelled_needed"])],
             ["evidence", e["statement"]]]
    adjustment = c["adjustment"]
    if c["estimand"]["capped_customers"]:
        rows.append(["request-weighted difference, unadjusted (SE)",
                     f"{pts(adjustment['uncapped_diff'])} ({pts(adjustment['uncapped_se']).lstrip('+')})"])
    if adjustment.get("applied"):
        rows += [["covariates (CUPAC / CUPED)", adjustment.get("statement", adjustment["covariate"])
                  + (f"; {num(adjustment['earlier_customers'])} customers with {num(adjustment['earlier_labelled'])} "
                     "earlier labelled requests" if adjustment.get("earlier_customers") else "")],
                 ["variance removed by the adjustment", pct(adjustment["variance_reduction"])],
                 ["unadjusted difference (SE)", f"{pts(adjustment['unadjusted_diff'])} "
                                                f"({pts(adjustment['unadjusted_se']).lstrip('+')})"]]
    if c["mcnemar"]:
        m = c["mcnemar"]
        rows += [["paired tickets", num(m["pairs"])], ["only A right", num(m["only_a_right"])],
                 ["only B right", num(m["only_b_right"])],
                 ["McNemar statistic (request-level, for reference)", num(m["statistic"], 3)],
                 ["McNemar p-value (request-level, for reference)", pval(m["p_value"])],
                 ["McNemar method", m["method"]]]
    return Table(["", "value"], rows)


def _guardrail_cells(g: dict[str, Any]) -> list[str]:
    unit = ms if g["name"].endswith("latency") else pts
    return [unit(g["diff"]), interval([g["ci_low"], g["ci_high"]], unit), unit(g["margin"]).lstrip("+")]


def _srm_table(srm: dict[str, Any], alpha: float) -> Table | None:
    if not srm["applicable"]:
        return None
    rows = [["unit", "distinct customers (the router assigns sticky by customer); crossover customers left out"],
            ["customers in A / B", f"{num(srm['observed'].get('A', 0))} / {num(srm['observed'].get('B', 0))}"],
            ["observed share to B", pct(srm["observed_share_b"])],
            ["configured share to B", pct(srm["expected_share_b"])],
            ["chi-square", num(srm["chi2"], 3)], ["p-value", pval(srm["p_value"])],
            [f"flagged (p < {alpha:g})", "YES: do not trust the comparison" if srm["flagged"] else "no"]]
    return Table(["", "value"], rows)


def _per_topic_table(per_topic: list[dict[str, Any]]) -> Table:
    rows = [[t["topic"], num(t["n_a"]), pct(t["accuracy_a"]), num(t["n_b"]), pct(t["accuracy_b"]),
             pts(t["accuracy_b"] - t["accuracy_a"]) if not (missing(t["accuracy_a"]) or missing(t["accuracy_b"]))
             else "n/a"] for t in per_topic]
    return Table(["topic", "labelled A", "accuracy A", "labelled B", "accuracy B", "B − A"], rows)


def _label_sources_table(label_sources: dict[str, Any] | None) -> Table | None:
    """Each feedback source's labels, its share per arm and the verdict without its labels."""
    if not label_sources or not label_sources["sources"]:
        return None
    rows = []
    for r in label_sources["sources"]:
        w = r["without"]
        left_out = [w["text"], num(w["labelled"]), pts(w["diff"]), interval([w["ci_low"], w["ci_high"]], pts)] \
            if w else ["n/a (the only source)", "", "", ""]
        rows.append([r["source"], num(r["labels"]), pct(r["share"]) + (" (more than half)" if r["majority"] else ""),
                     pct(r["per_arm"]["A"]["share"]), pct(r["per_arm"]["B"]["share"]), *left_out,
                     "YES: the promotion rests on it" if r["decides"] else "no"])
    return Table(["source", "labels", "share", "share of A's labels", "share of B's labels", "verdict without it",
                  "labelled without it", "B − A without it", "interval without it", "decides"], rows)


def _mix_table(s: dict[str, Any]) -> Table:
    topics = sorted(set(s["arms"]["A"]["topic_mix"]) | set(s["arms"]["B"]["topic_mix"]))
    rows = [[t, pct(s["arms"]["A"]["topic_mix"].get(t, 0.0)), pct(s["arms"]["B"]["topic_mix"].get(t, 0.0))]
            for t in topics]
    return Table(["predicted topic", "A", "B"], rows)


def _periods_table(periods: list[dict[str, Any]]) -> Table:
    rows = [[f"v{p['champion']}" if p["champion"] else "n/a", f"v{p['challenger']}" if p["challenger"] else "none",
             p["mode"], split_share(p["split_b"]), when(p["start"]), when(p["end"]), num(p["requests"]),
             num(p["requests_b"]),
             pval(p["srm"]["p_value"]) + (" FLAGGED" if p["srm"]["flagged"] else ""),
             f"{num(p['labelled']['A'])} / {num(p['labelled']['B'])}",
             f"{pct(p['accuracy']['A'])} / {pct(p['accuracy']['B'])}"] for p in periods]
    return Table(["champion", "challenger", "mode", "split to B", "from", "to", "requests", "to B", "SRM p",
                   "labelled A / B", "accuracy A / B"], rows)
