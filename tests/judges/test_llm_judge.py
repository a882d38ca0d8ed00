"""The LLM judge against a local stub of an OpenAI-compatible chat endpoint (no network): the paper's rubric is
sent, replies are parsed and snapped to the paper's scales, failures are retried, answers cached, requests run
concurrently, and a dead server is one line."""

import json
import threading
import time

import pytest
from json_stub import JsonStubServer

from sigx.config import LLMJudgeConfig
from sigx.judges.base import JudgeError, PathEvaluation, PathRequest
from sigx.judges.llm import LLMJudge, parse_evaluation, render_prompt

REPLY = {"planner_score": 1.0, "model_plan_steps": 3, "effective_steps_self": 2, "effective_steps_ref": 1,
         "outcome_accuracy_score": 0.5, "outcome_reasoning_score": 0.8}


def request(question="Who leads Art Brut?", executed=("a", "b", "c", "d")) -> PathRequest:
    return PathRequest(question=question, golden_answers=("Eddie Argos",), reference_plan=("band", "singer"),
                       reference_path=("Bang Bang Rock & Roll album", "lead singer of Art Brut"),
                       trajectory="<reasoning>...</reasoning>", planned=("x", "y", "z"), executed=executed,
                       executed_as_planned=executed, answer="Argos", correct=False)


class StubServer(JsonStubServer):
    """Answers /v1/chat/completions with ``replies`` in turn (the last one repeats): a dict is sent as the
    message content (JSON), a string as is, an int as that HTTP status."""

    def __init__(self, replies, delay=0.0):
        self.replies, self.delay, self.bodies, self.in_flight, self.max_in_flight = list(replies), delay, [], 0, 0
        self.lock = threading.Lock()
        super().__init__(self.respond, "/v1")

    def respond(self, body):
        with self.lock:
            self.bodies.append(body)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        if isinstance(reply, int):
            return reply, None
        content = json.dumps(reply) if isinstance(reply, dict) else reply
        return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content}}]}


@pytest.fixture
def stub_factory():
    servers = []

    def make(replies, delay=0.0):
        servers.append(StubServer(replies, delay))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def judge(url, tmp_path, **config) -> LLMJudge:
    return LLMJudge(LLMJudgeConfig(base_url=url, model="evaluator", cache_path=str(tmp_path / "cache.sqlite"),
                                   **{"max_retries": 1, "timeout_s": 5, **config}), backoff_s=0.01)


def test_the_papers_rubric_is_sent_and_the_reply_parsed(stub_factory, tmp_path):
    stub = stub_factory([REPLY])
    (evaluation,) = judge(stub.url, tmp_path).evaluate([request()])
    assert evaluation == PathEvaluation(1.0, 3, 2, 1, 0.5, 0.8)
    body = stub.bodies[0]
    prompt = body["messages"][0]["content"]
    assert body["model"] == "evaluator" and body["temperature"] == 0.0
    assert body["response_format"] == {"type": "json_object"}
    for text in ("Dual-Track Evaluation", "Planner Score: 0.2 (Bad) / 0.6 (Average) / 1.0 (Good) / 1.2 (Excellent)",
                 "Correct Answer: Eddie Argos", "1. Bang Bang Rock & Roll album", "2. lead singer of Art Brut",
                 "Reference Planner: band, singer", "<reasoning>...</reasoning>"):
        assert text in prompt


def test_replies_are_snapped_to_the_papers_scales_and_counts_clamped(stub_factory, tmp_path):
    stub = stub_factory(["```json\n" + json.dumps({**REPLY, "planner_score": 1.15, "outcome_accuracy_score": 0.4,
                                                    "effective_steps_self": 9, "effective_steps_ref": 7}) + "\n```"])
    (e,) = judge(stub.url, tmp_path).evaluate([request()])
    # 1.15 -> 1.2, 0.4 -> 0.5; planned steps executed <= plan steps (3); reference steps covered <= |R_ref| (2)
    assert (e.planner_score, e.outcome_accuracy_score, e.effective_steps_self, e.effective_steps_ref) == (1.2, 0.5, 3, 2)


def test_a_server_error_and_a_malformed_reply_are_retried(stub_factory, tmp_path):
    stub = stub_factory([500, "I think it is good", REPLY])
    (e,) = judge(stub.url, tmp_path, max_retries=2).evaluate([request()])
    assert e.planner_score == 1.0 and len(stub.bodies) == 3


def test_answers_are_cached_across_judges(stub_factory, tmp_path):
    stub = stub_factory([REPLY])
    first = judge(stub.url, tmp_path)
    first.evaluate([request(), request()])  # the same prompt twice: asked once
    assert len(stub.bodies) == 1
    second = judge(stub.url, tmp_path)  # a resumed run: a new judge on the same cache file
    second.evaluate([request()])
    assert len(stub.bodies) == 1 and second.stats() == {"judge_requests": 0.0, "judge_cache_hits": 1.0}


@pytest.mark.parametrize("stored", ["{", json.dumps({**REPLY, "extra_field": 1}), json.dumps({"planner_score": 1.0}),
                                    json.dumps({**REPLY, "planner_score": "high"}), "null"])
def test_a_cached_entry_that_is_no_evaluation_is_asked_again_and_overwritten(stub_factory, tmp_path, stored):
    """Edited by hand, or written by a sigx whose evaluation had other fields: was a traceback (json or
    PathEvaluation(**...)); a cache is asked again."""
    import sqlite3

    stub = stub_factory([REPLY])
    judge(stub.url, tmp_path).evaluate([request()])
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        db.execute("UPDATE evaluations SET value = ?", (stored,))
    again = judge(stub.url, tmp_path)
    assert again.evaluate([request()]) == [PathEvaluation(1.0, 3, 2, 1, 0.5, 0.8)] and len(stub.bodies) == 2
    assert again.stats()["judge_cache_hits"] == 0.0
    third = judge(stub.url, tmp_path)  # the entry was overwritten with the fresh answer
    assert third.evaluate([request()]) == [PathEvaluation(1.0, 3, 2, 1, 0.5, 0.8)] and len(stub.bodies) == 2


def test_a_cache_file_of_another_schema_leaves_a_cache_in_memory(stub_factory, tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        db.execute("CREATE TABLE evaluations (id INTEGER)")  # no key, no value: SELECT fails
    stub = stub_factory([REPLY])
    j = judge(stub.url, tmp_path)
    assert j.evaluate([request()]) == [PathEvaluation(1.0, 3, 2, 1, 0.5, 0.8)]
    assert j.evaluate([request()]) == [PathEvaluation(1.0, 3, 2, 1, 0.5, 0.8)] and len(stub.bodies) == 1


def test_requests_run_concurrently(stub_factory, tmp_path):
    stub = stub_factory([REPLY], delay=0.3)
    started = time.perf_counter()
    judge(stub.url, tmp_path, concurrency=4).evaluate([request(question=f"q{i}") for i in range(8)])
    assert stub.max_in_flight == 4 and time.perf_counter() - started < 8 * 0.3


def test_a_dead_server_is_one_line(tmp_path):
    with pytest.raises(JudgeError) as err:
        judge("http://127.0.0.1:9/v1", tmp_path, max_retries=0).evaluate([request()])
    assert len(err.value.problems) == 1 and "\n" not in str(err.value)
    assert "search_p1.llm_judge" in str(err.value) and "127.0.0.1:9" in str(err.value)


def test_replies_that_never_parse_end_in_one_line(stub_factory, tmp_path):
    stub = stub_factory(['{"planner_score": 1.0}'])
    with pytest.raises(JudgeError, match="no valid evaluation in 2 tries .*missing model_plan_steps"):
        judge(stub.url, tmp_path).evaluate([request()])


def test_parse_evaluation_rejects_what_is_not_the_rubric():
    for text in ("", "no json here", "[1, 2]", '{"planner_score": "good"}'):
        with pytest.raises(ValueError):
            parse_evaluation(text)
    assert render_prompt(request()).count("{") == 0  # every placeholder filled


@pytest.mark.parametrize("url", ["localhost:8000/v1", "http:///v1", "ws://h/v1", ""])
def test_an_endpoint_that_is_no_http_url_is_refused_when_the_recipe_is_read(url):
    from sigx.config import RecipeError, recipe_from_data

    with pytest.raises(RecipeError) as err:
        recipe_from_data({"techniques": {"search_p1": {"judge": "llm", "llm_judge": {"base_url": url}}}})
    assert len(err.value.problems) == 1
    assert "techniques.search_p1.llm_judge.base_url: " in err.value.problems[0], err.value.problems
    assert "is not an http(s) URL with a host" in err.value.problems[0]
