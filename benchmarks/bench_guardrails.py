"""What the guardrails cost per request, against the same pipeline's retrieval and answer alone.

For each eval message (with its journey and history): the time of the guardrail checks
(PII redaction, the message screen with its one embedding, safety, defect evidence, account
action, repeat contact), and, in the same run, the time of retrieval plus the extractive answer
(the baseline). Query caches are off, so every message is embedded afresh in both.

    python benchmarks/bench_guardrails.py [--messages N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from assistant import Assistant
from assistant.config import load_settings
from assistant.evals.dataset import load_datasets
from assistant.evals.metrics import percentile
from assistant.guardrails.engine import redact_request
from assistant.guardrails.hygiene import clean_message
from assistant.retrieval.journey import JourneySignals
from assistant.retrieval.packing import pack_context
from assistant.retrieval.query import retrieval_query

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    settings = load_settings(query_cache_size=0)
    assistant = Assistant(settings)
    assistant.ingest()
    cases = load_datasets([ROOT / "evals" / "datasets" / "answers.jsonl", ROOT / "evals" / "datasets" / "routing.jsonl"]).cases
    requests = [c.to_request() for c in cases][: args.messages]
    guardrails = assistant._guardrails()
    retriever, composer = assistant._stages()
    guardrails.check_input("warm up the classifier")  # trains or loads it once, outside the timings

    guard_ms: list[float] = []
    base_ms: list[float] = []
    for request in requests:
        cleaned = clean_message(request.message, max_chars=settings.max_message_chars)
        started = time.perf_counter()
        inputs = guardrails.check_input(cleaned.text, original_chars=cleaned.original_chars)
        safe = redact_request(request, inputs.redaction.text)
        guardrails.check_context(safe.message, safe, safe.history)
        guard_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        result = retriever.retrieve(retrieval_query(safe.message, safe.history), k=settings.top_k, journey=request.journey)
        composer.compose(safe.message, pack_context(result.passages, budget=settings.context_tokens),
                         JourneySignals.from_journey(request.journey))
        base_ms.append((time.perf_counter() - started) * 1000)

    report = {
        "messages": len(requests),
        "guardrails_ms": {"p50": percentile(guard_ms, 50), "p95": percentile(guard_ms, 95), "mean": statistics.fmean(guard_ms)},
        "retrieval_and_answer_ms": {"p50": percentile(base_ms, 50), "p95": percentile(base_ms, 95), "mean": statistics.fmean(base_ms)},
    }
    report["ratio_p50"] = report["guardrails_ms"]["p50"] / report["retrieval_and_answer_ms"]["p50"]  # type: ignore[index,operator]
    print(f"{len(requests)} messages (journeys and history included), query caches off")
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, key in (("guardrails", "guardrails_ms"), ("retrieval + answer (baseline)", "retrieval_and_answer_ms")):
        row = report[key]
        print(f"{name:28}{row['p50']:>10.2f}{row['p95']:>10.2f}{row['mean']:>10.2f}")  # type: ignore[index]
    print(f"guardrails / baseline at p50: {report['ratio_p50']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
