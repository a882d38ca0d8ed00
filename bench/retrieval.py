"""BM25 retrieval throughput: index build time, index size and queries/s on a generated corpus.

    python bench/retrieval.py --passages 100000 --queries 2048

The corpus is synthetic (no download): passages of ~100 words (wiki-18's passage length) drawn from a
50,000-word vocabulary with Zipf-distributed frequencies (natural text's shape), titles of two rare words; the
queries are 3-8 words taken from a random passage (its title among them, as a search names an entity). Measured
through sigx's own retriever (:class:`sigx.retrieval.bm25.BM25Retriever`): the build includes writing the cache,
and a second open reads it back. Queries go in batches, as the rollout sends them (one batch per turn).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sigx.retrieval.bm25 import BM25Retriever


def write_corpus(path: Path, passages: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    vocab = np.array(["".join(chr(97 + c) for c in rng.integers(0, 26, size=rng.integers(3, 10)))
                      for _ in range(50_000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    weights /= weights.sum()
    all_titles = vocab[rng.integers(5_000, len(vocab), size=(passages, 2))]
    all_words = vocab[rng.choice(len(vocab), size=(passages, 100), p=weights)]
    with open(path, "w") as f:
        for i, (title, words) in enumerate(zip(all_titles, all_words)):
            f.write(json.dumps({"id": str(i), "title": " ".join(title), "text": " ".join(words)}) + "\n")
    return [list(t) + list(w[:8]) for t, w in zip(all_titles, all_words)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--topk", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="sigx-bm25-"))
    try:
        corpus = root / "corpus.jsonl"
        t0 = time.perf_counter()
        words = write_corpus(corpus, args.passages)
        written = time.perf_counter() - t0
        t0 = time.perf_counter()
        BM25Retriever.open(corpus, log=lambda *_: None)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        retriever = BM25Retriever.open(corpus, log=lambda *_: None)
        reopened = time.perf_counter() - t0
        index_mb = sum(p.stat().st_size for p in (root / "corpus.jsonl.bm25s").rglob("*") if p.is_file()) / 2**20
        rng = random.Random(0)
        queries = []
        for _ in range(args.queries):
            pool = words[rng.randrange(len(words))]
            queries.append(" ".join(pool[:2] + rng.sample(pool[2:], rng.randint(1, 6))))
        hits = retriever.search(queries[:64], args.topk)
        print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs; "
              f"corpus {args.passages} passages ({corpus.stat().st_size / 2**20:.0f} MB, written in {written:.1f} s)")
        print(f"index: built and cached in {built:.1f} s, re-opened from the cache in {reopened:.1f} s, "
              f"{index_mb:.0f} MB on disk; the source passage ranked first for "
              f"{sum(h and h[0].title.split() == q.split()[:2] for h, q in zip(hits, queries[:64]))}/64 queries")
        for batch in args.batch:
            t0 = time.perf_counter()
            for i in range(0, len(queries), batch):
                retriever.search(queries[i:i + batch], args.topk)
            elapsed = time.perf_counter() - t0
            print(f"batch {batch:>4}: {len(queries) / elapsed:,.0f} queries/s ({elapsed:.2f} s for {len(queries)}), "
                  "one thread")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
