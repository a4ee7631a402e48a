"""Time from the model server's first token to the first text the caller gets from ``stream()``.

A scripted OpenAI-protocol server on 127.0.0.1 (the one the tests use) streams a JSON answer in
small chunks; the server notes when its first content chunk leaves, the caller notes when
``Assistant.stream`` yields its first text. The difference is what the library adds: the HTTP
client, LangChain's stream, partial JSON parsing and the hand-over to the caller's thread.
The baseline, in the same run, is the same measurement with the raw ``openai`` client.

    python benchmarks/bench_streaming.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import Assistant, HelpResponse  # noqa: E402
from assistant.config import load_settings  # noqa: E402
from assistant.evals.metrics import percentile  # noqa: E402
from tests.openai_stub import OpenAIStub, Reply  # noqa: E402

TEXT = "Wait 10 minutes at the door, call and text the customer, then tap Customer unavailable."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    content = json.dumps({"answer": TEXT, "citations": [1], "can_answer": True})
    # the first chunk ends with the answer's first letter, so both sides time the same token
    reply = Reply(content, chunk_delay=0.005, first_piece=content.index(TEXT) + 1)
    ours: list[float] = []
    raw: list[float] = []
    with OpenAIStub([reply]) as stub:
        assistant = Assistant(load_settings(generator="openai", openai_base_url=stub.url, llm_max_retries=0))
        assistant.ingest()
        assistant.answer("warm up")
        client = openai.OpenAI(base_url=stub.url, api_key="not-needed", max_retries=0)
        for _ in range(args.runs):
            before = len(stub.first_token_at)
            for item in assistant.stream("customer isnt answering the door"):
                if isinstance(item, str) and item:
                    ours.append((time.perf_counter() - stub.first_token_at[before]) * 1000)
                    break
            for item in assistant.stream("customer isnt answering the door"):
                if isinstance(item, HelpResponse):
                    break  # drain the rest so the next run starts clean
            before = len(stub.first_token_at)
            stream = client.chat.completions.create(
                model="stub", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    raw.append((time.perf_counter() - stub.first_token_at[before]) * 1000)
                    break
            stream.close()
    print(f"{args.runs} streamed answers; ms from the server's first token to the caller's first text")
    print(f"{'':34}{'p50':>8}{'p95':>8}")
    print(f"{'raw openai client (baseline)':34}{percentile(raw, 50):>8.2f}{percentile(raw, 95):>8.2f}")
    print(f"{'Assistant.stream':34}{percentile(ours, 50):>8.2f}{percentile(ours, 95):>8.2f}")
    print(f"added by the library at p50: {percentile(ours, 50) - percentile(raw, 50):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
