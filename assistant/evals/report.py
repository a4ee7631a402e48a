"""Run reports: Markdown for review and a self-contained HTML page (charts inline, opens offline).

Charts are drawn with Plotly; its JavaScript is embedded in the page once, so nothing is fetched
when the page opens. When the run had an LLM judge, its mean grades sit in the metrics table,
each listed case shows its grades and rationale, and a section lists the lowest-graded answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from assistant._optional import missing
from assistant.errors import InputError
from assistant.evals.dataset import Split
from assistant.evals.runner import CONFIG_FILE, SUMMARY_FILE, CaseResult, read_results
from assistant.evals.summary import GAP_METRICS, ROUTES, SCALAR_METRICS

try:  # the ``[evals]`` extra
    import plotly.graph_objects as go
    import plotly.io as pio
    from jinja2 import Environment, PackageLoader, select_autoescape
except ModuleNotFoundError as exc:
    raise missing("the eval report", exc) from exc

#: How many failing and slowest cases the reports list.
FAILING_SHOWN = 150
SLOWEST_SHOWN = 10
#: How many of the judge's lowest-graded answers the reports list.
JUDGE_LOWEST_SHOWN = 20
#: The metrics drawn in the overview chart (all are shares, 0..1).
CHART_METRICS = [
    "pass_rate", "retrieval.recall@5", "retrieval.mrr", "retrieval.ndcg@5", "route.accuracy",
    "reasons.exact_match", "reasons.macro_f1", "safety.recall", "citations.validity",
    "answer.must_include", "answer.groundedness",
]

_env = Environment(loader=PackageLoader("assistant.evals", "templates"), autoescape=select_autoescape(["j2"]))


def load_run(run: Path) -> tuple[dict[str, Any], dict[str, Any], list[CaseResult]]:
    """(config, summary, results) of a run folder; :class:`InputError` when it is not one."""
    summary_path = run / SUMMARY_FILE
    if not summary_path.exists():
        raise InputError(f"{run} is not a finished eval run (no {SUMMARY_FILE})")
    config_path = run / CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return config, summary, read_results(run)


def fmt(value: object) -> str:
    """A metric value for a table cell."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def split_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(scope, metric, tuning, sealed, gap) for the gap metrics, overall and per dataset that has
    cases in both splits."""
    by_split = summary.get("by_split", {})
    scopes = [("overall", "tuning", "sealed")] + [
        (d, f"{d}/tuning", f"{d}/sealed") for d in summary.get("by_dataset", {})
        if f"{d}/tuning" in by_split and f"{d}/sealed" in by_split
    ]
    rows = []
    for scope, tuning_key, sealed_key in scopes:
        if tuning_key not in by_split or sealed_key not in by_split:
            continue
        tuning, sealed = by_split[tuning_key], by_split[sealed_key]
        rows.append((scope, "cases", fmt(tuning.get("cases")), fmt(sealed.get("cases")), ""))
        for metric in GAP_METRICS:
            a, b = tuning.get(metric), sealed.get(metric)
            if a is None and b is None:
                continue
            gap = fmt(round(a - b, 4)) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "-"
            rows.append((scope, metric, fmt(a), fmt(b), gap))
    return rows


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """The overall and per-dataset scalar metrics as a table, then tuning against sealed."""
    datasets = list(summary.get("by_dataset", {}))
    table = Table(title="Eval summary")
    table.add_column("metric")
    table.add_column("overall", justify="right")
    for name in datasets:
        table.add_column(name, justify="right")
    for metric in ["cases", *SCALAR_METRICS]:
        values = [summary["overall"].get(metric), *(summary["by_dataset"][d].get(metric) for d in datasets)]
        if all(v is None for v in values):
            continue
        table.add_row(metric, *(fmt(v) for v in values))
    console.print(table)
    if rows := split_rows(summary):
        splits = Table(title="Tuning vs sealed (sealed cases are run only to report)")
        for column in ("scope", "metric", "tuning", "sealed", "gap"):
            splits.add_column(column, justify="left" if column in ("scope", "metric") else "right")
        for row in rows:
            splits.add_row(*row)
        console.print(splits)


def judge_line(result: CaseResult) -> str:
    """The judge's grades and rationale for a case, its error, or ``""`` when it was not judged."""
    scores = result.outcome.judge
    if scores is not None:
        return (f"judge: correctness {scores.correctness}, groundedness {scores.groundedness}, "
                f"helpfulness {scores.helpfulness}: {scores.rationale}")
    if result.outcome.judge_error:
        return f"judge error: {result.outcome.judge_error}"
    return ""


def lowest_judged(results: list[CaseResult]) -> list[CaseResult]:
    """The judged cases with the lowest grades (worst single grade, then the sum), worst first."""
    graded = [(r, (s.correctness, s.groundedness, s.helpfulness)) for r in results if (s := r.outcome.judge)]
    graded.sort(key=lambda pair: (min(pair[1]), sum(pair[1])))
    return [r for r, _ in graded[:JUDGE_LOWEST_SHOWN]]


def _case_view(result: CaseResult) -> dict[str, Any]:
    response = result.response or {}
    journey = result.case.journey
    journey_text = ""
    if journey is not None:
        journey_text = json.dumps(journey.model_dump(mode="json", exclude_none=True, exclude_defaults=True))
    return {
        "key": result.key,
        "message": result.case.message,
        "history": [f"{t.role}: {t.text}" for t in result.case.history],
        "journey": journey_text,
        "expected": f"{result.case.expected_route.value if result.case.expected_route else '-'} "
        f"{[c.value for c in result.case.expected_reasons]}",
        "got": f"{response.get('route', 'error')} {result.reason_codes}",
        "reasons": [f"{r['code']}: {r['detail']}" for r in response.get("reasons", [])],
        "answer": response.get("answer", result.error or ""),
        "citations": [f"{c['doc_id']} § {c['section']}" for c in response.get("citations", [])],
        "failures": result.outcome.failures,
        "judge": judge_line(result),
        "latency_ms": result.latency_ms,
        "tags": result.tags,
    }


def _charts(summary: dict[str, Any], results: list[CaseResult]) -> list[tuple[str, str]]:
    overall = summary["overall"]
    figures: list[tuple[str, go.Figure]] = []
    names = [n for n in CHART_METRICS if overall.get(n) is not None]
    bars = go.Figure(go.Bar(x=names, y=[overall[n] for n in names], text=[fmt(overall[n]) for n in names]))
    bars.update_layout(title="Main metrics (all cases)", yaxis={"range": [0, 1]}, height=380)
    figures.append(("metrics", bars))
    matrix = overall["route.confusion"]
    heat = go.Figure(
        go.Heatmap(
            z=[[matrix[e][p] for p in ROUTES] for e in ROUTES], x=[f"got {p}" for p in ROUTES],
            y=[f"expected {e}" for e in ROUTES], text=[[str(matrix[e][p]) for p in ROUTES] for e in ROUTES],
            texttemplate="%{text}", colorscale="Blues",
        )
    )
    heat.update_layout(title="Route confusion matrix", height=360, yaxis={"autorange": "reversed"})
    figures.append(("confusion", heat))
    scores = overall["reasons.scores"]
    if scores:
        codes = sorted(scores)
        reason_fig = go.Figure(
            [
                go.Bar(name=part, x=codes, y=[scores[c][part] or 0 for c in codes])
                for part in ("precision", "recall", "f1")
            ]
        )
        reason_fig.update_layout(title="Reasons: precision, recall, F1", barmode="group", height=380, yaxis={"range": [0, 1]})
        figures.append(("reasons", reason_fig))
    if table := overall.get("calibration.reliability"):
        mids = [(b["low"] + b["high"]) / 2 for b in table]
        reliability = go.Figure([
            go.Bar(name="share right", x=mids, y=[b["accuracy"] for b in table], width=0.08,
                   text=[f"{b['cases']} cases" for b in table]),
            go.Scatter(name="confidence", x=mids, y=[b["confidence"] for b in table], mode="markers"),
            go.Scatter(name="perfect calibration", x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}),
        ])
        reliability.update_layout(
            title=f"Reliability: confidence against answers right (ECE {fmt(overall.get('calibration.ece'))})",
            xaxis={"range": [0, 1], "title": "confidence"}, yaxis={"range": [0, 1]}, height=380,
        )
        figures.append(("reliability", reliability))
    latency = go.Figure(go.Histogram(x=[r.latency_ms for r in results if r.response], nbinsx=40))
    latency.update_layout(title="Latency per case (ms)", height=320)
    figures.append(("latency", latency))
    html = []
    for index, (name, figure) in enumerate(figures):
        html.append((name, pio.to_html(figure, full_html=False, include_plotlyjs=index == 0, div_id=f"chart-{name}")))
    return html


SEALED_NOTE = (
    "Sealed cases are run only to report: their failures are not listed here, so that nobody "
    "tunes on them. A large gap means the tuning numbers are fitted to their own cases."
)


def failing_tuning(results: list[CaseResult]) -> list[CaseResult]:
    """The failing cases that may be shown: the tuning split only (sealed ones stay unseen)."""
    return [r for r in results if not r.outcome.passed and r.case.part is Split.TUNING]


def render_markdown(config: dict[str, Any], summary: dict[str, Any], results: list[CaseResult]) -> str:
    """The Markdown report."""
    datasets = list(summary["by_dataset"])
    lines = [f"# Eval run {config.get('label') or ''}".rstrip(), ""]
    if overrides := config.get("overrides"):
        lines += [f"Settings changed: `{json.dumps(overrides)}`", ""]
    lines += ["| metric | overall | " + " | ".join(datasets) + " |", "|---|---:|" + "---:|" * len(datasets)]
    for metric in ["cases", *SCALAR_METRICS]:
        values = [summary["overall"].get(metric), *(summary["by_dataset"][d].get(metric) for d in datasets)]
        if any(v is not None for v in values):
            lines.append(f"| {metric} | " + " | ".join(fmt(v) for v in values) + " |")
    if rows := split_rows(summary):
        lines += ["", "## Tuning vs sealed", "", SEALED_NOTE, "", "| scope | metric | tuning | sealed | gap |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {' | '.join(row)} |" for row in rows]
    matrix = summary["overall"]["route.confusion"]
    lines += ["", "## Route confusion (rows: expected, columns: got)", "", "| | " + " | ".join(ROUTES) + " |",
              "|---|" + "---:|" * len(ROUTES)]
    lines += [f"| {e} | " + " | ".join(str(matrix[e][p]) for p in ROUTES) + " |" for e in ROUTES]
    scores = summary["overall"]["reasons.scores"]
    if scores:
        lines += ["", "## Reasons", "", "| reason | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {c} | {fmt(s['precision'])} | {fmt(s['recall'])} | {fmt(s['f1'])} | {s['support']} |"
            for c, s in sorted(scores.items())
        ]
    failing = failing_tuning(results)
    sealed_failing = sum(1 for r in results if not r.outcome.passed) - len(failing)
    lines += ["", f"## Failing tuning cases ({len(failing)} of {len(results)}; {sealed_failing} sealed not listed)", ""]
    for result in failing[:FAILING_SHOWN]:
        view = _case_view(result)
        lines.append(f"- **{view['key']}** `{view['message'][:160]}` → {view['got']}: " + "; ".join(view["failures"]))
        if view["judge"]:
            lines.append(f"  - {view['judge']}")
    if len(failing) > FAILING_SHOWN:
        lines.append(f"- … and {len(failing) - FAILING_SHOWN} more (see results.jsonl)")
    if judge := summary.get("judge"):
        lowest = lowest_judged(results)
        lines += ["", f"## Judge: lowest-graded answers ({judge['model']}, {judge['prompt']})", ""]
        lines += [f"- **{r.key}** `{r.case.message[:160]}`: {judge_line(r)}" for r in lowest]
        errors = [r for r in results if r.outcome.judge_error]
        lines += [f"- **{r.key}**: {judge_line(r)}" for r in errors[:FAILING_SHOWN]]
        if not lowest and not errors:
            lines.append("- no answered case was judged")
    slowest = sorted(results, key=lambda r: -r.latency_ms)[:SLOWEST_SHOWN]
    lines += ["", "## Slowest cases", ""] + [f"- {r.key}: {r.latency_ms:.1f} ms" for r in slowest]
    return "\n".join(lines) + "\n"


def render_html(config: dict[str, Any], summary: dict[str, Any], results: list[CaseResult]) -> str:
    """The self-contained HTML report."""
    datasets = list(summary["by_dataset"])
    rows = []
    for metric in ["cases", *SCALAR_METRICS]:
        values = [summary["overall"].get(metric), *(summary["by_dataset"][d].get(metric) for d in datasets)]
        if any(v is not None for v in values):
            rows.append((metric, [fmt(v) for v in values]))
    failing_all = failing_tuning(results)
    failing = [_case_view(r) for r in failing_all][:FAILING_SHOWN]
    slowest = [_case_view(r) for r in sorted(results, key=lambda r: -r.latency_ms)[:SLOWEST_SHOWN]]
    tags = [(t, v) for t, v in summary.get("by_tag", {}).items() if v["cases"] >= 3]
    judge = summary.get("judge")
    lowest = [_case_view(r) for r in lowest_judged(results)] if judge else []
    judge_errors = [_case_view(r) for r in results if r.outcome.judge_error][:FAILING_SHOWN] if judge else []
    return _env.get_template("report.html.j2").render(
        title=f"Eval run {config.get('label') or ''}".strip(),
        config=json.dumps(config.get("overrides") or {}),
        created=config.get("created_at", ""),
        datasets=datasets,
        rows=rows,
        charts=_charts(summary, results),
        failing=failing,
        failing_total=len(failing_all),
        sealed_failing=sum(1 for r in results if not r.outcome.passed) - len(failing_all),
        split_rows=split_rows(summary),
        sealed_note=SEALED_NOTE,
        total=len(results),
        slowest=slowest,
        tags=tags,
        fmt=fmt,
        problems=config.get("problems", []),
        judge=judge,
        judge_lowest=lowest,
        judge_errors=judge_errors,
    )


def write_reports(run: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into the run folder; returns their paths."""
    config, summary, results = load_run(run)
    md = run / "report.md"
    html = run / "report.html"
    md.write_text(render_markdown(config, summary, results), encoding="utf-8")
    html.write_text(render_html(config, summary, results), encoding="utf-8")
    return md, html
