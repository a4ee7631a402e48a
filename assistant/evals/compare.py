"""Compare two eval runs: per-metric deltas and the cases that regressed or improved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from assistant.evals.dataset import Split
from assistant.evals.report import _env, fmt, load_run
from assistant.evals.summary import SCALAR_METRICS


class MetricDelta(BaseModel):
    """One metric in both runs."""

    scope: str
    metric: str
    a: float | None
    b: float | None
    higher_is_better: bool

    @property
    def delta(self) -> float | None:
        """b - a, when both exist."""
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``same``."""
        d = self.delta
        if d is None or abs(d) < 1e-9:
            return "same"
        return "better" if (d > 0) == self.higher_is_better else "worse"


class CaseChange(BaseModel):
    """A case whose outcome differs between the runs."""

    key: str
    message: str
    a: str
    b: str
    failures_b: list[str]


class Comparison(BaseModel):
    """Everything ``assistant eval compare`` shows."""

    run_a: str
    run_b: str
    label_a: str
    label_b: str
    metrics: list[MetricDelta]
    regressed: list[CaseChange]
    improved: list[CaseChange]
    route_changed: list[CaseChange]
    only_in_a: int
    only_in_b: int
    sealed_changed: int = 0  # sealed cases whose outcome changed: counted, never listed




def _scalars(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"overall": summary["overall"], **summary.get("by_dataset", {}), **summary.get("by_split", {})}


def compare_runs(run_a: Path, run_b: Path) -> Comparison:
    """Compare run folder ``run_b`` (candidate) against ``run_a`` (baseline)."""
    config_a, summary_a, results_a = load_run(run_a)
    config_b, summary_b, results_b = load_run(run_b)
    scopes_a, scopes_b = _scalars(summary_a), _scalars(summary_b)
    deltas = []
    for scope in [s for s in scopes_a if s in scopes_b]:
        for metric, higher in SCALAR_METRICS.items():
            a, b = scopes_a[scope].get(metric), scopes_b[scope].get(metric)
            if a is None and b is None:
                continue
            deltas.append(MetricDelta(scope=scope, metric=metric, a=a, b=b, higher_is_better=higher))
    by_key_a = {r.key: r for r in results_a}
    by_key_b = {r.key: r for r in results_b}
    regressed, improved, route_changed = [], [], []
    sealed_changed = 0
    for key in sorted(by_key_a.keys() & by_key_b.keys()):
        ra, rb = by_key_a[key], by_key_b[key]
        if rb.case.part is Split.SEALED:  # sealed cases are run only to report: counted, not shown
            sealed_changed += ra.outcome.passed != rb.outcome.passed or ra.route != rb.route
            continue
        change = CaseChange(
            key=key, message=rb.case.message,
            a=f"{'pass' if ra.outcome.passed else 'fail'} {ra.route} {ra.reason_codes}",
            b=f"{'pass' if rb.outcome.passed else 'fail'} {rb.route} {rb.reason_codes}",
            failures_b=rb.outcome.failures,
        )
        if ra.outcome.passed and not rb.outcome.passed:
            regressed.append(change)
        elif rb.outcome.passed and not ra.outcome.passed:
            improved.append(change)
        elif ra.route != rb.route:
            route_changed.append(change)
    return Comparison(
        run_a=str(run_a), run_b=str(run_b),
        label_a=str(config_a.get("label") or run_a.name), label_b=str(config_b.get("label") or run_b.name),
        metrics=deltas, regressed=regressed, improved=improved, route_changed=route_changed,
        only_in_a=len(by_key_a.keys() - by_key_b.keys()), only_in_b=len(by_key_b.keys() - by_key_a.keys()),
        sealed_changed=sealed_changed,
    )


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def print_comparison(comparison: Comparison, console: Console) -> None:
    """Deltas table and regressed/improved case lists."""
    table = Table(title=f"{comparison.label_a} → {comparison.label_b}")
    for column in ("scope", "metric", "A", "B", "delta", ""):
        table.add_column(column, justify="right" if column in ("A", "B", "delta") else "left")
    for d in comparison.metrics:
        if d.verdict == "same" and d.scope != "overall":
            continue
        style = {"better": "green", "worse": "red"}.get(d.verdict, "")
        table.add_row(d.scope, d.metric, fmt(d.a), fmt(d.b), _signed(d.delta), d.verdict, style=style)
    console.print(table)
    for title, changes in (("Regressed", comparison.regressed), ("Improved", comparison.improved)):
        console.print(f"{title}: {len(changes)} case(s)", highlight=False)
        for change in changes[:40]:
            console.print(f"  {change.key}: {change.a} → {change.b}", highlight=False, markup=False)
    console.print(f"Sealed cases that changed (not listed): {comparison.sealed_changed}", highlight=False)


def render_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown."""
    lines = [f"# {comparison.label_a} → {comparison.label_b}", "", "| scope | metric | A | B | delta | |",
             "|---|---|---:|---:|---:|---|"]
    lines += [
        f"| {d.scope} | {d.metric} | {fmt(d.a)} | {fmt(d.b)} | {_signed(d.delta)} | {d.verdict} |"
        for d in comparison.metrics
    ]
    for title, changes in (("Regressed", comparison.regressed), ("Improved", comparison.improved),
                           ("Route changed", comparison.route_changed)):
        lines += ["", f"## {title} ({len(changes)})", ""]
        lines += [f"- **{c.key}** `{c.message[:140]}`: {c.a} → {c.b}" for c in changes]
    lines += ["", f"Sealed cases that changed, counted and not listed: {comparison.sealed_changed}"]
    return "\n".join(lines) + "\n"


def write_comparison(comparison: Comparison, target: Path) -> None:
    """Write the comparison as HTML to ``target`` and as Markdown beside it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        _env.get_template("compare.html.j2").render(c=comparison, fmt=fmt, signed=_signed), encoding="utf-8"
    )
    target.with_suffix(".md").write_text(render_markdown(comparison), encoding="utf-8")
