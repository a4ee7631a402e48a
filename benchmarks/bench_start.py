"""Start-up: a fresh process importing the library, opening the index and answering once.

Each side runs in its own fresh Python process, a few times, in turn:

* ours: ``from assistant import Assistant``, ``Assistant.from_settings(data_dir=...)`` and one
  ``answer()``, over an index built beforehand (the index is present, as in production);
* the baseline: importing ``langchain_chroma`` and the same local embedder, opening the
  plain LangChain Chroma store of ``benchmarks/baseline.py`` and one ``similarity_search(q, k=5)``.

Reported: the median seconds of each and their ratio (only the ratio carries to another machine).

    python benchmarks/bench_start.py [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from baseline import build_baseline

from assistant import Assistant, Settings
from assistant.ingestion.chunking import Chunker
from assistant.ingestion.documents import load_corpus
from assistant.retrieval.embeddings import LocalMiniLMEmbeddings

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "when do i get paid"

OURS = """
import time
started = time.perf_counter()
from assistant import Assistant
assistant = Assistant.from_settings(data_dir={data!r})
assistant.answer({question!r})
print(time.perf_counter() - started)
"""

BASELINE = """
import time
started = time.perf_counter()
import chromadb
from chromadb.config import Settings
from langchain_chroma import Chroma
from assistant.retrieval.embeddings import LocalMiniLMEmbeddings
client = chromadb.PersistentClient(path={data!r}, settings=Settings(anonymized_telemetry=False))
store = Chroma(client=client, collection_name="baseline", embedding_function=LocalMiniLMEmbeddings())
store.similarity_search({question!r}, k=5)
print(time.perf_counter() - started)
"""


def _seconds(code: str) -> float:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "start.json")
    args = parser.parse_args()
    corpus = ROOT / "corpus"
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, base_dir = Path(tmp) / "ours", Path(tmp) / "baseline"
        settings = Settings(data_dir=ours_dir, corpus_dir=corpus)
        Assistant(settings).ingest()
        chunker = Chunker(chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)
        chunks = [c for d in load_corpus(corpus).documents for c in chunker.split(d)]
        build_baseline(chunks, LocalMiniLMEmbeddings(), base_dir)
        ours: list[float] = []
        base: list[float] = []
        for _ in range(args.runs):  # in turn, so that both see the same machine
            ours.append(_seconds(OURS.format(data=str(ours_dir), question=QUESTION)))
            base.append(_seconds(BASELINE.format(data=str(base_dir), question=QUESTION)))
    result = {
        "runs": args.runs,
        "ours_median_s": statistics.median(ours),
        "baseline_median_s": statistics.median(base),
        "ratio": statistics.median(ours) / statistics.median(base),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"start-up to the first answer: ours {result['ours_median_s']:.2f} s, baseline (import, open Chroma, one "
          f"similarity_search) {result['baseline_median_s']:.2f} s, ratio {result['ratio']:.2f} (median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
