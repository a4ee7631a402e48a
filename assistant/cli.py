"""The ``assistant`` command line: thin wrappers that parse arguments, call the library, print.

Exit codes: 0 for any route (answer, escalate, decline); 1 for a system error; 2 for a usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from assistant.config import load_settings
from assistant.errors import (
    AssistantError,
    ConfigurationError,
    InputError,
    MissingDependencyError,
    NotFoundError,
)
from assistant.ingestion.report import IngestReport
from assistant.pipeline import Assistant
from assistant.request import HelpRequest, History, JourneyContext, Stage
from assistant.response import HelpResponse, Route
from assistant.retrieval.manifest import read_manifest

if TYPE_CHECKING:
    from assistant.console import ConsoleUsers
    from assistant.incidents import Incident, IncidentDetector
    from assistant.store import ConversationStore, ReviewQueue

_T = TypeVar("_T")

app = typer.Typer(
    name="assistant",
    help="Grounded, journey-aware help for gig-delivery drivers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"error: {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} file {path}: {exc}") from exc


def _progress(quiet: bool, label: str = "embedding") -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=True,
    )


def _run_ingest(assistant: Assistant, corpus: Path | None, *, rebuild: bool, quiet: bool) -> IngestReport:
    with _progress(quiet) as progress:
        task = progress.add_task("embed", total=None)

        plain = not quiet and not err.is_terminal  # logs and CI: a line every tenth, not a bar
        shown = [-1]

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            tenth = (10 * done) // total if total else 0
            if plain and tenth > shown[0]:
                shown[0] = tenth
                err.print(f"embedding {done}/{total}", highlight=False)

        return assistant.ingest(corpus, rebuild=rebuild, progress=update)


def _print_report(report: IngestReport, console: Console = out) -> None:
    for problem in report.problems:
        err.print(f"[yellow]skipped[/] {escape(problem.path)}: {escape(problem.reason)}", highlight=False)
    for chunk in report.quarantined:
        err.print(
            f"[red]quarantined[/] {escape(chunk.path)} § {escape(chunk.section)}: {escape(chunk.reason)}", highlight=False
        )
    if report.changed:
        console.print(
            f"Indexed generation {report.generation}: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.removed)} removed, {len(report.unchanged)} unchanged; "
            f"{report.chunks_total} chunks ({report.chunks_embedded} embedded), {report.questions_total} driver "
            f"questions, {report.gap_questions_total} unanswered ones and {report.situations_total} safety situations "
            f"({report.questions_embedded} embedded), "
            f"{report.pivots_total} multilingual pivots "
            f"({report.pivots_embedded} embedded) in {report.seconds:.1f}s",
            highlight=False,
        )
    else:
        console.print(
            f"Index is up to date: {len(report.unchanged)} documents, {report.chunks_total} chunks "
            f"(generation {report.generation}).",
            highlight=False,
        )


@app.command()
def ingest(
    path: Annotated[Path | None, typer.Argument(help="Corpus folder (default: ./corpus).")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed everything.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Index the policy corpus (incrementally: only changed documents are re-embedded)."""
    try:
        assistant = Assistant.from_settings()
        report = _run_ingest(assistant, path, rebuild=rebuild, quiet=quiet)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    _print_report(report)


def print_response(response: HelpResponse, console: Console = out) -> None:
    """Human-readable rendering of a response."""
    colour = {Route.ANSWER: "green", Route.ESCALATE: "yellow", Route.DECLINE: "red"}[response.route]
    console.print(Panel(escape(response.answer), title=f"[{colour}]{response.route.value}[/]", expand=False))
    for number, c in enumerate(response.citations, start=1):
        console.print(f"  [{number}] {escape(c.title)} > {escape(c.section)}  ({c.doc_id}, score {c.score:.3f})", highlight=False)
    for reason in response.reasons:
        console.print(f"  reason: [bold]{reason.code.value}[/] - {escape(reason.detail)}", highlight=False)
    if response.journey_used:
        console.print(f"  journey used: {escape(', '.join(response.journey_used))}", highlight=False)
    console.print(f"  confidence: {response.confidence:.2f}", highlight=False)
    if response.handoff:
        packet = response.handoff
        console.print(f"  handoff: {packet.category} ({packet.priority.value}); agent sees: {escape(packet.driver_message)!r}",
                      highlight=False)
        if packet.defect_signature:
            signature = ", ".join(f"{k}={v}" for k, v in packet.defect_signature.items() if v)
            console.print(f"  defect signature: {escape(signature)}", highlight=False)


@app.command()
def ask(
    message: Annotated[str, typer.Argument(help="The driver's question.")],
    journey: Annotated[Path | None, typer.Option(help="Journey JSON file.")] = None,
    history: Annotated[Path | None, typer.Option(help="History JSON file: [{role, text}].")] = None,
    stage: Annotated[Stage | None, typer.Option(help="Journey stage (overrides the file's).")] = None,
    market: Annotated[str | None, typer.Option(help="Market code, e.g. us-ca (overrides the file's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Ask one question, with optional journey context and history."""
    try:
        context = JourneyContext.from_json(_read(journey, "journey"), source=str(journey)) if journey else None
        if stage is not None or market is not None:
            base = context.model_dump(exclude_unset=True) if context else {}
            base.update({k: v for k, v in {"stage": stage, "market": market}.items() if v is not None})
            context = JourneyContext.model_validate(base)
        turns = History.from_json(_read(history, "history"), source=str(history)) if history else []
        request = HelpRequest(message=message, journey=context, history=turns)
        assistant = Assistant.from_settings()
        # build the index the first time only: a damaged one is an error that says how to repair it
        if read_manifest(assistant.settings.data_dir) is None:
            err.print("No index yet: building it from the corpus first (one time).", highlight=False)
            _print_report(_run_ingest(assistant, None, rebuild=False, quiet=as_json), err)
        response = assistant.answer(request)
    except (InputError, ConfigurationError) as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        sys.stdout.write(json.dumps(response.to_contract(), ensure_ascii=False) + "\n")
    else:
        print_response(response)


@app.command()
def suggest(
    journey: Annotated[Path, typer.Option(help="Journey JSON file.")],
    driver_id: Annotated[str | None, typer.Option("--driver-id", help="Leave out the cards this driver dismissed.")] = None,
    limit: Annotated[int | None, typer.Option(min=0, max=10, help="Most cards (default: the rules' max_cards).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print one JSON object: {"cards": [...]}.')] = False,
) -> None:
    """Help cards for a journey, with no question asked (none for a calm journey)."""
    try:
        context = JourneyContext.from_json(_read(journey, "journey"), source=str(journey))
        assistant = Assistant.from_settings()
        if read_manifest(assistant.settings.data_dir) is None:
            err.print("No index yet: building it from the corpus first (one time).", highlight=False)
            _print_report(_run_ingest(assistant, None, rebuild=False, quiet=as_json), err)
        cards = assistant.suggest(context, driver_id=driver_id, limit=limit)
    except (InputError, ConfigurationError) as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        sys.stdout.write(json.dumps({"cards": [c.model_dump(mode="json") for c in cards]}, ensure_ascii=False) + "\n")
        return
    if not cards:
        out.print("No help card: the journey shows no friction.", highlight=False)
    for card in cards:
        out.print(Panel(escape(card.body), title=f"[bold]{escape(card.title)}[/]", subtitle=escape(card.id), expand=False))
        out.print(f"  why: {escape(card.why)}", highlight=False)
        for c in card.citations:
            out.print(f"  source: {escape(c.title)} > {escape(c.section)}  ({c.doc_id})", highlight=False)


@app.command()
def demo(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Ingest the shipped corpus, run the scripted driver scenarios and show help cards."""
    from assistant.demo import run_cards, run_demo

    try:
        settings = load_settings()
        # the demo's conversations are kept, as the service keeps every contact
        settings = settings.model_copy(update={"database_url": settings.resolved_database_url()})
        assistant = Assistant(settings)
        _print_report(_run_ingest(assistant, None, rebuild=False, quiet=quiet))
        run_demo(assistant, out)
        run_cards(assistant, out)
        from assistant.demo import record_traffic

        recorded = record_traffic(assistant)
        assistant.close()
        kept = (
            f"\nThe demo's conversations, and {recorded} more contacts for the console, are in "
            f"{escape(settings.resolved_database_url())}: `.venv/bin/assistant conversations list`."
        )
        try:
            password = _demo_login(settings.resolved_database_url())
        except MissingDependencyError as exc:  # a core install: no service, no console
            out.print(f"{kept}\nThe HTTP service and the console: {escape(str(exc))}", highlight=False, soft_wrap=True)
            return
        out.print(
            f"{kept}\nStart the HTTP service with `.venv/bin/assistant serve` "
            "(http://127.0.0.1:8000/docs), then:\n"
            "  curl -s localhost:8000/v1/answer -H 'content-type: application/json' -d '{\"message\": \"when do i get paid\"}'\n"
            "  curl -s localhost:8000/v1/suggestions -H 'content-type: application/json' "
            "-d '{\"journey\": {\"stage\": \"at_dropoff\", \"events\": [{\"type\": \"error\", \"code\": \"UPL-500\"}]}}'\n"
            "The support-lead console (review queue, conversations, analytics) is at http://127.0.0.1:8000/console\n"
            f"  sign in as {DEMO_USER} with the password {password} (new at every `make demo`)",
            highlight=False, soft_wrap=True,
        )
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None


eval_app = typer.Typer(help="Run eval datasets, write reports, compare runs.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
DEFAULT_DATASETS = Path("evals/datasets")
DEFAULT_THRESHOLDS = Path("evals/thresholds.yaml")
ABLATIONS_DIR = Path("evals/ablations")


def _parse_sets(pairs: list[str]) -> dict[str, object]:
    import yaml

    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set wants key=value, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value) if value else ""
    return overrides


def _ablation(name_or_path: str) -> dict[str, object]:
    import yaml

    path = Path(name_or_path)
    if not path.exists():
        path = ABLATIONS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in ABLATIONS_DIR.glob("*.yaml"))) or "none"
        raise InputError(f"no ablation {name_or_path!r} (known: {known})")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    settings = data.get("settings", data) if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        raise InputError(f"{path}: expected a mapping of settings")
    return dict(settings)


def _dataset_path(given: Path) -> Path:
    """A dataset path as given, or a dataset name ("answers") in evals/datasets/."""
    if given.exists() or given.suffix:
        return given
    for suffix in (".jsonl", ".yaml", ".yml"):
        candidate = DEFAULT_DATASETS / f"{given}{suffix}"
        if candidate.exists():
            return candidate
    return given


@eval_app.command("run")
def eval_run(
    dataset: Annotated[list[Path] | None, typer.Option("--dataset", "-d", help="Dataset name, file or folder (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Only cases with this tag (repeatable).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Only the tuning or the sealed cases (both when unset).")] = None,
    prompt_version: Annotated[str | None, typer.Option("--prompt-version", help="Prompt version to answer with.")] = None,
    generator: Annotated[str | None, typer.Option("--generator", help="extractive or openai (a chat model).")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="Grade answered cases with this chat model (overrides ASSISTANT_JUDGE_MODEL).")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Setting override key=value (repeatable).")] = None,
    ablation: Annotated[str | None, typer.Option("--ablation", help="Settings file in evals/ablations/ (name or path).")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", min=1, max=32)] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default evals/runs/<time>).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when a gate in the thresholds file is missed.")] = False,
    thresholds: Annotated[Path, typer.Option("--thresholds")] = DEFAULT_THRESHOLDS,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run eval cases through the assistant; write results, summary and reports."""
    from datetime import datetime

    from assistant.evals.dataset import Split
    from assistant.evals.gates import check_gates, load_thresholds
    from assistant.evals.report import print_summary, write_reports
    from assistant.evals.runner import RunOptions, run_eval

    try:
        if split is not None and split not in {s.value for s in Split}:
            raise InputError(f"--split must be one of {', '.join(s.value for s in Split)}, not {split!r}")
        overrides = _ablation(ablation) if ablation else {}
        overrides.update(_parse_sets(sets or []))
        if prompt_version:
            overrides["prompt_version"] = prompt_version
        if generator:
            overrides["generator"] = generator
        if judge_model:
            overrides["judge_model"] = judge_model
        label = ablation or (" ".join(sets) if sets else None) or "default"
        out_path = out_dir or Path("evals/runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{Path(label).stem.replace(' ', '_')}"
        options = RunOptions(
            datasets=[_dataset_path(d) for d in dataset] if dataset else [DEFAULT_DATASETS], out=out_path, tags=tag or [], overrides=overrides,
            concurrency=concurrency, label=label, split=Split(split) if split else None,
        )
        gates = load_thresholds(thresholds) if check else None
        with Progress(
            TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err, disable=quiet or not err.is_terminal, transient=True,
        ) as bar:
            task = bar.add_task("eval", total=None)
            summary = run_eval(
                options,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                on_problem=lambda text: err.print(f"skipped case: {escape(text)}", highlight=False),
            )
        paths = write_reports(out_path)
        print_summary(summary, out)
        out.print(f"results: {out_path}  report: {paths[1]}", highlight=False)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except InputError as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    if gates is not None:
        verdicts = check_gates(summary, gates)
        for verdict in verdicts:
            (out if verdict.passed else err).print(str(verdict), highlight=False)
        if not all(v.passed for v in verdicts):
            raise _fail(f"{sum(not v.passed for v in verdicts)} gate(s) missed", 1)


@eval_app.command("fit")
def eval_fit(
    dataset: Annotated[list[Path] | None, typer.Option("--dataset", "-d", help="Dataset name, file or folder (repeatable).")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Where to write the model (default: the shipped answer_model.json).")] = None,
    max_handoff: Annotated[float, typer.Option("--max-handoff", min=0.0, max=0.5, help="Share of answerable questions the threshold may hand to a person.")] = 0.04,
) -> None:
    """Fit the offline answer model (section choice, confidence, threshold) on the tuning split."""
    from assistant.evals.fit import compare, describe, fit_answer_model, write_answer_model
    from assistant.generation.answer_model import DEFAULT_PATH, load_answer_model

    target = out_file or DEFAULT_PATH
    try:  # the model this refit replaces, to show what changes (none, or unreadable: nothing to compare)
        previous = load_answer_model.__wrapped__(target) if target.exists() else None
    except ConfigurationError:
        previous = None
    try:
        assistant = Assistant.from_settings()
        assistant.ingest()
        model = fit_answer_model(
            assistant, [_dataset_path(d) for d in dataset] if dataset else [DEFAULT_DATASETS], max_handoff=max_handoff
        )
        path = write_answer_model(model, target)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    out.print(describe(model), highlight=False)
    if previous is not None:
        out.print(compare(previous, model), highlight=False)
    out.print(f"written: {path}", highlight=False)


@eval_app.command("redaction")
def eval_redaction(
    path: Annotated[Path, typer.Option("--file", help="Labelled PII set (JSONL).")] = Path("evals/redaction/pii.jsonl"),
    show: Annotated[bool, typer.Option("--show-misses", help="List misses and false positives.")] = False,
) -> None:
    """Precision and recall of PII redaction per kind on a labelled set."""
    from rich.table import Table

    from assistant.evals.redaction import load_pii_cases, score_redaction

    try:
        report = score_redaction(load_pii_cases(path))
    except (InputError, OSError) as exc:
        raise _fail(str(exc), 2) from None
    table = Table(title=f"PII redaction on {path} ({report.cases} messages)")
    for column in ("kind", "labelled", "found", "precision", "recall"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, score in report.kinds.items():
        table.add_row(kind, str(score.labelled), str(score.found),
                      "n/a" if score.precision is None else f"{score.precision:.3f}",
                      "n/a" if score.recall is None else f"{score.recall:.3f}")
    out.print(table)
    out.print(f"protected (labelled values at least 80% redacted, any kind): {report.protected:.3f}; "
              f"messages with a false positive: {report.false_positive_cases}", highlight=False)
    if show:
        for line in [*report.misses, *report.false_positives]:
            out.print(line, highlight=False, markup=False)


@eval_app.command("suggestions")
def eval_suggestions(
    path: Annotated[Path, typer.Option("--path", help="A JSONL file of journeys with expected cards, or a folder of them.")] = Path(
        "evals/suggestions"
    ),
    split: Annotated[str | None, typer.Option(help="Only this split: tuning or sealed.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when a gate of evals/thresholds.yaml fails.")] = False,
    thresholds: Annotated[Path, typer.Option(help="Gates file (its suggestions: block).")] = Path("evals/thresholds.yaml"),
    show: Annotated[bool, typer.Option("--show-misses", help="List the cases that failed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Help cards on journeys with expected cards: hit@3 and calm journeys without a card, per split."""
    from rich.table import Table

    from assistant.evals.gates import check_metrics, load_thresholds
    from assistant.evals.suggestions import CaseResult, load_suggestion_cases, score_suggestions

    try:
        cases = [c for c in load_suggestion_cases(path) if split is None or c.split.value == split]
        assistant = Assistant.from_settings()
        if read_manifest(assistant.settings.data_dir) is None:
            _print_report(_run_ingest(assistant, None, rebuild=False, quiet=True), err)
        # the dataset's journeys are recordings: each one's time is its newest event's
        results = [CaseResult(case=c, cards=assistant.suggest(c.journey, now=_newest(c.journey))) for c in cases]
        gates = load_thresholds(thresholds).suggestions if check else {}
    except (InputError, ConfigurationError) as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    report = score_suggestions(results)
    verdicts = check_metrics("suggestions", report.metrics, gates) if check else []
    if as_json:
        sys.stdout.write(json.dumps({**report.model_dump(), "gates": [str(v) for v in verdicts]}) + "\n")
    else:
        table = Table(title=f"Help cards on {path} ({len(cases)} journeys)")
        for column in ("split", "friction journeys", "hit@3", "hit@1", "carded", "calm journeys", "calm: no card"):
            table.add_column(column, justify="left" if column == "split" else "right")
        for scope in ("tuning", "sealed", "all"):
            m = report.metrics
            if f"{scope}.friction_journeys" in m:
                table.add_row(scope, str(m[f"{scope}.friction_journeys"]), f"{m.get(f'{scope}.hit@3', float('nan')):.3f}",
                              f"{m.get(f'{scope}.hit@1', float('nan')):.3f}",
                              f"{m.get(f'{scope}.carded', float('nan')):.3f}", str(m[f"{scope}.calm_journeys"]),
                              f"{m.get(f'{scope}.calm_no_card', float('nan')):.3f}")
        out.print(table)
        for kind, row in report.by_friction.items():
            out.print(f"  {kind}: {row['passed']:.3f} of {row['cases']}", highlight=False)
        for verdict in verdicts:
            out.print(str(verdict), highlight=False, markup=False)
        if show:
            for line in report.failures:
                out.print(line, highlight=False, markup=False)
    if any(not v.passed for v in verdicts):
        raise typer.Exit(1)


def _newest(journey: JourneyContext) -> datetime | None:
    stamps = [e.ts for e in journey.events if e.ts is not None]
    return max(stamps) if stamps else None


@eval_app.command("report")
def eval_report(run: Annotated[Path, typer.Argument(help="Run folder.")]) -> None:
    """Write report.md and report.html for a run folder."""
    from assistant.evals.report import write_reports

    try:
        md, html = write_reports(run)
    except AssistantError as exc:
        raise _fail(str(exc), 2) from None
    out.print(f"wrote {md} and {html}", highlight=False)


@eval_app.command("compare")
def eval_compare(
    run_a: Annotated[Path, typer.Argument(help="Baseline run folder.")],
    run_b: Annotated[Path, typer.Argument(help="Candidate run folder.")],
    out_file: Annotated[Path | None, typer.Option("--out", help="HTML file (default RUN_B/compare.html).")] = None,
) -> None:
    """Per-metric deltas and the cases that regressed or improved from RUN_A to RUN_B."""
    from assistant.evals.compare import compare_runs, print_comparison, write_comparison

    try:
        comparison = compare_runs(run_a, run_b)
    except AssistantError as exc:
        raise _fail(str(exc), 2) from None
    print_comparison(comparison, out)
    target = out_file or run_b / "compare.html"
    write_comparison(comparison, target)
    out.print(f"wrote {target} and {target.with_suffix('.md')}", highlight=False)


# -- the service and the conversation store -----------------------------------------------------

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


incidents_app = typer.Typer(help="Platform defects detected from the pattern of contacts.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")


def _incidents_call(act: Callable[[IncidentDetector], _T]) -> _T:
    from assistant.incidents import IncidentDetector

    return _store_call(lambda store: act(IncidentDetector(store)))


@incidents_app.command("list")
def incidents_list(
    show_all: Annotated[bool, typer.Option("--all", help="Closed incidents too.")] = False,
    scan: Annotated[bool, typer.Option("--scan/--no-scan", help="Scan the store first (as the service does each minute).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"incidents": [...]}.')] = False,
) -> None:
    """Open incidents (newest first), after a scan of the store's contact counts."""
    def run(detector: IncidentDetector) -> list[Incident]:
        if scan:
            detector.scan()
        return detector.incidents(status=None if show_all else "open")

    found = _incidents_call(run)
    if as_json:
        sys.stdout.write(json.dumps({"incidents": [i.model_dump(mode="json") for i in found]}, ensure_ascii=False) + "\n")
        return
    if not found:
        out.print("no open incident" if not show_all else "no incident", highlight=False)
    for i in found:
        where = ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in i.signature.items() if v)
        out.print(f"#{i.id} [{i.status}] {escape(i.group)} opened {i.opened_at:%Y-%m-%d %H:%M} UTC: "
                  f"{i.contacts} contacts, {i.drivers} drivers ({escape(where)})", highlight=False)
        if i.workaround:
            out.print(f"  workaround: {escape(i.workaround)}", highlight=False)


@incidents_app.command("replay")
def incidents_replay(
    contacts_file: Annotated[Path, typer.Argument(help='JSONL: {"ts", "driver_id", "message", "journey"} a line.')],
    as_json: Annotated[bool, typer.Option("--json", help='Print {"incidents": [...]} and nothing else.')] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Answer timestamped contacts on their own clock into a fresh store and print the incidents
    the detector opened (first contact, opened, closed, contacts, drivers)."""
    from assistant.incidents.replay import read_contacts, replay

    try:
        settings = load_settings()
        with contacts_file.open(encoding="utf-8") as lines:
            contacts = read_contacts(lines, source=str(contacts_file))
        if not Assistant(settings).index_ready():
            Assistant(settings).ingest()
        with _progress(quiet or as_json, "replaying") as bar:
            task = bar.add_task("replaying", total=len(contacts))
            report = replay(contacts, settings, progress=lambda done, _: bar.update(task, completed=done))
    except OSError as exc:
        raise _fail(f"cannot read {contacts_file}: {exc.strerror}", 2) from None
    except (ConfigurationError, InputError) as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    body = {"incidents": [i.model_dump(mode="json", exclude={"group"}) for i in report.incidents]}
    if as_json:
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        return
    out.print(f"{report.contacts} contacts replayed in {report.seconds:.0f} s "
              f"({', '.join(f'{k} {v}' for k, v in sorted(report.routes.items()))}); {len(report.incidents)} incident(s)",
              highlight=False)
    for i in report.incidents:
        out.print(f"{escape(i.group)}: first contact {i.first_contact_at:%Y-%m-%d %H:%M}, opened {i.opened_at:%Y-%m-%d %H:%M} "
                  f"({(i.opened_at - i.first_contact_at).total_seconds() / 60:.0f} min), "
                  f"{'closed ' + format(i.closed_at, '%Y-%m-%d %H:%M') if i.closed_at else 'still open'}, "
                  f"{i.contacts} contacts, {i.drivers} drivers", highlight=False)


@incidents_app.command("note")
def incidents_note(
    incident_id: Annotated[int, typer.Argument()],
    note: Annotated[str | None, typer.Option(help="What drivers are told about it (redacted; '' removes it).")] = None,
    workaround: Annotated[str | None, typer.Option(help="What drivers can do meanwhile (redacted; '' removes it).")] = None,
) -> None:
    """Attach a driver-facing note and/or workaround to an incident."""
    found = _incidents_call(lambda detector: detector.annotate(incident_id, note=note, workaround=workaround))
    out.print(f"#{found.id} updated", highlight=False)


DEMO_USER = "demo"


def _demo_login(url: str) -> str:
    """Create (or reset) the demo's console login, a lead, with a fresh random password."""
    import secrets

    from assistant.console import ConsoleUsers
    from assistant.store import ConversationStore

    store = ConversationStore.from_url(url)
    try:
        store.upgrade()
        users = ConsoleUsers(store)
        password = secrets.token_urlsafe(12)
        try:
            users.add(DEMO_USER, password, role="lead", actor="demo")
        except ConfigurationError:  # it exists: a new password, and it is a lead again
            users.set_password(DEMO_USER, password, actor="demo")
            users.set_role(DEMO_USER, "lead", actor="demo")
            users.set_active(DEMO_USER, True, actor="demo")
        return password
    finally:
        store.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads the models once).", min=1)] = 1,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Listen beyond loopback without ASSISTANT_API_KEYS.")
    ] = False,
) -> None:
    """Run the HTTP service (see /docs on the running service for its OpenAPI schema)."""
    import logging

    from assistant._optional import require

    require("assistant serve", "service", "uvicorn")
    import uvicorn

    import assistant.service  # noqa: F401  (a missing [service] extra is named before "serving on")

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    if host not in _LOOPBACK and not settings.api_keys and not insecure:
        raise _fail(f"refusing to listen on {host} without ASSISTANT_API_KEYS (or pass --insecure)", 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    err.print(f"serving on http://{host}:{port} (docs at /docs, readiness at /readyz)", highlight=False)
    uvicorn.run(
        "assistant.service:create_app", factory=True, host=host, port=port, workers=workers,
        access_log=False, timeout_graceful_shutdown=30, log_level="info",
    )


db_app = typer.Typer(help="The conversation store's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's tables (ASSISTANT_DATABASE_URL, default SQLite in the data dir)."""
    from assistant.store import ConversationStore

    try:
        settings = load_settings()
        store = ConversationStore.from_url(settings.resolved_database_url())
        revision = store.upgrade()
        store.close()
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    out.print(f"database at revision {revision} ({store.backend})", highlight=False)


conversations_app = typer.Typer(help="Read stored conversations (redacted).", no_args_is_help=True)
app.add_typer(conversations_app, name="conversations")


def _open_store(*, migrate_sqlite: bool = False) -> ConversationStore:
    """The configured store, once it is migrated (SQLite migrated on the spot when
    ``migrate_sqlite``, as the service does at start; PostgreSQL by `assistant db upgrade`)."""
    from assistant.store import ConversationStore

    settings = load_settings()
    store = ConversationStore.from_url(settings.resolved_database_url())
    if migrate_sqlite and store.backend == "sqlite":
        store.upgrade()
    elif not store.is_current():
        raise ConfigurationError("the conversation store is empty or not migrated: run `assistant db upgrade`")
    return store


def _store_call(act: Callable[[ConversationStore], _T], *, migrate_sqlite: bool = False) -> _T:
    """``act`` on the configured store; a bad setting, input or id exits 2, a failure 1."""
    try:
        return act(_open_store(migrate_sqlite=migrate_sqlite))
    except (ConfigurationError, InputError, NotFoundError) as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None


@conversations_app.command("list")
def conversations_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 20,
    route: Annotated[str | None, typer.Option(help="Only conversations whose last route is this.")] = None,
    driver: Annotated[str | None, typer.Option(help="Only this driver's conversations.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """The newest conversations."""
    from rich.table import Table

    try:
        store = _open_store()
        rows = store.list_conversations(limit=limit, route=route, driver_id=driver)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False) + "\n")
        return
    table = Table("updated", "last route", "responses", "market", "stage", "driver")
    table.add_column("id", no_wrap=True, overflow="fold")  # whole, for `assistant conversations show ID`
    for r in rows:
        table.add_row(r.updated_at.strftime("%Y-%m-%d %H:%M"), r.last_route, str(r.responses), r.market or "",
                      r.stage or "", r.driver_id or "", r.id)
    out.print(table)


@conversations_app.command("show")
def conversations_show(
    conversation_id: Annotated[str, typer.Argument(help="A conversation id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """One conversation: turns, routes, reasons, citations and handoff packets."""
    try:
        store = _open_store()
        found = store.get(conversation_id)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except AssistantError as exc:
        raise _fail(str(exc), 1) from None
    if found is None:
        raise _fail(f"no conversation {conversation_id!r}", 1)
    if as_json:
        sys.stdout.write(found.model_dump_json() + "\n")
        return
    out.print(f"[bold]{escape(found.id)}[/]  last route {found.last_route}, {found.responses} response(s)", highlight=False)
    for response in found.history:
        out.print(f"\n[dim]{response.created_at:%Y-%m-%d %H:%M:%S}[/] [bold]Driver:[/] {escape(response.message)}",
                  highlight=False)
        reasons = ", ".join(r.get("code", "") for r in response.reasons)
        out.print(f"[bold]{response.route}[/]{f' ({reasons})' if reasons else ''}: {escape(response.answer)}",
                  highlight=False)
        for citation in response.citations:
            out.print(f"  [dim]cites {escape(str(citation.get('doc_id')))} > {escape(str(citation.get('section')))}[/]",
                      highlight=False)
        if response.handoff:
            out.print(f"  [dim]handoff: {escape(str(response.handoff.get('category')))}, "
                      f"{escape(str(response.handoff.get('priority')))}[/]", highlight=False)


review_app = typer.Typer(help="Work the review queue (flagged conversations) from the terminal.", no_args_is_help=True)
app.add_typer(review_app, name="review")


def _review_call(act: Callable[[ReviewQueue], _T]) -> _T:
    """``act`` on the review queue of the configured store, errors as exit codes."""
    from assistant.store import ReviewQueue

    return _store_call(lambda store: act(ReviewQueue(store)))


@review_app.command("list")
def review_list(
    status: Annotated[str, typer.Option(help="active (open or claimed), open, claimed, resolved, dismissed, any.")] = "active",
    reason: Annotated[str | None, typer.Option(help="escalation, low_confidence, decline, unhelpful, sample, error.")] = None,
    category: Annotated[str | None, typer.Option(help="Handoff category, e.g. app_defect, safety.")] = None,
    priority: Annotated[str | None, typer.Option(help="urgent, high or normal.")] = None,
    market: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
    text: Annotated[str | None, typer.Option(help="Words of the (redacted) message or answer.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Flagged conversations, most urgent then oldest first, with counts by reason."""
    from rich.table import Table

    from assistant.store import ReviewFilter

    where = ReviewFilter(status=None if status == "any" else status, reason=reason, category=category,  # type: ignore[arg-type]
                         priority=priority, market=market, stage=stage, text=text)
    items = _review_call(lambda queue: queue.items(where, limit=limit))
    if as_json:
        sys.stdout.write(json.dumps([i.model_dump(mode="json") for i in items], ensure_ascii=False) + "\n")
        return
    counts = _review_call(lambda queue: queue.counts(where))
    out.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing to review", highlight=False)
    table = Table("id", "priority", "reason", "status", "assignee", "market", "message")
    for i in items:
        table.add_row(str(i.id), i.priority, i.reason, i.status, i.assignee or "", i.market or "", escape(i.message[:60]))
    out.print(table)


@review_app.command("show")
def review_show(
    item_id: Annotated[int, typer.Argument(help="A review item id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """One item with its label and its audit log."""
    item = _review_call(lambda queue: queue.get(item_id))
    history = _review_call(lambda queue: queue.history(item_id))
    data = {**item.model_dump(mode="json"), "history": [h.model_dump(mode="json") for h in history]}
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    out.print(f"[bold]#{data['id']}[/] {data['priority']} {data['reason']} ({data['status']}) "
              f"conversation {escape(data['conversation_id'])}", highlight=False)
    out.print(f"[bold]Driver:[/] {escape(data['message'])}", highlight=False)
    out.print(f"[bold]{data['route']}[/]: {escape(data['answer'])}", highlight=False)
    if data["label"]:
        out.print(f"label: {escape(json.dumps(data['label']))}", highlight=False)
    for h in data["history"]:
        out.print(f"  [dim]{h['at']} {escape(h['actor'])} {h['action']}[/]", highlight=False)


@review_app.command("claim")
def review_claim(
    item_id: Annotated[int, typer.Argument()],
    who: Annotated[str, typer.Option("--as", help="Your name, for the audit log.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the item as one JSON object.")] = False,
) -> None:
    """Take an item."""
    item = _review_call(lambda queue: queue.claim(item_id, who))
    if as_json:
        sys.stdout.write(item.model_dump_json() + "\n")
        return
    out.print(f"#{item_id} claimed by {escape(who)}", highlight=False)


@review_app.command("resolve")
def review_resolve(
    item_id: Annotated[int, typer.Argument()],
    who: Annotated[str, typer.Option("--as", help="Your name, for the audit log.")],
    note: Annotated[str | None, typer.Option(help="Why (redacted before it is kept).")] = None,
    dismiss: Annotated[bool, typer.Option("--dismiss", help="Close it as needing nothing instead.")] = False,
    route_right: Annotated[bool | None, typer.Option("--route-right/--route-wrong", help="Was the route right?")] = None,
    answer_right: Annotated[bool | None, typer.Option("--answer-right/--answer-wrong", help="Was the answer right?")] = None,
    defect: Annotated[bool | None, typer.Option("--defect/--no-defect", help="Was it a platform defect?")] = None,
    correct_doc: Annotated[str | None, typer.Option(help="The article that should have been given.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the closed item as one JSON object.")] = False,
) -> None:
    """Label (when any label option is given) and close an item."""
    from assistant.store import ReviewLabel

    if any(v is not None for v in (route_right, answer_right, defect, correct_doc)):
        label = ReviewLabel(route_right=route_right, answer_right=answer_right, defect_confirmed=defect,
                            correct_doc_id=correct_doc)
        _review_call(lambda queue: queue.label(item_id, label, who))
    item = _review_call(lambda queue: (queue.dismiss if dismiss else queue.resolve)(item_id, who, note))
    if as_json:
        sys.stdout.write(item.model_dump_json() + "\n")
        return
    out.print(f"#{item_id} {'dismissed' if dismiss else 'resolved'} by {escape(who)}", highlight=False)


@review_app.command("export")
def review_export(
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write (evals/datasets format).")],
    since: Annotated[str | None, typer.Option(help="Only items labelled since this date (YYYY-MM-DD).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {\"cases\": N, \"path\": FILE}.")] = False,
) -> None:
    """Reviewed conversations as eval cases: run them with `assistant eval run -d FILE`."""
    from datetime import UTC, datetime

    try:
        start = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    except ValueError:
        raise _fail(f"--since: not a date: {since!r}", 2) from None
    cases = _review_call(lambda queue: queue.export_cases(since=start))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    lines = [c.model_dump_json(exclude={"dataset"}, exclude_defaults=True) for c in cases]
    out_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps({"cases": len(cases), "path": str(out_file)}) + "\n")
        return
    out.print(f"{len(cases)} reviewed case(s) written to {escape(str(out_file))}", highlight=False)


users_app = typer.Typer(help="Console users (reviewers and leads).", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _read_password(from_stdin: bool) -> str:
    """A new password: one line of stdin (``--password-stdin`` or a pipe), else asked twice."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _users_call(act: Callable[[ConsoleUsers], _T]) -> _T:
    from assistant.console import ConsoleUsers

    return _store_call(lambda store: act(ConsoleUsers(store)), migrate_sqlite=True)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Sign-in name.")],
    role: Annotated[str, typer.Option(help="reviewer (labels and resolves) or lead (also manages users, exports).")] = "reviewer",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a console user (the password is asked twice, or read from stdin)."""
    password = _read_password(password_stdin)
    user = _users_call(lambda users: users.add(name, password, role=role))  # type: ignore[arg-type]
    out.print(f"user {escape(user.name)} ({user.role}) added", highlight=False)


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Change a user's password (their sessions end)."""
    password = _read_password(password_stdin)
    _users_call(lambda users: users.set_password(name, password))
    out.print(f"password of {escape(name)} changed", highlight=False)


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Disable a user (their sessions end)."""
    _users_call(lambda users: users.set_active(name, False))
    out.print(f"user {escape(name)} disabled", highlight=False)


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False) -> None:
    """Console users and their roles."""
    listed = _users_call(lambda users: users.all())
    if as_json:
        sys.stdout.write(json.dumps([u.model_dump(mode="json") for u in listed]) + "\n")
        return
    for u in listed:
        out.print(f"{escape(u.name)}\t{u.role}\t{'active' if u.active else 'disabled'}", highlight=False)


def main() -> None:
    """Console-script entry point. A command whose optional extra is not installed exits 2 with
    the ``pip install`` line that adds it, not a traceback."""
    try:
        app()
    except MissingDependencyError as exc:
        err.print(f"error: {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
