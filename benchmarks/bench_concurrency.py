"""Throughput of ``answer()`` from one thread, from 8 threads, and of ``aanswer()`` 8 at a time.

The same English held-out questions (their journeys included) are answered by one
:class:`~assistant.Assistant` over the shipped corpus; the embedder's query cache is emptied
before each run, so every request embeds its texts, once, as a request does in service (the
guardrails and the searches share one model call); each mode is run twice, in turn, and the
better run kept. Reported: questions
per second and each mode's ratio to one thread, measured in the same process. While the async
mode runs, a ticker on the event loop records its largest delay: the loop must never wait on
embedding or search.

Two configurations, each against its own one thread: the default (a model call that runs alone
uses ``ASSISTANT_EMBEDDING_THREADS`` = 2 threads, for the lowest latency) and one thread per call
(``embedding_threads=1``, chosen for throughput: one request then uses one core, so a second
request has the other).

    python benchmarks/bench_concurrency.py [--questions N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from assistant import Assistant, HelpRequest, JourneyContext, Settings
from assistant.retrieval.embeddings import LocalMiniLMEmbeddings
from assistant.retrieval.language import query_language

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 8


def _forget(assistant: Assistant) -> None:
    """Empty the embedder's query cache: the next run embeds every request again."""
    if isinstance(assistant.embeddings, LocalMiniLMEmbeddings):
        assistant.embeddings.cache.clear()


def _threads(assistant: Assistant, requests: list[HelpRequest], workers: int) -> float:
    _forget(assistant)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(assistant.answer, requests))
    return len(requests) / (time.perf_counter() - started)


async def _async(assistant: Assistant, requests: list[HelpRequest], workers: int) -> tuple[float, float]:
    limit = asyncio.Semaphore(workers)
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - before - 0.005)

    async def one(request: HelpRequest) -> None:
        async with limit:
            await assistant.aanswer(request)

    _forget(assistant)
    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    rate = len(requests) / (time.perf_counter() - started)
    done = True
    await tick
    return rate, worst * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=160)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "concurrency.json")
    args = parser.parse_args()
    lines = (ROOT / "evals" / "datasets" / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    requests = [
        HelpRequest(message=c["message"], journey=JourneyContext.model_validate(c["journey"]) if c.get("journey") else None)
        for c in cases if query_language(c["message"]).is_english
    ][: args.questions]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        Assistant(Settings(data_dir=Path(tmp), corpus_dir=ROOT / "corpus")).ingest()
        for name, threads in (("default", 2), ("one_thread_per_call", 1)):
            assistant = Assistant(
                Settings(data_dir=Path(tmp), corpus_dir=ROOT / "corpus", embedding_threads=threads)
            )
            for request in requests[:10]:  # warm up
                assistant.answer(request)
            one, many, in_async, delay = 0.0, 0.0, 0.0, 0.0
            for _ in range(2):
                one = max(one, _threads(assistant, requests, 1))
                many = max(many, _threads(assistant, requests, WORKERS))
                rate, worst = asyncio.run(_async(assistant, requests, WORKERS))
                if rate > in_async:
                    in_async, delay = rate, worst
            assistant.close()
            results[name] = {
                "embedding_threads": threads,
                "one_thread_per_s": one,
                "threads_8_per_s": many,
                "asyncio_8_per_s": in_async,
                "threads_8_ratio": many / one,
                "asyncio_8_ratio": in_async / one,
                "event_loop_worst_delay_ms": delay,
            }
    result = {"questions": len(requests), **results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    for name, r in results.items():
        print(f"{name} (embedding_threads={r['embedding_threads']}): answer() one thread {r['one_thread_per_s']:.1f}/s, "
              f"{WORKERS} threads {r['threads_8_per_s']:.1f}/s ({r['threads_8_ratio']:.2f}x), aanswer() {WORKERS} at a "
              f"time {r['asyncio_8_per_s']:.1f}/s ({r['asyncio_8_ratio']:.2f}x); event loop's worst delay "
              f"{r['event_loop_worst_delay_ms']:.1f} ms ({len(requests)} English held-out questions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
