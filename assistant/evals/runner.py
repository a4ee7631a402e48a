"""Run eval cases through one :class:`~assistant.Assistant` and score each case.

Models and indexes load once per run. Results are appended to ``results.jsonl`` as cases finish,
so an interrupted run resumes where it stopped (cases already in the file are not run again) as
long as its settings, datasets, corpus, prompts and code are unchanged; a change to any of them
needs a new ``--out`` (results of two versions are never mixed in one run).

With ``ASSISTANT_JUDGE_MODEL`` set, each answered case is also graded by an LLM judge
(:mod:`assistant.evals.judge`); its scores sit beside the deterministic metrics on the outcome
and never change ``passed`` (gate them in the thresholds file instead).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from assistant.config import Settings, load_settings
from assistant.errors import AssistantError, ConfigurationError
from assistant.evals import metrics as m
from assistant.evals.dataset import EvalCase, Split, dataset_files, load_datasets
from assistant.evals.judge import Judge, JudgeScores
from assistant.evals.summary import summarise
from assistant.ingestion.units import split_units
from assistant.pipeline import Assistant
from assistant.records import ConversationRecord
from assistant.request import JourneyContext
from assistant.response import Route, Usage
from assistant.retrieval.bm25 import Bm25Index

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
#: Documents ranked per case for the retrieval metrics.
RANK_DEPTH = 10
#: Settings that change what is indexed: an override of one of them gets its own index in the run.
INDEX_SETTINGS = frozenset(
    {"chunk_tokens", "chunk_overlap", "embedding_provider", "embedding_model", "corpus_dir", "collection"}
)


class RunOptions(BaseModel):
    """What to run and where to write it."""

    datasets: list[Path]
    out: Path
    tags: list[str] = Field(default_factory=list)
    split: Split | None = Field(None, description="Only the cases of this split (both when None).")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Settings on top of the environment.")
    concurrency: int = Field(1, ge=1, le=32)
    label: str | None = None


class Outcome(BaseModel):
    """Per-metric outcome of one case; ``None`` where the case does not state the expectation."""

    recall_at_5: float | None = None
    hit_at_5: float | None = None
    reciprocal_rank: float | None = None
    ndcg_at_5: float | None = None
    route_ok: bool | None = None
    reasons_ok: bool | None = None
    citation_validity: float | None = None
    bad_citations: list[str] = Field(default_factory=list)
    must_include: float | None = None
    missing_facts: list[str] = Field(default_factory=list)
    violations: list[str] = Field(default_factory=list)
    groundedness: float | None = None
    ungrounded: list[str] = Field(default_factory=list)
    draft_right: bool | None = Field(
        None,
        description="Whether the drafted answer (before routing) was right: every fact and nothing forbidden for "
        "an answerable case, never for a question the help centre does not answer; None for other cases.",
    )
    passed: bool = False
    failures: list[str] = Field(default_factory=list, description="Why the case failed, one line each.")
    judge: JudgeScores | None = Field(None, description="The LLM judge's grades (answered cases, judge configured).")
    judge_error: str | None = Field(None, description="Why the judge gave no grades for a case it was asked about.")
    judge_usage: Usage | None = Field(None, description="Tokens the judge spent on the case.")


class CaseResult(BaseModel):
    """One case's record in ``results.jsonl``."""

    key: str
    dataset: str
    id: str
    tags: list[str]
    case: EvalCase
    response: dict[str, Any] | None = None
    ranked_docs: list[str] = Field(default_factory=list)
    retrieved_chunks: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    latency_ms: float = 0.0
    outcome: Outcome
    error: str | None = None

    @property
    def route(self) -> str | None:
        """The route the assistant chose (``None`` when the case errored)."""
        return self.response["route"] if self.response else None

    @property
    def reason_codes(self) -> list[str]:
        """The reason codes of the response."""
        return [r["code"] for r in self.response["reasons"]] if self.response else []


class _Capture:
    """A sink that keeps each record until the runner collects it."""

    def __init__(self) -> None:
        self._records: dict[str, ConversationRecord] = {}
        self._lock = threading.Lock()

    def record(self, record: ConversationRecord) -> None:
        with self._lock:
            self._records[record.conversation_id] = record

    def pop(self, conversation_id: str) -> ConversationRecord | None:
        with self._lock:
            return self._records.pop(conversation_id, None)


def _terms(text: str) -> list[str]:
    return Bm25Index.tokenize([text])[0]


def _journey_text(journey: JourneyContext | None) -> str:
    if journey is None:
        return ""
    parts = [journey.stage.value.replace("_", " ") if journey.stage else "", journey.market or ""]
    if journey.order:
        parts += [journey.order.type or "", *journey.order.all_flags]
    parts += [f"{e.code or ''} {e.name or ''}" for e in journey.events]
    return " ".join(parts)


def score_case(
    case: EvalCase,
    response: dict[str, Any] | None,
    ranked_docs: list[str],
    retrieved_chunks: set[str],
    excerpt: Callable[[str], str | None],
    draft: str | None = None,
) -> Outcome:
    """Score one response against its case (see :mod:`assistant.evals.metrics`); ``draft`` is the
    answer drafted before routing, for the calibration of the response's confidence."""
    out = Outcome()
    if draft is not None:
        out.draft_right = draft_right(case, draft)
    failures: list[str] = []
    if case.relevant_doc_ids:
        out.recall_at_5 = m.recall_at_k(ranked_docs, case.relevant_doc_ids, 5)
        out.hit_at_5 = m.hit_at_k(ranked_docs, case.relevant_doc_ids, 5)
        out.reciprocal_rank = m.reciprocal_rank(ranked_docs, case.relevant_doc_ids)
        out.ndcg_at_5 = m.ndcg_at_k(ranked_docs, case.relevant_doc_ids, 5)
        if not out.hit_at_5:
            failures.append(f"retrieval: none of {case.relevant_doc_ids} in the top 5 ({ranked_docs[:5]})")
    if response is None:
        out.failures = [*failures, "error: no response"]
        return out
    route = response["route"]
    codes = {r["code"] for r in response["reasons"]}
    if case.expected_route is not None:
        out.route_ok = route == case.expected_route.value
        if not out.route_ok:
            failures.append(f"route: expected {case.expected_route.value}, got {route}")
        expected_codes = {c.value for c in case.expected_reasons}
        out.reasons_ok = codes == expected_codes
        if not out.reasons_ok:
            if missing := sorted(expected_codes - codes):
                failures.append(f"reasons: missing {', '.join(missing)}")
            if extra := sorted(codes - expected_codes):
                failures.append(f"reasons: unexpected {', '.join(extra)}")
    answer: str = response["answer"]
    cited = [c["chunk_id"] for c in response["citations"]]
    if cited:
        texts = {cid: excerpt(cid) for cid in cited}
        known = {cid for cid, text in texts.items() if text is not None}
        out.citation_validity, out.bad_citations = m.citation_validity(cited, known, retrieved_chunks)
        if out.bad_citations:
            failures.append(f"citations: not retrieved or unknown: {out.bad_citations}")
        if route == Route.ANSWER.value:
            evidence = set(_terms(" ".join(t for t in texts.values() if t) + " " + _journey_text(case.journey)))
            sentences = [u for u in split_units(answer)]
            share, bad = m.grounded_share([_terms(s) for s in sentences], evidence)
            out.groundedness = share
            out.ungrounded = [sentences[i] for i in bad]
    if case.must_include:
        out.must_include, out.missing_facts = m.must_include_coverage(answer, case.must_include)
        if out.missing_facts:
            failures.append(f"answer: missing {out.missing_facts}")
    if case.must_not_include:
        out.violations = m.must_not_violations(answer, case.must_not_include)
        if out.violations:
            failures.append(f"answer: must not say {out.violations}")
    out.failures = failures
    out.passed = not failures
    return out


def draft_right(case: EvalCase, draft: str) -> bool | None:
    """Whether a drafted answer is right for ``case`` (see :attr:`Outcome.draft_right`)."""
    if case.unanswerable:
        return False
    if case.expected_route is Route.ANSWER and case.must_include:
        return bool(draft) and m.right_answer(draft, case.must_include, case.must_not_include)
    return None


def _settings_for(options: RunOptions) -> Settings:
    overrides = dict(options.overrides)
    if INDEX_SETTINGS & overrides.keys() and "data_dir" not in overrides:
        overrides["data_dir"] = options.out / "index"
    return load_settings(**overrides)


def _fingerprint(settings: Settings, options: RunOptions, files: list[Path], judge: Judge | None) -> dict[str, Any]:
    hashes = {str(p): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in files if p.is_file()}
    shown = settings.model_dump(mode="json", exclude={"openai_api_key", "judge_api_key"})
    fingerprint = {"settings": shown, "datasets": hashes, "tags": sorted(options.tags), "split": options.split, "sources": _sources(settings)}
    if judge is not None:
        fingerprint["judge"] = _judge_info(judge)
    return fingerprint


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if p.is_file()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _sources(settings: Settings) -> dict[str, str]:
    """Digests of what answers depend on besides settings: corpus, prompts, guardrail policy, code."""
    corpus = settings.resolved_corpus_dir()
    package = Path(__file__).resolve().parent.parent
    sources = {
        "corpus": _digest([*corpus.rglob("*.md"), *corpus.glob("*.yaml")]) if corpus.is_dir() else "",
        "prompts": _digest(list(settings.prompts_dir.rglob("*.yaml"))) if settings.prompts_dir.is_dir() else "",
        "code": _digest([*package.rglob("*.py"), *package.rglob("*.yaml")]),
    }
    if settings.guardrail_policy is not None:
        sources["guardrail_policy"] = _digest([settings.guardrail_policy])
    return sources


def _judge_info(judge: Judge) -> dict[str, str]:
    return {"model": judge.model_name, "prompt": judge.prompt.label, "prompt_sha256": judge.prompt.sha256}


def judge_case(
    judge: Judge, case: EvalCase, response: dict[str, Any] | None, excerpt: Callable[[str], str | None], outcome: Outcome
) -> None:
    """Grade an answered case with ``judge`` into ``outcome``; other routes are not graded."""
    if response is None or response["route"] != Route.ANSWER.value:
        return
    cited = [
        (f"{c['title']} > {c['section']}", text)
        for c in response["citations"]
        if (text := excerpt(c["chunk_id"])) is not None
    ]
    verdict = judge.grade(case, response["answer"], cited)
    outcome.judge, outcome.judge_error, outcome.judge_usage = verdict.scores, verdict.error, verdict.usage


def read_results(out: Path) -> list[CaseResult]:
    """The case results written so far in run folder ``out`` (a torn last line is ignored)."""
    path = out / RESULTS_FILE
    results: list[CaseResult] = []
    if not path.exists():
        return results
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            results.append(CaseResult.model_validate_json(line))
        except ValueError:
            continue  # a line cut short by an interruption: that case runs again
    return results


def _repair_results(out: Path) -> list[CaseResult]:
    """Rewrite ``results.jsonl`` without a line torn by an interruption; returns the intact results."""
    path = out / RESULTS_FILE
    results = read_results(out)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if text and (not text.endswith("\n") or len(results) != len(text.splitlines())):
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(r.model_dump_json() + "\n" for r in results), encoding="utf-8")
            tmp.replace(path)
    return results


def run_eval(
    options: RunOptions,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the cases of ``options`` and write results, summary and config; returns the summary.

    Raises :class:`~assistant.errors.ConfigurationError` when ``options.out`` holds a run made
    with other settings, datasets, corpus, prompts or code (resume only continues the same run).
    """
    settings = _settings_for(options)
    files = dataset_files(options.datasets)
    loaded = load_datasets(options.datasets, tags=options.tags, split=options.split)
    for problem in loaded.problems:
        if on_problem:
            on_problem(str(problem))
    judge = Judge(settings) if settings.judge_model else None
    fingerprint = _fingerprint(settings, options, files, judge)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / CONFIG_FILE
    if config_path.exists():
        previous = json.loads(config_path.read_text(encoding="utf-8"))
        if previous.get("fingerprint") != fingerprint:
            raise ConfigurationError(
                f"{out} holds a run with other settings, datasets, corpus, prompts or code; "
                "pass a new --out to start a fresh run"
            )
    else:
        config = {
            "label": options.label,
            "created_at": datetime.now(UTC).isoformat(),
            "overrides": options.overrides,
            "fingerprint": fingerprint,
            "problems": [str(p) for p in loaded.problems],
        }
        config_path.write_text(json.dumps(config, indent=1, default=str), encoding="utf-8")

    done = {r.key for r in _repair_results(out)}
    todo = [c for c in loaded.cases if c.key not in done]

    capture = _Capture()
    assistant = Assistant(settings, sink=capture)
    assistant.ingest()
    probe = Assistant(settings.model_copy(update={"top_k": RANK_DEPTH * 2}), embeddings=assistant.embeddings)

    def excerpt(chunk_id: str) -> str | None:  # the chunk under its heading, as the answer quotes it
        chunk = assistant.chunk(chunk_id)
        return f"{chunk.metadata.get('section', '')}\n{chunk.page_content}" if chunk is not None else None

    lock = threading.Lock()
    finished = len(loaded.cases) - len(todo)
    total = len(loaded.cases)
    if on_progress:
        on_progress(finished, total)

    def evaluate(case: EvalCase) -> CaseResult:
        request = case.to_request()
        response = None
        error = None
        started = time.perf_counter()
        try:
            answered = assistant.answer(request)
            response = answered.to_contract()
        except AssistantError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = (time.perf_counter() - started) * 1000
        record = capture.pop(response["conversation_id"]) if response else None
        try:
            ranked = m.distinct(p.doc_id for p in probe.retrieve(request).passages)[:RANK_DEPTH]
        except AssistantError:
            ranked = []
        # what the answer was drafted from: retrieved passages and the sections they expanded to
        retrieved = {r.chunk_id for r in record.retrieved} | set(record.context_chunk_ids) if record else set()
        outcome = score_case(case, response, ranked, retrieved, excerpt, draft=record.draft if record else None)
        if error:
            outcome.failures.append(f"error: {error}")
        if judge is not None:
            judge_case(judge, case, response, excerpt, outcome)
        return CaseResult(
            key=case.key, dataset=case.dataset, id=case.id, tags=case.tags, case=case, response=response,
            ranked_docs=ranked, retrieved_chunks=sorted(retrieved), timings_ms=record.timings_ms if record else {},
            latency_ms=round(latency, 2), outcome=outcome, error=error,
        )

    with (out / RESULTS_FILE).open("a", encoding="utf-8") as sink:

        def write(result: CaseResult) -> None:
            nonlocal finished
            with lock:
                sink.write(result.model_dump_json() + "\n")
                sink.flush()
                finished += 1
                if on_progress:
                    on_progress(finished, total)

        if options.concurrency == 1:
            for case in todo:
                write(evaluate(case))
        else:
            with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
                for result in pool.map(evaluate, todo):
                    write(result)

    keys = {c.key for c in loaded.cases}
    results = [r for r in read_results(out) if r.key in keys]
    summary = summarise(results, judge=_judge_info(judge) if judge else None)
    summary["run"] = {
        "label": options.label, "out": str(out), "overrides": options.overrides,
        "problems": [str(p) for p in loaded.problems], "finished_at": datetime.now(UTC).isoformat(),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
