"""A retrieval server over HTTP, speaking Search-R1's protocol (``search_r1/search/retrieval_server.py``):

    POST <url>   {"queries": ["q1", "q2"], "topk": 3, "return_scores": true}
    200          {"result": [[{"document": {"id": "1", "contents": "\\"Title\\"\\ntext"}, "score": 0.8}, ...], ...]}

(with ``return_scores: false`` the inner items are the documents themselves; both shapes are read). A document
needs ``contents`` (or ``text``); its ``id`` is optional, as in Search-R1's client, which reads only ``contents``
(its BM25 server sends ``{"title", "text", "contents"}`` without an id when the index stores the documents). One request
carries every query of a turn. A request that fails (connection refused, timeout, HTTP error, an answer of the
wrong shape) is retried ``retries`` times, backing off 1, 2, 4 ... seconds; then the run stops with one line
naming the server and what went wrong, and the same command resumes it from its last checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
import urllib.error
import urllib.request

from sigx.retrieval.base import Passage, RetrievalError, Retriever
from sigx.retrieval.corpus import passage_from_row


class HTTPRetriever(Retriever):
    def __init__(self, url: str, timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 1.0):
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def _post(self, payload: dict) -> object:
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read().decode("utf-8"))

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
                passages.append(replace(passage, score=float(item.get("score", 0.0))))
            out.append(passages)
        return out

    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        if not queries:
            return []
        payload = {"queries": queries, "topk": k, "return_scores": True}
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return self._parse(self._post(payload), len(queries))
            except urllib.error.HTTPError as err:
                why = f"HTTP {err.code} {err.reason}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                reason = getattr(err, "reason", err)
                timed_out = isinstance(err, TimeoutError) or isinstance(reason, TimeoutError)  # socket.timeout too
                why = f"no answer within {self.timeout_s:g} s" if timed_out else f"cannot connect ({reason})"
            except ValueError as err:  # JSON that does not parse, or of the wrong shape (RetrievalError included)
                why = f"malformed answer ({err.problems[0] if isinstance(err, RetrievalError) else err})"
        raise RetrievalError(f"task.retriever.url: {self.url}: {why} after {self.retries + 1} "
                             f"attempt{'s' if self.retries else ''}; start the retrieval server (or raise "
                             "task.retriever.timeout_s), then run the same command again to resume")
