"""The retrieval client and the LLM judge against servers that misbehave (issue #26, item 2): each case ends in
one line (after the retries), within the timeout as a deadline for the whole request, and a score that is not
a finite number is never used."""

import json
import socketserver
import threading
import time

import pytest

from sigx.config import LLMJudgeConfig
from sigx.judges.base import JudgeError, PathRequest
from sigx.judges.llm import LLMJudge
from sigx.retrieval.base import RetrievalError
from sigx.retrieval.http import HTTPRetriever


class HostileServer:
    """Reads one HTTP request per connection and answers with ``raw`` bytes as they are (no HTTP framing added),
    one byte every ``drip_s`` seconds if set."""

    def __init__(self, raw: bytes, drip_s: float = 0.0):
        outer = self
        self.requests = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                while len(body) < length:
                    body += self.request.recv(65536)
                outer.requests += 1
                try:
                    if drip_s:
                        for i in range(len(raw)):
                            self.request.sendall(raw[i:i + 1])
                            time.sleep(drip_s)
                    else:
                        self.request.sendall(raw)
                except OSError:
                    pass  # the client hung up: what a deadline does

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def http_200(body: bytes, length: int | None = None) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
            str(len(body) if length is None else length).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def chat(content: str) -> bytes:
    return http_200(json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
                    .encode())


DEEP = b"[" * 100_000 + b"]" * 100_000
RUBRIC = {"planner_score": 1.0, "model_plan_steps": 3, "effective_steps_self": 2, "effective_steps_ref": 1,
          "outcome_accuracy_score": 0.5, "outcome_reasoning_score": 0.8}

# (case, raw answer, what the one line says)
RETRIEVER_CASES = [
    ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n", "not a valid HTTP answer"),
    ("short-body", http_200(b'{"result": [[', length=500), "ended before its declared length"),
    ("deep-json", http_200(DEEP), "JSON nested too deep"),
    ("null-score", http_200(b'{"result": [[{"document": {"contents": "\\"A\\"\\nb"}, "score": null}]]}'),
     "score is None, not a finite number"),
    ("nan-score", http_200(b'{"result": [[{"document": {"contents": "\\"A\\"\\nb"}, "score": NaN}]]}'),
     "NaN is not a JSON number"),
    ("not-json", http_200(b"<html>it works</html>"), "not JSON"),
    ("binary", http_200(b"\xff\xfe\x00garbage"), "not UTF-8 text"),
    ("empty", b"", "not a valid HTTP answer"),
]


@pytest.fixture
def hostile():
    servers = []

    def start(raw, drip_s=0.0):
        servers.append(HostileServer(raw, drip_s))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.mark.parametrize("case, raw, expected", RETRIEVER_CASES, ids=[c[0] for c in RETRIEVER_CASES])
def test_a_retrieval_server_that_answers_nonsense_is_one_line_after_the_retries(hostile, case, raw, expected):
    server = hostile(raw)
    with pytest.raises(RetrievalError) as err:
        HTTPRetriever(server.url + "/retrieve", timeout_s=5, retries=1, backoff_s=0.01).search(["q"], k=1)
    message = str(err.value)
    assert "\n" not in message and expected in message and "after 2 attempts" in message, message
    assert server.requests == 2


def test_a_dripping_retrieval_server_is_cut_at_the_deadline(hostile):
    server = hostile(http_200(b'{"result": [[]]}'), drip_s=0.5)
    started = time.perf_counter()
    with pytest.raises(RetrievalError, match="no answer within 1 s after 1 attempt;"):
        HTTPRetriever(server.url, timeout_s=1, retries=0).search(["q"], k=1)
    assert time.perf_counter() - started < 1.8


def request() -> PathRequest:
    return PathRequest(question="q", golden_answers=("a",), reference_plan=(), reference_path=("s",),
                       trajectory="t", planned=("x",), executed=("x",), executed_as_planned=("x",), answer="b",
                       correct=False)


def judge(url: str, tmp_path, **config) -> LLMJudge:
    return LLMJudge(LLMJudgeConfig(base_url=url, model="m", cache_path=str(tmp_path / "c.sqlite"),
                                   **{"max_retries": 1, "timeout_s": 5, **config}), backoff_s=0.01)


JUDGE_CASES = [
    ("not-http", b"220 smtp ready\r\n", "cannot get an answer", "not a valid HTTP answer"),
    ("short-body", http_200(b'{"choices": [', length=400), "cannot get an answer", "ended before"),
    ("non-json-200", http_200(b"OK"), "cannot get an answer", "not JSON"),
    ("deep-json", http_200(DEEP), "cannot get an answer", "nested too deep"),
    ("not-a-completion", http_200(b'{"choices": "none"}'), "gave no valid evaluation", "not a chat completion"),
    ("deep-content", chat("{" + '"a":' * 0 + "[" * 50_000 + "]" * 50_000 + "}"), "gave no valid evaluation",
     "invalid JSON"),
    ("infinite-count", chat(json.dumps(RUBRIC).replace('"model_plan_steps": 3', '"model_plan_steps": Infinity')),
     "gave no valid evaluation", "Infinity is not a JSON number"),
    ("huge-count", chat(json.dumps({**RUBRIC, "effective_steps_ref": 1e300})), "gave no valid evaluation",
     "effective_steps_ref is 1e+300"),
    ("nan-score", chat(json.dumps(RUBRIC).replace('"planner_score": 1.0', '"planner_score": NaN')),
     "gave no valid evaluation", "NaN is not a JSON number"),
    ("null-score", chat(json.dumps({**RUBRIC, "outcome_accuracy_score": None})), "gave no valid evaluation",
     "outcome_accuracy_score is None"),
    ("string-score", chat(json.dumps({**RUBRIC, "planner_score": "1.0"})), "gave no valid evaluation",
     "planner_score is 1.0, not a finite number"),
]


@pytest.mark.parametrize("case, raw, kind, expected", JUDGE_CASES, ids=[c[0] for c in JUDGE_CASES])
def test_an_llm_judge_endpoint_that_answers_nonsense_is_one_line(hostile, tmp_path, case, raw, kind, expected):
    server = hostile(raw)
    with pytest.raises(JudgeError) as err:
        judge(server.url + "/v1", tmp_path).evaluate([request()])
    message = str(err.value)
    assert len(err.value.problems) == 1 and "\n" not in message, message
    assert kind in message and expected in message, message
    assert server.requests == 2  # asked again once (max_retries 1), then stopped


def test_a_dripping_judge_endpoint_is_cut_at_the_deadline(hostile, tmp_path):
    server = hostile(chat(json.dumps(RUBRIC)), drip_s=0.5)
    started = time.perf_counter()
    with pytest.raises(JudgeError, match="no answer within 1 s"):
        judge(server.url + "/v1", tmp_path, timeout_s=1, max_retries=0).evaluate([request()])
    assert time.perf_counter() - started < 1.8


def test_a_client_error_is_not_retried(hostile, tmp_path):
    server = hostile(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with pytest.raises(JudgeError, match="answered HTTP 404 Not Found for model 'm'"):
        judge(server.url + "/v1", tmp_path, max_retries=3).evaluate([request()])
    assert server.requests == 1


def test_the_one_retry_loop_backs_off_and_stops_at_a_failure_that_cannot_pass(monkeypatch):
    """sigx.http_json.with_retries serves the retriever and the judge: 1, 2, 4 x backoff between tries, a
    ValueError (an answer of the wrong shape) retried like a transport failure, a 4xx not retried."""
    import sigx.http_json as http_json

    slept = []
    monkeypatch.setattr(http_json.time, "sleep", slept.append)
    failures = iter([http_json.HTTPFailure("HTTP 503"), ValueError("no passages"), http_json.HTTPFailure("HTTP 502")])

    def flaky():
        raise next(failures)

    with pytest.raises(http_json.GaveUp) as gave_up:
        http_json.with_retries(flaky, retries=2, backoff_s=0.5)
    assert slept == [0.5, 1.0] and gave_up.value.attempts == 3 and str(gave_up.value.last) == "HTTP 502"
    calls = []

    def refused():
        calls.append(1)
        raise http_json.HTTPFailure("HTTP 401 Unauthorized", retryable=False, status=401)

    with pytest.raises(http_json.GaveUp) as gave_up:
        http_json.with_retries(refused, retries=5)
    assert len(calls) == 1 and gave_up.value.attempts == 1
    answers = iter([ValueError("bad"), {"ok": 1}])

    def second_time_lucky():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert http_json.with_retries(second_time_lucky, retries=1, backoff_s=0) == {"ok": 1}
