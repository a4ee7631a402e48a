"""Scale: retrieval, memory and ingest on synthetic corpora of 10k and 100k chunks.

A synthetic corpus is made of the shipped help centre's real text, recombined: each synthetic
article copies a real one's front matter under a new id, with a market drawn at random (about a
third are market-specific, across the markets of ``corpus/markets.yaml``), journey stages drawn
from the real ones, and its sections shuffled with a section or two from another article; up to
three of the real article's driver questions come with it. Articles are added until the index
holds the wanted number of chunks.

Embedding 100k chunks and their answer units with the real model would take this 2-core machine
hours, so the index is built with :class:`ComposedEmbeddings`: every distinct sentence of the
corpus is embedded once with the real model (the corpus is recombined real text, so there are
only a few thousand), and a text's vector is the normalised mean of its sentences' vectors.
Queries are embedded by the real model. The ingest time is reported without the model, and
beside it the model's own rate on the shipped corpus's texts and the ingest time that rate
extrapolates to at each size: an estimate, and labelled as one.

Each size and backend runs in a fresh process (so its resident memory is its own):

* ``ingest``: wall time and peak resident memory of ``Assistant.ingest()``;
* ``serve``: a fresh process opens the index and answers 120 English held-out questions with
  their journeys; reported: ``retrieve()`` p50/p95 (its second call for the question, so every
  text it embeds is cached and this is the search alone), ``answer()`` p50/p95 (everything after
  the message's embedding), resident
  memory after loading and after the run, and the baseline in the same process: LangChain's
  ``Chroma.similarity_search_by_vector(k=5)`` over the same collection, same query vectors.

Backends: the embedded Chroma (``PersistentClient``) and a Chroma server on loopback (``chroma
run``, started by this script). At 10k chunks our default searches its own vectors exactly in
numpy (``ASSISTANT_EXACT_SEARCH_MAX_CHUNKS``, 20,000), so Chroma is measured there with HNSW
forced too.

    python benchmarks/bench_scale.py [--sizes 10000 100000] [--no-server] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain_core.embeddings import Embeddings  # noqa: E402

QUESTIONS = 120
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def rss_mb() -> float:
    """Resident memory now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the synthetic corpus ---------------------------------------------------------------------


def _front_and_body(text: str) -> tuple[dict[str, Any], str]:
    import yaml

    _, front, body = text.split("---", 2)
    return yaml.safe_load(front), body


def synthesize(corpus: Path, out: Path, *, chunks: int, seed: int = 7) -> dict[str, int]:
    """Write a synthetic corpus of about ``chunks`` chunks into ``out``; returns its counts."""
    import yaml

    from assistant import Settings
    from assistant.ingestion.chunking import Chunker
    from assistant.ingestion.documents import parse_document

    rng = random.Random(seed)
    out.mkdir(parents=True)
    shutil.copy(corpus / "markets.yaml", out / "markets.yaml")
    markets = list(yaml.safe_load((corpus / "markets.yaml").read_text(encoding="utf-8")))
    real = []
    for path in sorted(corpus.glob("*.md")):
        front, body = _front_and_body(path.read_text(encoding="utf-8"))
        _, _, rest = body.strip().partition("\n")  # the title line is written anew
        intro, *sections = re.split(r"\n(?=## )", rest)
        real.append((front, intro, sections))
    stages = sorted({s for front, _, _ in real for s in front.get("journey_stages") or []})
    settings = Settings()
    chunker = Chunker(chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)
    total = docs = questions = 0
    while total < chunks:
        front, intro, sections = real[docs % len(real)]
        _, _, other = rng.choice(real)
        picked = [*sections, *rng.sample(other, min(len(other), rng.randint(0, 2)))]
        rng.shuffle(picked)
        doc_id = f"{front['id']}-s{docs}"
        meta = {
            "id": doc_id,
            "title": front["title"],  # real titles: a text's sentences stay the corpus's own
            "version": 1,
            "effective_date": str(front["effective_date"]),
            "journey_stages": rng.sample(stages, rng.randint(1, 4)),
            "markets": [rng.choice(markets)] if rng.random() < 0.33 else "all",
            "tags": front.get("tags") or [],
            "questions": (front.get("questions") or [])[:3],
        }
        text = f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# {meta['title']}\n{intro}\n" + "\n".join(picked)
        path = out / f"{doc_id}.md"
        path.write_text(text, encoding="utf-8")
        total += len(chunker.split(parse_document(path, text.encode("utf-8"))))
        questions += len(meta["questions"])
        docs += 1
    return {"documents": docs, "chunks": total, "questions": questions}


class ComposedEmbeddings(Embeddings):
    """Real query vectors; document vectors composed from the real vectors of their sentences
    (see the module docstring). Each distinct sentence is embedded once."""

    def __init__(self) -> None:
        from assistant.retrieval.embeddings import LocalMiniLMEmbeddings

        self.model = LocalMiniLMEmbeddings(cache_size=4096)
        self.sentences: dict[str, Any] = {}
        self.model_texts = 0
        self.model_seconds = 0.0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        pieces = [[p for p in _SENTENCE.split(t) if p.strip()] or [t or " "] for t in texts]
        missing = list(dict.fromkeys(p for ps in pieces for p in ps if p not in self.sentences))
        if missing:
            t0 = time.perf_counter()
            for p, v in zip(missing, self.model.embed_documents(missing), strict=True):
                self.sentences[p] = np.asarray(v, dtype=np.float32)
            self.model_seconds += time.perf_counter() - t0
            self.model_texts += len(missing)
        out = []
        for ps in pieces:
            mean = np.mean([self.sentences[p] for p in ps], axis=0)
            out.append((mean / max(float(np.linalg.norm(mean)), 1e-12)).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_query(text)


def model_rate() -> dict[str, float]:
    """Texts a second of the real model on what ingest embeds for the shipped corpus (its chunks,
    answer units and driver questions), length-sorted batches as ingest does."""
    from assistant import Settings
    from assistant.ingestion.chunking import Chunker, embedding_text, unit_embedding_text
    from assistant.ingestion.documents import load_corpus
    from assistant.ingestion.units import split_units
    from assistant.retrieval.embeddings import LocalMiniLMEmbeddings

    corpus = load_corpus(ROOT / "corpus")
    settings = Settings()
    chunker = Chunker(chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)
    chunks = [c for d in corpus.documents for c in chunker.split(d)]
    units = [unit_embedding_text(str(c.metadata["section"]), u) for c in chunks for u in split_units(c.page_content)]
    texts = [embedding_text(c) for c in chunks] + units + [q for d in corpus.documents for q in d.questions]
    model = LocalMiniLMEmbeddings(cache_size=0)
    t0 = time.perf_counter()
    model.embed_documents(texts)
    seconds = time.perf_counter() - t0
    return {"texts": len(texts), "chunks": len(chunks), "seconds": seconds,
            "texts_per_chunk": len(texts) / len(chunks), "texts_per_second": len(texts) / seconds}


# -- one measurement, in its own process ---------------------------------------------------------


def child(args: argparse.Namespace) -> dict[str, Any]:
    from assistant import Assistant, HelpRequest, JourneyContext, Settings
    from assistant.retrieval.language import query_language

    overrides: dict[str, Any] = {"data_dir": Path(args.data), "corpus_dir": Path(args.corpus), "multilingual": False}
    if args.chroma_url:
        overrides["chroma_url"] = args.chroma_url
    if args.exact_max is not None:
        overrides["exact_search_max_chunks"] = args.exact_max
    settings = Settings(**overrides)
    embedder = ComposedEmbeddings()
    if args.child == "ingest":
        before = rss_mb()
        t0 = time.perf_counter()
        report = Assistant(settings, embeddings=embedder).ingest()
        seconds = time.perf_counter() - t0
        return {"chunks": report.chunks_total, "seconds": seconds, "model_seconds": embedder.model_seconds,
                "model_texts": embedder.model_texts, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb()}

    lines = (ROOT / "evals" / "datasets" / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    requests = [
        HelpRequest(message=c["message"], journey=JourneyContext.model_validate(c["journey"]) if c.get("journey") else None)
        for c in cases if query_language(c["message"]).is_english
    ][:QUESTIONS]
    t0 = time.perf_counter()
    assistant = Assistant(settings, embeddings=embedder)
    retriever, _ = assistant._stages()
    open_seconds = time.perf_counter() - t0
    loaded = rss_mb()
    vectors = [embedder.embed_query(r.message) for r in requests]  # cached for both sides from here on
    for request in requests[:5]:
        assistant.answer(request)
    retrieve_ms, answer_ms, base_ms = [], [], []
    from langchain_chroma import Chroma

    from assistant.retrieval import chroma

    client = chroma.open_client(data_dir=settings.data_dir, chroma_url=settings.chroma_url)
    baseline = Chroma(client=client, collection_name=retriever.manifest.collection, embedding_function=embedder, create_collection_if_not_exists=False)
    for request, vector in zip(requests, vectors, strict=True):
        t = time.perf_counter()
        baseline.similarity_search_by_vector(vector, k=5)
        base_ms.append((time.perf_counter() - t) * 1000)
        retriever.retrieve(request.message, k=settings.top_k, journey=request.journey)  # embeds its other texts
        t = time.perf_counter()
        retriever.retrieve(request.message, k=settings.top_k, journey=request.journey)
        retrieve_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        assistant.answer(request)
        answer_ms.append((time.perf_counter() - t) * 1000)
    from baseline import percentile

    def p(values: list[float]) -> dict[str, float]:
        return {"p50": statistics.median(values), "p95": percentile(values, 0.95)}

    return {
        "questions": len(requests), "open_seconds": open_seconds, "exact": bool(getattr(retriever.dense, "exact", False)),
        "baseline_ms": p(base_ms), "retrieve_ms": p(retrieve_ms), "answer_ms": p(answer_ms),
        "retrieve_ratio_p50": statistics.median(retrieve_ms) / statistics.median(base_ms),
        "retrieve_ratio_p95": percentile(retrieve_ms, 0.95) / percentile(base_ms, 0.95),
        "rss_loaded_mb": loaded, "rss_after_mb": rss_mb(), "peak_rss_mb": peak_rss_mb(),
    }


def run_child(phase: str, data: Path, corpus: Path, *, chroma_url: str | None = None, exact_max: int | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", phase, "--data", str(data), "--corpus", str(corpus)]
    if chroma_url:
        command += ["--chroma-url", chroma_url]
    if exact_max is not None:
        command += ["--exact-max", str(exact_max)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{phase} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def chroma_server(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([binary, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the Chroma server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--no-server", action="store_true", help="skip the Chroma server runs")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--child", choices=["ingest", "serve"])
    parser.add_argument("--data")
    parser.add_argument("--corpus")
    parser.add_argument("--chroma-url")
    parser.add_argument("--exact-max", type=int)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0

    os.environ["ASSISTANT_MULTILINGUAL"] = "false"
    rate = model_rate()
    print(f"model: {rate['texts_per_second']:.1f} texts/s, {rate['texts_per_chunk']:.2f} texts per chunk "
          f"(shipped corpus, {rate['chunks']} chunks)", flush=True)
    results: dict[str, Any] = {"model": rate, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            corpus = Path(tmp) / f"corpus-{size}"
            t0 = time.perf_counter()
            counts = synthesize(ROOT / "corpus", corpus, chunks=size)
            print(f"{size}: synthetic corpus {counts} in {time.perf_counter() - t0:.0f} s", flush=True)
            entry: dict[str, Any] = {"corpus": counts}
            embedded = Path(tmp) / f"data-{size}"
            ingest = run_child("ingest", embedded, corpus)
            ingest["estimated_model_seconds"] = ingest["chunks"] * rate["texts_per_chunk"] / rate["texts_per_second"]
            ingest["chunks_per_second_without_model"] = ingest["chunks"] / (ingest["seconds"] - ingest["model_seconds"])
            entry["ingest"] = ingest
            print(f"{size}: ingest {ingest['seconds']:.0f} s ({ingest['model_seconds']:.0f} s of it the model on "
                  f"{ingest['model_texts']} distinct sentences), peak {ingest['peak_rss_mb']:.0f} MB; with the real model "
                  f"about {ingest['estimated_model_seconds'] / 60:.0f} min more (estimate)", flush=True)
            runs = {"embedded": run_child("serve", embedded, corpus)}
            if size <= 20_000:
                runs["embedded_hnsw"] = run_child("serve", embedded, corpus, exact_max=0)
            if not args.no_server:
                server, url = chroma_server(Path(tmp) / f"server-{size}")
                try:
                    served = Path(tmp) / f"data-server-{size}"
                    entry["ingest_server"] = run_child("ingest", served, corpus, chroma_url=url)
                    runs["server"] = run_child("serve", served, corpus, chroma_url=url, exact_max=0)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
            entry["serve"] = runs
            for name, r in runs.items():
                print(f"{size} {name}: retrieve p50 {r['retrieve_ms']['p50']:.1f} / p95 {r['retrieve_ms']['p95']:.1f} ms "
                      f"(baseline {r['baseline_ms']['p50']:.1f} / {r['baseline_ms']['p95']:.1f}: ratio "
                      f"{r['retrieve_ratio_p50']:.2f} / {r['retrieve_ratio_p95']:.2f}), answer p50 "
                      f"{r['answer_ms']['p50']:.1f} / p95 {r['answer_ms']['p95']:.1f} ms, memory loaded "
                      f"{r['rss_loaded_mb']:.0f} MB, after {r['rss_after_mb']:.0f} MB", flush=True)
            results["sizes"][str(size)] = entry
            shutil.rmtree(corpus, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
