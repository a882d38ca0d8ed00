"""Retrievers for agentic search: one small interface, batched (one call per turn for every row that searched).

- ``bm25`` (:mod:`.bm25`): sigx's own index over a local corpus file, built once with the ``bm25s`` library and
  cached on disk beside the corpus;
- ``http`` (:mod:`.http`): a retrieval server speaking the protocol of Search-R1's ``retrieval_server.py``
  (dense E5 retrieval over the 2018 Wikipedia dump is that server's job: sigx does not embed).

A retriever returns, for each query, its top passages best first. Every failure a user can cause or meet (a
missing corpus, a server that is down, slow or answers nonsense) is a :class:`RetrievalError` whose message is
one line naming ``task.retriever`` and what to do.
"""

from __future__ import annotations

from sigx.config import RetrieverConfig
from sigx.retrieval.base import Passage, RetrievalError, Retriever
from sigx.retrieval.bm25 import BM25Retriever
from sigx.retrieval.http import HTTPRetriever


def build_retriever(config: RetrieverConfig) -> Retriever:
    if config.kind == "bm25":
        return BM25Retriever.open(config.corpus, config.index_dir)
    return HTTPRetriever(config.url, timeout_s=config.timeout_s, retries=config.retries)


__all__ = ["BM25Retriever", "HTTPRetriever", "Passage", "RetrievalError", "Retriever", "build_retriever"]
