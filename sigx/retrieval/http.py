"""A retrieval server over HTTP, speaking Search-R1's protocol (``search_r1/search/retrieval_server.py``):

    POST <url>   {"queries": ["q1", "q2"], "topk": 3, "return_scores": true}
    200          {"result": [[{"document": {"id": "1", "contents": "\\"Title\\"\\ntext"}, "score": 0.8}, ...], ...]}

(with ``return_scores: false`` the inner items are the documents themselves; both shapes are read). A document
needs ``contents`` (or ``text``); its ``id`` is optional, as in Search-R1's client, which reads only ``contents``
(its BM25 server sends ``{"title", "text", "contents"}`` without an id when the index stores the documents). One request
carries every query of a turn. A request that fails (connection refused, no whole answer within ``timeout_s``, HTTP error, an answer that is
not strict JSON of this shape, a score that is not a finite number) is retried ``retries`` times, backing off
1, 2, 4 ... seconds (a 4xx other than 408 / 429 is not retried); then the run stops with one line naming the
server and what went wrong, and the same command resumes it from its last checkpoint.
"""

from __future__ import annotations

from dataclasses import replace

from sigx.http_json import GaveUp, HTTPFailure, finite_number, post_json, with_retries
from sigx.retrieval.base import Passage, RetrievalError, Retriever
from sigx.retrieval.corpus import passage_from_row


class HTTPRetriever(Retriever):
    def __init__(self, url: str, timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 1.0):
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def _parse(self, answer: object, n: int) -> list[list[Passage]]:
        rows = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(rows, list) or len(rows) != n or not all(isinstance(r, list) for r in rows):
            raise ValueError(f"expected {{\"result\": [one list of documents per query]}} for {n} queries")
        out = []
        for row in rows:
            passages = []
            for item in row:
                if not isinstance(item, dict):
                    raise ValueError("a result item is not an object")
                passage = passage_from_row(item.get("document", item), "server answer", "task.retriever.url",
                                           need_id=False)
                score = finite_number(item.get("score", 0.0))
                if score is None:
                    raise ValueError(f"a document's score is {str(item.get('score'))[:20]}, not a finite number")
                passages.append(replace(passage, score=score))
            out.append(passages)
        return out

    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        if not queries:
            return []
        payload = {"queries": queries, "topk": k, "return_scores": True}
        try:
            return with_retries(lambda: self._parse(post_json(self.url, payload, self.timeout_s), len(queries)),
                                self.retries, self.backoff_s)
        except GaveUp as gave_up:
            err = gave_up.last  # transport, HTTP status, a body that is not JSON: HTTPFailure; else the wrong shape
            why = err.why if isinstance(err, HTTPFailure) else \
                f"malformed answer ({err.problems[0] if isinstance(err, RetrievalError) else err})"
            raise RetrievalError(f"task.retriever.url: {self.url}: {why} after {gave_up.attempts} "
                                 f"attempt{'s' if gave_up.attempts > 1 else ''}; start the retrieval server (or raise "
                                 "task.retriever.timeout_s), then run the same command again to resume") from None
