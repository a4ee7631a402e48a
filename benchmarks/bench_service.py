"""The HTTP service's cost: the same requests over HTTP (``assistant serve`` in its own process,
on loopback) and through the library (``Assistant.answer`` in threads), at concurrency 1, 8
and 32, in one run. Both record every request in a SQLite store, so the ratio is what HTTP,
JSON and the ASGI server add.

    python benchmarks/bench_service.py [--requests N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from baseline import percentile

from assistant import Assistant, HelpRequest, JourneyContext, Settings

ROOT = Path(__file__).resolve().parent.parent
LEVELS = (1, 8, 32)


def requests_from_heldout(n: int) -> list[HelpRequest]:
    lines = (ROOT / "evals" / "datasets" / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    return [
        HelpRequest(message=c["message"], journey=JourneyContext.model_validate(c["journey"]) if c.get("journey") else None)
        for c in (cases * (n // len(cases) + 1))[:n]
    ]


def run_library(assistant: Assistant, requests: list[HelpRequest], concurrency: int) -> tuple[list[float], float]:
    def one(request: HelpRequest) -> float:
        t0 = time.perf_counter()
        assistant.answer(request)
        return (time.perf_counter() - t0) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, requests))
    return latencies, len(requests) / (time.perf_counter() - started)


async def run_http(url: str, requests: list[HelpRequest], concurrency: int) -> tuple[list[float], float]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency)) as http:

        async def one(request: HelpRequest) -> float:
            async with gate:
                t0 = time.perf_counter()
                reply = await http.post("/v1/answer", content=request.model_dump_json(exclude_none=True),
                                        headers={"content-type": "application/json"})
                reply.raise_for_status()
                return (time.perf_counter() - t0) * 1000

        started = time.perf_counter()
        latencies = list(await asyncio.gather(*(one(r) for r in requests)))
        return latencies, len(requests) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "service.json")
    args = parser.parse_args()
    requests = requests_from_heldout(args.requests)
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        settings = Settings(data_dir=data, corpus_dir=ROOT / "corpus", database_url=f"sqlite:///{Path(tmp) / 'library.db'}",
                            review_sample_rate=0.0)
        library = Assistant(settings)
        library.ingest()
        library.warm_up()
        port = 18000 + os.getpid() % 1000
        env = {**os.environ, "ASSISTANT_DATA_DIR": str(data), "ASSISTANT_CORPUS_DIR": str(ROOT / "corpus"),
               "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0", "ASSISTANT_DATABASE_URL": f"sqlite:///{Path(tmp) / 'service.db'}",
               "ASSISTANT_REVIEW_SAMPLE_RATE": "0"}
        server = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print("the service did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            asyncio.run(run_http(url, requests[:10], 1))  # warm: connections, first requests
            run_library(library, requests[:10], 1)
            for level in LEVELS:
                lib_ms, lib_rps = run_library(library, requests, level)
                http_ms, http_rps = asyncio.run(run_http(url, requests, level))
                results.append({
                    "concurrency": level,
                    "library_p50": statistics.median(lib_ms), "library_p95": percentile(lib_ms, 0.95),
                    "library_rps": lib_rps,
                    "http_p50": statistics.median(http_ms), "http_p95": percentile(http_ms, 0.95), "http_rps": http_rps,
                    "ratio_p50": statistics.median(http_ms) / statistics.median(lib_ms),
                    "ratio_p95": percentile(http_ms, 0.95) / percentile(lib_ms, 0.95),
                    "ratio_rps": http_rps / lib_rps,
                })
        finally:
            server.terminate()
            server.wait(timeout=60)
            library.close()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"requests": len(requests), "levels": results}, indent=1), encoding="utf-8")
    print(f"{len(requests)} held-out requests per level; both paths record to SQLite")
    print("concurrency | library p50/p95 ms, req/s | HTTP p50/p95 ms, req/s | ratio p50, p95, throughput")
    for r in results:
        print(f"{r['concurrency']:>11} | {r['library_p50']:.1f}/{r['library_p95']:.1f}, {r['library_rps']:.1f} | "
              f"{r['http_p50']:.1f}/{r['http_p95']:.1f}, {r['http_rps']:.1f} | "
              f"{r['ratio_p50']:.2f}, {r['ratio_p95']:.2f}, {r['ratio_rps']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
