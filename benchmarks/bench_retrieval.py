"""Ingestion throughput and per-question retrieval latency, against a plain LangChain baseline.

The baseline is what a developer would write first: ``langchain_chroma.Chroma.from_documents``
over the same chunks with the same local embedder, and ``Chroma.similarity_search(q, k=5)``.
Both run in this process, one after the other, on the same machine, so the ratios compare like
with like. Query caches are off for both.

    python benchmarks/bench_retrieval.py [--questions N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from baseline import build_baseline, percentile

from assistant import JourneyContext, Settings
from assistant.ingestion.chunking import Chunker
from assistant.ingestion.documents import load_corpus
from assistant.ingestion.indexer import Indexer
from assistant.retrieval.embeddings import LocalMiniLMEmbeddings
from assistant.retrieval.hybrid import HybridRetriever

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=130)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "retrieval.json")
    args = parser.parse_args()

    corpus = ROOT / "corpus"
    embedder = LocalMiniLMEmbeddings(cache_size=0)
    settings = Settings(chunk_tokens=220, chunk_overlap=30)
    chunker = Chunker(chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)
    chunks = [c for d in load_corpus(corpus).documents for c in chunker.split(d)]
    lines = (ROOT / "evals" / "datasets" / "retrieval.jsonl").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()][: args.questions]

    with tempfile.TemporaryDirectory() as tmp:
        # -- baseline ingest
        started = time.perf_counter()
        baseline = build_baseline(chunks, embedder, Path(tmp) / "baseline")
        baseline_ingest = time.perf_counter() - started

        # -- our ingest (chunks, answer units and driver questions embedded; Chroma, BM25, stores written)
        ours_settings = settings.model_copy(update={"data_dir": Path(tmp) / "ours", "query_cache_size": 0})
        started = time.perf_counter()
        report = Indexer(ours_settings, embedder).ingest(corpus)
        ours_ingest = time.perf_counter() - started
        retriever = HybridRetriever.open(ours_settings, embedder)

        # -- per-question latency, warm (one untimed pass first)
        for case in cases[:5]:
            baseline.similarity_search(case["message"], k=5)
            retriever.retrieve(case["message"], k=5)
        base_ms, ours_ms = [], []
        for case in cases:
            journey = JourneyContext.model_validate(case["journey"]) if case.get("journey") else None
            t0 = time.perf_counter()
            baseline.similarity_search(case["message"], k=5)
            base_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            retriever.retrieve(case["message"], k=5, journey=journey)
            ours_ms.append((time.perf_counter() - t0) * 1000)

    result = {
        "chunks": len(chunks),
        "ingest": {
            "baseline_chunks_per_s": len(chunks) / baseline_ingest,
            "ours_chunks_per_s": report.chunks_total / ours_ingest,
            "ours_units_embedded": report.units_embedded,
            "ours_questions_embedded": report.questions_embedded,
            "ours_pivots_embedded": report.pivots_embedded,
            "ours_pivot_seconds": report.pivot_seconds,
            "ratio_ours_without_pivots_over_baseline_time": (ours_ingest - report.pivot_seconds) / baseline_ingest,
            "ratio_ours_over_baseline_time": ours_ingest / baseline_ingest,
        },
        "query_ms": {
            "baseline_p50": statistics.median(base_ms), "baseline_p95": percentile(base_ms, 0.95),
            "ours_p50": statistics.median(ours_ms), "ours_p95": percentile(ours_ms, 0.95),
            "ratio_p50": statistics.median(ours_ms) / statistics.median(base_ms),
            "ratio_p95": percentile(ours_ms, 0.95) / percentile(base_ms, 0.95),
            "questions": len(cases),
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    i, q = result["ingest"], result["query_ms"]
    print(f"ingest: baseline {i['baseline_chunks_per_s']:.1f} chunks/s, ours {i['ours_chunks_per_s']:.1f} chunks/s "
          f"(ours also embeds {i['ours_units_embedded']} answer units and {i['ours_questions_embedded']} driver questions, "
          f"and {i['ours_pivots_embedded']} multilingual pivots in {i['ours_pivot_seconds']:.0f} s); time ratio ours/baseline "
          f"{i['ratio_ours_over_baseline_time']:.2f}, {i['ratio_ours_without_pivots_over_baseline_time']:.2f} without the pivots")
    print(f"query:  baseline p50 {q['baseline_p50']:.2f} ms p95 {q['baseline_p95']:.2f} ms | ours (hybrid + journey) "
          f"p50 {q['ours_p50']:.2f} ms p95 {q['ours_p95']:.2f} ms | ratio p50 {q['ratio_p50']:.2f} p95 {q['ratio_p95']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
