"""BM25 over a local corpus with the ``bm25s`` library (sparse-matrix BM25, Lucene's scoring by default).

The index is built once and cached beside the corpus, in ``<corpus>.bm25s/<fingerprint>/`` (or under
``index_dir``): the fingerprint is the corpus file's size, modification time and a hash of its first and last
megabyte, so an edited corpus gets a new index and an unchanged one is never re-indexed. The build writes to a
temporary directory and renames it into place, so a killed build leaves nothing half written, and a file lock
lets parallel ablation workers share one build. Tokenisation is bm25s's (lowercase, English stop words, no
stemming), the same for passages and queries. A passage's title is indexed with its text, as Pyserini's
wiki-18 BM25 index does. Passages that share no term with a query are not returned.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from sigx.retrieval.base import Passage, RetrievalError, Retriever
from sigx.retrieval.corpus import read_corpus

INDEX_VERSION = 1


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    digest = hashlib.sha256(f"{INDEX_VERSION}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        if stat.st_size > 1 << 20:
            f.seek(max(0, stat.st_size - (1 << 20)))
            digest.update(f.read())
    return digest.hexdigest()[:16]


def _cached_index(target: Path, passages: int):
    """The index cached in ``target``, or None when there is none or it cannot be used (a damaged file, or not
    the corpus's number of passages): a cache, so it is built again rather than refused."""
    import bm25s

    if not (target / "sigx_index.json").is_file():
        return None
    try:
        index = bm25s.BM25.load(str(target), show_progress=False)
    except (OSError, ValueError, KeyError, TypeError, EOFError):  # bm25s: numpy's and json's errors as they come
        return None
    scores = getattr(index, "scores", None)
    return index if isinstance(scores, dict) and scores.get("num_docs") == passages else None


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class BM25Retriever(Retriever):
    def __init__(self, index, passages: list[Passage]):
        self.index = index
        self.passages = passages

    @classmethod
    def build(cls, passages: list[Passage]) -> "BM25Retriever":
        import bm25s

        if not passages:
            raise RetrievalError("task.retriever.corpus: the corpus has no passages")
        tokens = _tokenize([f"{p.title} {p.text}" for p in passages])
        if not any(tokens):  # bm25s would fail on an empty vocabulary (max() of an empty sequence)
            raise RetrievalError(f"task.retriever.corpus: none of its {len(passages)} passages has a word BM25 can "
                                 "index (2 or more letters or digits, not an English stopword)")
        index = bm25s.BM25()
        index.index(tokens, show_progress=False)
        return cls(index, passages)

    @classmethod
    def open(cls, corpus: str | Path, index_dir: str | Path | None = None, log=print) -> "BM25Retriever":
        """The corpus's index, from the cache or built (once) and cached."""
        if importlib.util.find_spec("bm25s") is None:
            raise RetrievalError("task.retriever: kind bm25 needs the bm25s package: pip install 'sigx[search]'")
        corpus = Path(corpus).expanduser()
        passages = list(read_corpus(corpus))
        root = Path(index_dir).expanduser() if index_dir else corpus.with_name(corpus.name + ".bm25s")
        target = root / _fingerprint(corpus)
        try:
            cached = _cached_index(target, len(passages))
            if cached is not None:
                return cls(cached, passages)
            root.mkdir(parents=True, exist_ok=True)
            with open(root / ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                cached = _cached_index(target, len(passages))
                if cached is not None:
                    return cls(cached, passages)
                if (target / "sigx_index.json").is_file():
                    log(f"the cached BM25 index {target} is damaged: built again")
                log(f"indexing {len(passages)} passages of {corpus} with BM25 (once; cached in {target})")
                built = cls.build(passages)
                tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
                built.index.save(str(tmp), show_progress=False)
                (tmp / "sigx_index.json").write_text(json.dumps({"corpus": str(corpus), "passages": len(passages)}))
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
                return built
        except OSError as err:
            raise RetrievalError(f"task.retriever.index_dir: cannot write the BM25 index in {str(root)!r} "
                                 f"({err.strerror or err}); set index_dir to a writable directory") from None

    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        if not queries:
            return []
        k_eff = min(k, len(self.passages))
        ids, scores = self.index.retrieve(_tokenize(queries), k=k_eff, show_progress=False, n_threads=1)
        return [[replace(self.passages[int(i)], score=float(s))
                 for i, s in zip(row_ids, row_scores) if s > 0]
                for row_ids, row_scores in zip(ids, scores)]
