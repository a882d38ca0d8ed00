"""What tasks for hub instruct models share: critiques asked and answered in plain language.

The built-in tasks speak a compact format the tiny model was warm-started on (``...verdict:`` -> ``yes``). An
instruct model has been tuned on none of that; it understands an instruction. So GC-RL's second-order prompt
becomes a user message (the rollout engine wraps it in the model's chat template, as it does every prompt)
that shows the question and the proposed answer and asks for a short judgement ending in a fixed verdict line,
which :meth:`NaturalCritique.parse_verdict` reads. A critique that never states a verdict gets ``None``
(GC-RL's critique reward treats it as wrong), so format is learned along with judgement.
"""

from __future__ import annotations

import re

from sigx.tasks.base import Problem, Segment

CRITIQUE_REQUEST = (
    "Below is a question and a proposed answer written by someone else.\n\n"
    "Question:\n{question}\n\n"
    "Proposed answer:\n{response}\n\n"
    "Is the proposed answer's final result correct? Reason briefly, then end your reply with exactly one line: "
    "'Verdict: yes' if it is correct or 'Verdict: no' if it is not."
)
REFINEMENT_REQUEST = (
    "Below is a question, a proposed answer and a reviewer's critique of it.\n\n"
    "Question:\n{question}\n\n"
    "Proposed answer:\n{response}\n\n"
    "Critique:\n{critique}\n\n"
    "Taking the critique into account, solve the task again from the start.\n\n{task}"
)
_VERDICT = re.compile(r"verdict\s*:\s*\**\s*(yes|no)\b", re.IGNORECASE)


class NaturalCritique:
    """Mixin for :class:`sigx.tasks.base.Task`: natural-language critique prompts and verdict parsing."""

    def question_text(self, problem: Problem) -> str:
        """The question as the critic should see it (without the solving instructions)."""
        return problem.meta.get("question", problem.prompt)

    def critique_prompt(self, problem: Problem, transcript: list[Segment]) -> str:
        response = "".join(s.text for s in transcript).strip()
        return CRITIQUE_REQUEST.format(question=self.question_text(problem), response=response)

    def refinement_prompt(self, problem: Problem, transcript: list[Segment], critique: str) -> str:
        response = "".join(s.text for s in transcript).strip()
        return REFINEMENT_REQUEST.format(question=self.question_text(problem), response=response,
                                         critique=critique.strip(), task=problem.prompt)

    def critique_demonstration(self, problem: Problem, transcript: list[Segment], correct: bool,
                               verify: bool = False) -> list[Segment]:
        return [Segment(f"Verdict: {'yes' if correct else 'no'}", True)]

    def parse_verdict(self, text: str) -> bool | None:
        found = _VERDICT.findall(text)
        return found[-1].lower() == "yes" if found else None
