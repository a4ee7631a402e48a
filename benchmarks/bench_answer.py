"""The whole request (`Assistant.answer()`) against a plain LangChain retriever, in one process.

The baseline (``benchmarks/baseline.py``) is a plain LangChain ``Chroma.similarity_search(q, k=5)``
over the same chunks with the same local embedder. Ours is the full offline answer: guardrails, hybrid retrieval with the journey, the section
ranking and quote, the confidence model and routing. The questions are the held-out dataset's
messages with their journeys, all different, so no answer is served from a cache of an earlier
question; both run warm (one untimed pass first), on the same machine one after the other, so
only the ratio is reported.

    python benchmarks/bench_answer.py [--questions N] [--json PATH]
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

from assistant import Assistant, HelpRequest, JourneyContext, Settings
from assistant.ingestion.chunking import Chunker
from assistant.ingestion.documents import load_corpus
from assistant.retrieval.embeddings import LocalMiniLMEmbeddings
from assistant.retrieval.language import query_language

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "answer.json")
    args = parser.parse_args()

    corpus = ROOT / "corpus"
    # two embedders, so that ours never finds the baseline's embedding of a question in its cache
    baseline_embedder = LocalMiniLMEmbeddings(cache_size=0)
    embedder = LocalMiniLMEmbeddings()
    lines = (ROOT / "evals" / "datasets" / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()][: args.questions]
    requests = [
        HelpRequest(message=c["message"], journey=JourneyContext.model_validate(c["journey"]) if c.get("journey") else None)
        for c in cases
    ]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "ours", corpus_dir=corpus)
        chunker = Chunker(chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)
        chunks = [c for d in load_corpus(corpus).documents for c in chunker.split(d)]
        baseline = build_baseline(chunks, baseline_embedder, Path(tmp) / "baseline")
        assistant = Assistant(settings, embeddings=embedder)
        assistant.ingest()
        for request in requests[:5]:  # warm up: models, index files, classifier
            baseline.similarity_search(request.message, k=5)
            assistant.answer(request)
        # Where the time goes: the embedding model's share of each side, so what is left (the
        # baseline's Chroma query; our guardrails, hybrid search, ranking and routing) shows.
        model = _ModelClock(embedder)
        base_ms, ours_ms, base_embed_ms, ours_embed_ms, ours_texts = [], [], [], [], []
        for request in requests:
            t0 = time.perf_counter()
            baseline.similarity_search(request.message, k=5)
            base_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            baseline_embedder.embed_query(request.message)  # no cache: the model, as in the search
            base_embed_ms.append((time.perf_counter() - t0) * 1000)
            model.reset()
            t0 = time.perf_counter()
            assistant.answer(request)
            ours_ms.append((time.perf_counter() - t0) * 1000)
            ours_embed_ms.append(model.ms)
            ours_texts.append(model.texts)

    other_language = [not query_language(r.message).is_english for r in requests]
    result = {
        "questions": len(requests),
        "baseline_p50": statistics.median(base_ms), "baseline_p95": percentile(base_ms, 0.95),
        "answer_p50": statistics.median(ours_ms), "answer_p95": percentile(ours_ms, 0.95),
        "ratio_p50": statistics.median(ours_ms) / statistics.median(base_ms),
        "ratio_p95": percentile(ours_ms, 0.95) / percentile(base_ms, 0.95),
    }
    # Other languages go through the multilingual model (about 45 ms a message on 2 cores), so
    # the p95 of a mixed set is theirs; each part is reported on its own too.
    for name, keep in (("english", False), ("other_languages", True)):
        def part(values: list[float], keep: bool = keep) -> list[float]:
            return [v for v, other in zip(values, other_language, strict=True) if other is keep]

        ours, base = part(ours_ms), part(base_ms)
        if ours:
            result[f"{name}_questions"] = len(ours)
            result[f"{name}_ratio_p50"] = statistics.median(ours) / statistics.median(base)
            result[f"{name}_ratio_p95"] = percentile(ours, 0.95) / percentile(base, 0.95)
            # per request: ours less its local-model time, the baseline less its query's embedding
            result[f"{name}_answer_without_model_p50"] = statistics.median(
                [o - e for o, e in zip(ours, part(ours_embed_ms), strict=True)])
            result[f"{name}_baseline_without_model_p50"] = statistics.median(
                [b - e for b, e in zip(base, part(base_embed_ms), strict=True)])
            result[f"{name}_texts_per_request"] = statistics.mean(part(ours_texts))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"answer(): p50 {result['answer_p50']:.2f} ms p95 {result['answer_p95']:.2f} ms | baseline similarity_search "
          f"p50 {result['baseline_p50']:.2f} ms p95 {result['baseline_p95']:.2f} ms | ratio p50 {result['ratio_p50']:.2f} "
          f"p95 {result['ratio_p95']:.2f} ({result['questions']} held-out questions)")
    for name in ("english", "other_languages"):
        if f"{name}_questions" in result:
            print(f"  {name.replace('_', ' ')} ({result[f'{name}_questions']}): ratio p50 {result[f'{name}_ratio_p50']:.2f} "
                  f"p95 {result[f'{name}_ratio_p95']:.2f}; without the local model p50 "
                  f"{result[f'{name}_answer_without_model_p50']:.2f} ms against the baseline's "
                  f"{result[f'{name}_baseline_without_model_p50']:.2f} ms; "
                  f"{result[f'{name}_texts_per_request']:.2f} texts a request to the local model")
    return 0


class _ModelClock:
    """Time spent in one local embedder's model calls (and the texts they embed) since ``reset``;
    the multilingual model is not counted (a message in another language spends it on top)."""

    def __init__(self, embedder: LocalMiniLMEmbeddings) -> None:
        self.ms = 0.0
        self.texts = 0
        run = embedder.embed_documents

        def timed(texts: list[str]) -> list[list[float]]:
            t0 = time.perf_counter()
            try:
                return run(texts)
            finally:
                self.ms += (time.perf_counter() - t0) * 1000
                self.texts += len(texts)

        embedder.embed_documents = timed  # type: ignore[method-assign]

    def reset(self) -> None:
        self.ms, self.texts = 0.0, 0


if __name__ == "__main__":
    sys.exit(main())
