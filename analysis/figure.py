"""The A/B report's four-panel figure: accuracy with intervals, traffic split over time, latency
distributions and topic mix per arm, under a header line with the verdict in its colour."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, PercentFormatter

from analysis.experiment import Analysis
from analysis.fmt import arm_label, interval, likelihood_ratio, missing, ms, num, p_is, pct, pts, split_share, when
from analysis.verdict import COLLECT, GUARDRAIL, KEEP, PROMOTE
from ticket_ab.names import ARMS, SHADOW

COLORS = {"A": "#1f5fa8", "B": "#e07b00"}
VERDICT_COLORS = {PROMOTE: "#1b7f3b", KEEP: "#555555", COLLECT: "#b06f00", GUARDRAIL: "#b00020"}
MIN_BUCKET = 5  # requests; a share over fewer is noise that looks like a broken split


def figure(analysis: Analysis) -> Figure:
    """Accuracy with intervals, traffic split over time, latency distributions, topic mix per arm."""
    s = analysis.summary
    fig = Figure(figsize=(15, 10), layout="constrained")
    grid = fig.add_gridspec(3, 2, height_ratios=(0.15, 1, 1))
    _header(fig.add_subplot(grid[0, :]), s)
    _accuracy_panel(fig.add_subplot(grid[1, 0]), s, s["comparison"])
    _split_panel(fig.add_subplot(grid[1, 1]), s, analysis.series)
    _latency_panel(fig.add_subplot(grid[2, 0]), s, analysis.series["latency"])
    _topic_panel(fig.add_subplot(grid[2, 1]), s)
    return fig


def _header(ax, s: dict[str, Any]) -> None:
    """The verdict in its colour, and one grey line saying what it compares and on which data."""
    ax.axis("off")
    verdict = s["verdict"]
    promotion = s.get("promotion") or {}
    done = f"  ({promotion['status']})" if promotion.get("done") else ""
    if (s.get("label_sources") or {}).get("deciding"):
        done += "  (refused: rests on one feedback source)"
    title = ax.text(0.5, 0.75, f"Verdict: {verdict['text']}{done}", ha="center", va="center", fontsize=16,
                    fontweight="bold", transform=ax.transAxes, color=VERDICT_COLORS.get(verdict["action"], "black"))
    config = s["config"]["current"]
    mode = "shadow mode" if config["mode"] == SHADOW else f"split {split_share(config['split_b'])} to B"
    window = s["window"]
    start, end = when(window["analysed_from"]), when(window["analysed_to"])
    end = end[11:] if end[:10] == start[:10] else end
    line = ax.text(0.5, 0.2, f"{arm_label(s, 'A')}  vs  {arm_label(s, 'B')}   ·   {s['data']['requests_analysed']:,} "
                   f"requests, {s['data']['labelled_analysed']:,} with feedback   ·   {mode}   ·   {start} – {end} UTC",
                   ha="center", va="center", fontsize=12, color="#333333", transform=ax.transAxes)
    for text in (title, line):
        text.set_in_layout(False)


def _accuracy_panel(ax, s: dict[str, Any], c: dict[str, Any]) -> None:
    ax.set_title("Accuracy on feedback-labelled requests (customer-level Wilson interval)", loc="left", fontsize=12)
    values = [v for arm in ARMS for v in s["arms"][arm]["accuracy_ci"] if not missing(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(0.02, (high - low) * 0.25)
    left, right = max(0.0, low - pad), min(1.02, high + pad)
    ax.set_xlim(left, right)
    for y, arm in enumerate(reversed(ARMS)):
        a = s["arms"][arm]
        if missing(a["accuracy"]):
            ax.text(0.5, y, f"{arm}: no labelled answers yet", ha="center", va="center", color=COLORS[arm],
                    transform=ax.get_yaxis_transform())
            continue
        ci_low, ci_high = a["accuracy_ci"]
        ax.errorbar([a["accuracy"]], [y], xerr=[[a["accuracy"] - ci_low], [ci_high - a["accuracy"]]], fmt="o",
                    color=COLORS[arm], markersize=10, capsize=8, elinewidth=3, capthick=2)
        where = min(0.7, max(0.3, (a["accuracy"] - left) / (right - left)))  # keep the label inside the panel
        ax.text(where, y + 0.17, f"{pct(a['accuracy'])}  [{pct(ci_low)} – {pct(ci_high)}]   n = {a['labelled']:,}",
                transform=ax.get_yaxis_transform(), ha="center", fontsize=11, color=COLORS[arm]).set_in_layout(False)
    ax.set_yticks([0, 1], [f"{arm_label(s, arm)}" for arm in reversed(ARMS)], fontsize=11)
    ax.set_ylim(-0.7, 1.8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    ax.grid(axis="x", alpha=0.3)
    kind = ("always-valid" if c["sequential"] else "fixed-horizon") + (
        ", CUPAC-adjusted" if (c.get("adjustment") or {}).get("applied") else "")
    box = ax.text(0.01, 0.96, f"B − A = {pts(c['diff'])}  ({kind} customer-level interval "
                  f"{interval([c['ci_low'], c['ci_high']], pts)}){_sources_line(s.get('label_sources'))}",
                  transform=ax.transAxes, va="top", fontsize=10.5,
                  bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#bbbbbb"})
    box.set_in_layout(False)
    evidence = c["evidence"]
    if c["sequential"] and not missing(evidence["likelihood_ratio"]):
        shown = (f"evidence: likelihood ratio {likelihood_ratio(evidence['likelihood_ratio'])} of "
                 f"{num(evidence['needed_ratio'], 0)}")
    else:
        shown = f"evidence: |z| {num(abs(evidence['z']), 2)} of {num(evidence['needed_z'], 2)}"
    more = evidence["more_labelled"]
    needed = f";  about {num(more)} more labelled requests needed" if not missing(more) and more > 0 else ""
    foot = ax.text(0.01, 0.03, shown + needed, transform=ax.transAxes, fontsize=9.5, color="#444444")
    foot.set_in_layout(False)


def _sources_line(label_sources: dict[str, Any] | None) -> str:
    """A second line for the comparison box: whose labels the difference rests on."""
    rows = (label_sources or {}).get("sources") or []
    if not rows:
        return ""
    if len(rows) == 1:
        return f"\nlabels: one source, '{rows[0]['source']}'"
    deciding = [r for r in rows if r["decides"]]
    if deciding:
        return "\nNOT without " + ", ".join(f"'{r['source']}' ({pct(r['share'])} of the labels)" for r in deciding)
    return f"\nlabels: {len(rows)} sources, largest '{rows[0]['source']}' {pct(rows[0]['share'])}; none decides alone"


def _split_panel(ax, s: dict[str, Any], series: dict[str, Any]) -> None:
    """Observed share to B per time bucket against the configured split; shadow periods show the
    share of requests the challenger also scored, since nothing is split then."""
    buckets = series["buckets"].set_index("bucket")
    split, shadow = bool(buckets["n_split"].sum()), bool(buckets["n_shadow"].sum())
    title = {(True, False): "Traffic split over time: share of requests to B",
             (False, True): "Shadow coverage over time: share of requests B also scored"}
    ax.set_title(title.get((split, shadow), "Traffic over time: share to B (split) / scored by B (shadow)"),
                 loc="left", fontsize=12)
    if split:
        share = buckets["to_b"].where(buckets["n_split"] >= MIN_BUCKET)
        ax.plot(share.index, share.to_numpy(), "o-", color=COLORS["B"], markersize=4, alpha=0.75,
                label="requests to B, per bucket")
        label = "customers in B, cumulative (what SRM tests)"
        for _, running in series["customers"].groupby("period", sort=False):
            ax.plot(running["bucket"], running["share"].to_numpy(), "-", color="#7a3e00", linewidth=2.2, label=label)
            label = None
        configured = buckets["configured"].dropna()
        changes = configured.ne(configured.shift()) | (configured.index == configured.index[-1])
        ax.step(configured.index[changes], configured[changes].to_numpy(), where="post", linestyle="--",
                color="black", linewidth=1.5, label="configured split")
    if shadow:
        scored = buckets["scored"].where(buckets["n_shadow"] >= MIN_BUCKET)
        ax.plot(scored.index, scored.to_numpy(), "s-", color=COLORS["B"], markersize=4, alpha=0.6,
                label="shadow: share also scored by B")
    if s["config"]["changed"]:
        ax.axvspan(pd.Timestamp(s["window"]["analysed_from"]), pd.Timestamp(s["window"]["analysed_to"]),
                   color="#2e7d32", alpha=0.07, label="compared period")
    ax.set_ylim(-0.02, 1.15)  # headroom for the SRM box above 100%
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    ax.set_ylabel("share of requests")
    ax.grid(alpha=0.3)
    _srm_box(ax, s["srm"])
    _volume_bars(ax, buckets["n"], series["bucket"], series["bucket_s"])
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _srm_box(ax, srm: dict[str, Any]) -> None:
    """The sample-ratio test in a box at the top of the split panel, red and bold when flagged."""
    verdict = ("SRM FLAGGED" if srm["flagged"] else "no SRM") if srm["applicable"] else "SRM n/a"
    detail = (f"{verdict} ({p_is(srm['p_value'])}): customers A {srm['observed'].get('A', 0):,} / "
              f"B {srm['observed'].get('B', 0):,} = {pct(srm['observed_share_b'])} to B, "
              f"{split_share(srm['expected_share_b'])} configured" if srm["applicable"] else f"{verdict}: {srm['why']}")
    box = ax.text(0.01, 0.97, detail, transform=ax.transAxes, va="top", fontsize=9.5,
                  color="#b00020" if srm["flagged"] else "black", fontweight="bold" if srm["flagged"] else "normal",
                  bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#bbbbbb"})
    box.set_in_layout(False)


def _volume_bars(ax, counts: pd.Series, freq: str, width_s: float) -> None:
    """Requests per bucket as faint bars behind the shares, with one legend for both axes."""
    twin = ax.twinx()
    twin.bar(counts.index, counts.to_numpy(), width=width_s / 86400 * 0.9, align="edge", color="#999999", alpha=0.18,
             label=f"requests per {freq}")
    twin.set_ylim(0, max(1, counts.max()) * 4.5)
    twin.set_yticks([])
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    more_h, more_l = twin.get_legend_handles_labels()
    ax.legend(handles + more_h, labels + more_l, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
              fontsize=9, frameon=False)


def _latency_panel(ax, s: dict[str, Any], latency: dict[str, Any]) -> None:
    ax.set_title("Latency per arm (server side; lines at p50 / p95 / p99)", loc="left", fontsize=12)
    edges, counts = latency["edges"], latency["counts"]
    if not counts:
        ax.text(0.5, 0.5, "no latencies logged", ha="center", va="center", transform=ax.transAxes)
        return
    for arm, hist in counts.items():
        q = s["arms"][arm]["latency_ms"]
        ax.stairs(hist, edges, fill=True, alpha=0.25, color=COLORS[arm])
        ax.stairs(hist, edges, linewidth=1.8, color=COLORS[arm],
                  label=f"{arm_label(s, arm)}: p50 {ms(q['p50'])}, p95 {ms(q['p95'])}, p99 {ms(q['p99'])}")
        for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            ax.axvline(q[key], color=COLORS[arm], linestyle=style, linewidth=1.4)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: ms(v)))
    ax.set_xlabel("latency (log scale)")
    ax.set_ylabel("requests")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
    ax.grid(alpha=0.3)
    note = "shadow mode: the challenger's latency is not logged" if s["mode"] == SHADOW else None
    ax.legend(loc="upper left", fontsize=9.5, framealpha=0.95, title=note, title_fontsize=9.5)


def _topic_panel(ax, s: dict[str, Any]) -> None:
    ax.set_title("Predicted topic mix per arm", loc="left", fontsize=12)
    topics = sorted(set(s["arms"]["A"]["topic_mix"]) | set(s["arms"]["B"]["topic_mix"]))
    if not topics:
        ax.text(0.5, 0.5, "no answers logged", ha="center", va="center", transform=ax.transAxes)
        return
    y = np.arange(len(topics))[::-1]
    height = 0.38
    for offset, arm in ((height / 2, "A"), (-height / 2, "B")):
        mix = s["arms"][arm]["topic_mix"]
        shares = [mix.get(t, 0.0) for t in topics]
        bars = ax.barh(y + offset, shares, height=height, color=COLORS[arm],
                       label=f"{arm_label(s, arm)} ({s['arms'][arm]['answered']:,} answers)")
        ax.bar_label(bars, [pct(v, 0) if v >= 0.005 else "" for v in shares], padding=2, fontsize=8.5,
                     color=COLORS[arm])
    ax.set_yticks(y, topics, fontsize=10.5)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    top = max(max(s["arms"][arm]["topic_mix"].values(), default=0) for arm in ARMS)
    ax.set_xlim(0, top * 1.18 + 0.01)
    ax.set_xlabel("share of the arm's answers")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9.5, frameon=False)
