"""Search-P1's evaluator LLM behind any OpenAI-compatible chat endpoint (a local ``vllm serve``, a hosted API).

The prompt is the paper's dual-track evaluation prompt (arXiv 2602.22576 App. D.3, Figure 9), with its inputs
(question, correct answer, reference planner, reference path, model trajectory), its scoring scales and its
JSON output fields; sigx adds one sentence per count field saying what it counts (the figure names them only)
and asks for the JSON object alone. The reply's scores are snapped to the paper's scales and its counts
clamped to what the trajectory can hold (:func:`sigx.judges.base.consistent`).

Operational: requests of a step go out concurrently (``concurrency`` at once) to ``<base_url>/chat/completions``
through :mod:`sigx.http_json` (``timeout_s`` is a deadline for the whole request, not per socket read, which
the openai client cannot give); transport failures, 408 / 429 / 5xx and a reply that is not the rubric's JSON
with finite scores are asked again, backing off 1, 2, 4 ... s, up to ``max_retries``; after that (or at once
for another 4xx) the run stops with one line (:class:`~sigx.judges.base.JudgeError`) and resumes from its
checkpoint. Evaluations are cached in SQLite by (model, prompt): a resumed run or a
second cell on the same trajectories asks nothing twice. Temperature 0, so the cache loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sigx.config import LLMJudgeConfig
from sigx.http_json import GaveUp, HTTPFailure, finite_number, loads_strict, post_json, with_retries
from sigx.judges.base import Judge, JudgeError, PathEvaluation, PathRequest, consistent

PROMPT_VERSION = "search-p1-d3-v1"  # part of the cache key: a changed prompt never reuses old answers
FIELDS = ("planner_score", "model_plan_steps", "effective_steps_self", "effective_steps_ref",
          "outcome_accuracy_score", "outcome_reasoning_score")
COUNT_FIELDS = {"model_plan_steps", "effective_steps_self", "effective_steps_ref"}

PROMPT = """You are an expert RL researcher evaluating an AI agent's trajectory. Your task is to conduct a Dual-Track Evaluation:
1. Self-Consistency Track: How well did the agent execute its OWN plan?
2. Reference-Alignment Track: How well did the agent follow the Expert plan?
3. Outcome Evaluation: Assess accuracy and reasoning quality.

Evaluation Inputs:
- Question: {question}
- Correct Answer: {golden_answers}
- Reference Planner: {reference_plan}
- Reference Path:
{reference_path}
- Model Trajectory:
{trajectory}

Scoring Criteria:
- Planner Score: 0.2 (Bad) / 0.6 (Average) / 1.0 (Good) / 1.2 (Excellent)
- Outcome Accuracy: 0.0 (Wrong) / 0.5 (Partial) / 1.0 (Correct)
- Reasoning Quality: 0.0 / 0.5 / 0.8 / 1.0

Counts: model_plan_steps is the number of steps in the agent's own plan; effective_steps_self is how many of those planned steps the agent actually executed; effective_steps_ref is how many steps of the Reference Path the trajectory accomplished, in any order (match steps by meaning, not wording).

Output: JSON with planner_score, model_plan_steps, effective_steps_self, effective_steps_ref, outcome_accuracy_score, outcome_reasoning_score. Reply with the JSON object only."""


def render_prompt(r: PathRequest) -> str:
    path = "\n".join(f"{i}. {step}" for i, step in enumerate(r.reference_path, 1)) or "(none)"
    return PROMPT.format(question=r.question, golden_answers=" | ".join(r.golden_answers) or "(unknown)",
                         reference_plan=", ".join(r.reference_plan) or "(none)", reference_path=path,
                         trajectory=r.trajectory)


def parse_evaluation(text: str) -> PathEvaluation:
    """The rubric's JSON object in a reply (fenced or bare); ValueError when there is none or a field is
    missing or not a finite number (a NaN score would otherwise snap to the lowest score and become a reward)."""
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    if match is None:
        raise ValueError("no JSON object in the reply")
    try:
        data = loads_strict(match.group(0))
    except ValueError as err:
        raise ValueError(f"invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")
    missing = [f for f in FIELDS if f not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    values = {f: finite_number(data[f]) for f in FIELDS}
    wrong = [f for f, v in values.items() if v is None or (f in COUNT_FIELDS and abs(v) > 1e6)]
    if wrong:
        raise ValueError(f"{wrong[0]} is {str(data[wrong[0]])[:20]}, not a finite number of the rubric's range")
    return PathEvaluation(**{f: int(round(v)) if f in COUNT_FIELDS else v for f, v in values.items()})


def cache_key(model: str, prompt: str) -> str:
    return hashlib.sha256(json.dumps([PROMPT_VERSION, model, prompt]).encode()).hexdigest()


class EvaluationCache:
    """(key -> evaluation JSON) in SQLite: safe for several processes (ablation workers) on one file. A file
    that cannot be opened for writing (a read-only cache) leaves a cache in memory only."""

    def __init__(self, path: Path):
        self.memory: dict[str, str] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=60)
            self.db.execute("CREATE TABLE IF NOT EXISTS evaluations (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.commit()
        except (OSError, sqlite3.Error):
            self.db = None

    def get_many(self, keys: list[str]) -> dict[str, str]:
        found = {k: self.memory[k] for k in keys if k in self.memory}
        wanted = [k for k in set(keys) if k not in found]
        if self.db is not None:
            try:
                for i in range(0, len(wanted), 500):
                    chunk = wanted[i:i + 500]
                    rows = self.db.execute(f"SELECT key, value FROM evaluations WHERE key IN "
                                           f"({','.join('?' * len(chunk))})", chunk).fetchall()
                    found.update(rows)
            except sqlite3.Error:  # a file of another schema, damaged since it opened: a cache in memory only
                self.db = None
        return found

    def put_many(self, items: dict[str, str]) -> None:
        self.memory.update(items)
        if self.db is not None and items:
            try:
                with self.db:
                    self.db.executemany("INSERT OR REPLACE INTO evaluations VALUES (?, ?)", list(items.items()))
            except sqlite3.Error:  # a cache that cannot be written (read-only file): keep what is in memory
                pass


def _evaluation_json(e: PathEvaluation) -> str:
    return json.dumps({f: getattr(e, f) for f in FIELDS})


def _cached_evaluation(text) -> PathEvaluation | None:
    """A cached evaluation, or None for an entry that is not one (edited by hand, or written by a sigx whose
    evaluation had other fields): the judge is asked again and the entry overwritten, never a traceback."""
    try:
        data = loads_strict(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(FIELDS) or any(finite_number(v) is None for v in data.values()):
        return None
    return PathEvaluation(**data)


def reply_content(answer: object) -> str:
    """The message text of an OpenAI chat-completion answer; ValueError for an answer of another shape."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise ValueError("not a chat completion (no choices[0].message.content)")
    return content


class LLMJudge(Judge):
    def __init__(self, config: LLMJudgeConfig, backoff_s: float = 1.0):
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(config.api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.backoff_s = backoff_s
        default = Path(os.environ.get("SIGX_CACHE", Path.home() / ".cache" / "sigx")) / "judge" / "evaluations.sqlite"
        self.cache = EvaluationCache(Path(config.cache_path).expanduser() if config.cache_path else default)
        self.requests_sent = 0
        self.cache_hits = 0

    def evaluate(self, requests: list[PathRequest]) -> list[PathEvaluation]:
        prompts = [render_prompt(r) for r in requests]
        keys = [cache_key(self.config.model, p) for p in prompts]
        cached = {k: _cached_evaluation(text) for k, text in self.cache.get_many(keys).items()}
        found = {k: e for k, e in cached.items() if e is not None}
        todo = {k: p for k, p in zip(keys, prompts) if k not in found}  # identical prompts are asked once
        self.cache_hits += sum(k in found for k in keys)
        if todo:
            with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
                answers = dict(zip(todo, pool.map(self._ask, todo.values())))
            self.cache.put_many({k: _evaluation_json(e) for k, e in answers.items()})
            found.update(answers)
        return [consistent(found[k], len(r.executed), len(r.reference_path)) for k, r in zip(keys, requests)]

    def _ask(self, prompt: str) -> PathEvaluation:
        c = self.config
        payload = {"model": c.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0,
                   "max_tokens": c.max_tokens, **({"response_format": {"type": "json_object"}} if c.json_mode else {})}

        def attempt() -> PathEvaluation:
            answer = post_json(self.url, payload, c.timeout_s, self.headers)
            self.requests_sent += 1
            return parse_evaluation(reply_content(answer))

        try:
            return with_retries(attempt, c.max_retries, self.backoff_s)
        except GaveUp as gave_up:
            err = gave_up.last
            if isinstance(err, HTTPFailure) and not err.retryable:
                raise JudgeError(f"techniques.search_p1.llm_judge: {c.base_url} answered {err.why} for model "
                                 f"{c.model!r}") from None
            if isinstance(err, HTTPFailure):
                raise JudgeError(f"techniques.search_p1.llm_judge: cannot get an answer from {c.base_url} "
                                 f"({err.why}, after {c.max_retries} retries); is the server up?") from None
            raise JudgeError(f"techniques.search_p1.llm_judge: {c.model!r} at {c.base_url} gave no valid "
                             f"evaluation in {c.max_retries + 1} tries (last: {err})") from None

    def stats(self) -> dict[str, float]:
        return {"judge_requests": float(self.requests_sent), "judge_cache_hits": float(self.cache_hits)}
