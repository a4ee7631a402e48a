"""Retrieval quality on evals/datasets/retrieval.jsonl: dense-only, BM25-only and hybrid, side by side.

    python evals/retrieval_report.py            # table of recall@5, hit@5 and MRR per mode
    python evals/retrieval_report.py --check    # also exit 1 if hybrid recall@5 < 0.90
    python evals/retrieval_report.py --no-journey --show-misses

Metrics are over documents: the ranked passages are collapsed to distinct documents in order.
recall@5 is the share of a case's relevant documents found in the top 5, averaged over cases;
hit@5 is the share of cases with at least one relevant document in the top 5; MRR is the mean of
1/rank of the first relevant document (0 when none is in the top 10).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from assistant import Assistant, HelpRequest, JourneyContext, Turn
from assistant.config import load_settings

ROOT = Path(__file__).resolve().parent
DATASET = ROOT / "datasets" / "retrieval.jsonl"
MODES = ("dense", "bm25", "hybrid")
#: Floor for `--check`: the issue's target, the same floor as evals/thresholds.yaml (retrieval).
GATE_RECALL_AT_5 = 0.90


class RetrievalCase(BaseModel):
    """One retrieval case of the dataset."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    message: str
    journey: JourneyContext | None = None
    history: list[Turn] = Field(default_factory=list)
    relevant_doc_ids: list[str] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)


def load_cases(path: Path) -> list[RetrievalCase]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                cases.append(RetrievalCase.model_validate_json(line))
            except ValueError as exc:
                print(f"{path}:{number}: skipped, {exc.__class__.__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
    return cases


def ranked_docs(assistant: Assistant, case: RetrievalCase, depth: int = 10) -> list[str]:
    result = assistant.retrieve(HelpRequest(message=case.message, journey=case.journey, history=case.history))
    return list(dict.fromkeys(p.doc_id for p in result.passages))[:depth]


def score(cases: list[RetrievalCase], retriever: Assistant) -> dict[str, object]:
    recall = hit = mrr = 0.0
    misses = []
    latencies = []
    for case in cases:
        started = time.perf_counter()
        docs = ranked_docs(retriever, case)
        latencies.append((time.perf_counter() - started) * 1000)
        relevant = set(case.relevant_doc_ids)
        top5 = set(docs[:5])
        recall += len(relevant & top5) / len(relevant)
        hit += 1.0 if relevant & top5 else 0.0
        rank = next((i for i, d in enumerate(docs, start=1) if d in relevant), None)
        mrr += 1.0 / rank if rank else 0.0
        if not relevant & top5:
            misses.append({"id": case.id, "message": case.message, "expected": case.relevant_doc_ids, "got": docs[:5]})
    n = len(cases)
    latencies.sort()
    return {
        "recall@5": recall / n, "hit@5": hit / n, "mrr": mrr / n, "cases": n,
        "p50_ms": latencies[n // 2], "misses": misses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if hybrid recall@5 < {GATE_RECALL_AT_5}")
    parser.add_argument("--no-journey", action="store_true", help="ignore journey context (ablation)")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    cases = load_cases(args.dataset)
    settings = load_settings(use_journey=not args.no_journey)
    assistant = Assistant(settings)
    report = assistant.ingest()  # brings the index up to date (a no-op when it already is)
    if report.changed:
        print(f"indexed {report.chunks_total} chunks", file=sys.stderr)
    results = {}
    for mode in MODES:
        # depth 20 so documents ranked 6-10 still count for MRR
        mode_settings = settings.model_copy(update={"retrieval_mode": mode, "top_k": 20})
        results[mode] = score(cases, Assistant(mode_settings, embeddings=assistant.embeddings))

    console = Console()
    table = Table(title=f"Retrieval on {args.dataset.name} ({len(cases)} cases, journey {'off' if args.no_journey else 'on'})")
    for column in ("mode", "recall@5", "hit@5", "MRR", "p50 ms"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    for mode, r in results.items():
        table.add_row(mode, f"{r['recall@5']:.3f}", f"{r['hit@5']:.3f}", f"{r['mrr']:.3f}", f"{r['p50_ms']:.1f}")
    console.print(table)
    if args.show_misses:
        for miss in results["hybrid"]["misses"]:  # type: ignore[union-attr]
            console.print(miss, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    hybrid_recall = float(results["hybrid"]["recall@5"])  # type: ignore[arg-type]
    if args.check and hybrid_recall < GATE_RECALL_AT_5:
        print(f"FAILED: hybrid recall@5 {hybrid_recall:.3f} < {GATE_RECALL_AT_5}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
