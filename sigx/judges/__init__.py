"""Search-P1's evaluators: who rates a trajectory's plan, matches its steps and scores a wrong answer.

The paper uses an LLM for all of it (arXiv 2602.22576 §5.4, App. D.3). sigx offers two judges behind one
interface (:class:`~sigx.judges.base.Judge`): :class:`~sigx.judges.rules.RuleJudge`, exact rules for tasks that
know their steps (sigx's built-in tasks), and :class:`~sigx.judges.llm.LLMJudge`, the paper's rubric sent to any
OpenAI-compatible chat endpoint.
"""

from __future__ import annotations

from sigx.config import SearchP1Config
from sigx.judges.base import Judge, JudgeError, PathEvaluation, PathRequest
from sigx.judges.rules import RuleJudge

__all__ = ["Judge", "JudgeError", "PathEvaluation", "PathRequest", "RuleJudge", "build_judge"]


def build_judge(config: SearchP1Config) -> Judge:
    if config.judge == "llm":
        from sigx.judges.llm import LLMJudge

        return LLMJudge(config.llm_judge)
    return RuleJudge()
