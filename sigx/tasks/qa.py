"""Agentic retrieval QA, as Search-R1, Search-P1 and SORL train and evaluate it (``task: {name: search_qa}``).

Questions come from QA data sets in Search-R1's format (``question``, ``golden_answers``; NQ + HotpotQA for
training, seven benchmarks for evaluation, each reported on its own); the model searches a real retriever
(:mod:`sigx.retrieval`: BM25 over a local corpus, or Search-R1's retrieval server) and answers.

- **Templates.** ``search_r1``: Search-R1's prompt (its ``make_prefix``: the question stripped, a ``?``
  appended), ``<search> q </search>`` actions, results in ``<information>`` exactly as Search-R1's
  ``llm_agent/generation.py`` renders them, and its episode rules (below). ``search_p1``: Search-P1's prompt
  (App. D.1, Figure 7): a plan of sub-questions in the first ``<reasoning>``, ``<tool_call>`` searches answered by
  ``<tool_response>``. ``compact``: ``q:question`` / ``s[query]`` / ``o:results`` / ``a[answer]`` in lowercase,
  for the tiny model.
- **Episode.** At most ``max_searches`` environment replies (Search-P1's action budget B = 4, App. B.4;
  Search-R1's ``max_turns``), top-``topk`` passages per search (3 in both papers); all searches of a turn go to
  the retriever in one batch. Each reply is capped at ``max_observation_tokens`` tokens (per turn, as Search-R1's
  ``max_obs_length``; by the rollout, in the model's tokens), cutting the passages and never the closing tag.
  With ``force_answer`` the environment opens ``<answer>`` after the last search and the model completes it
  (Search-P1 Alg. 2, lines 15-16). Retrieved text is environment tokens, masked from the loss.
- **Search-R1's rules** (template ``search_r1``, from its ``generation.py``): a turn's action is its *first*
  ``<search>``/``<answer>`` pair; a turn without one (no tags, cut by the token limit, or ended by EOS) gets
  Search-R1's "My previous action is invalid ..." message and the episode goes on, until an answer or the turn
  limit; no forced answer (``force_answer`` defaults off); passages rendered by ``_passages2string`` from the
  document's ``contents`` as served (title line with its quotes, text with its newlines, no word cut) and
  stripped, inside ``\\n\\n<information>...</information>\\n\\n``. The other templates keep sigx's rules: the
  action a turn *ends* in, an episode ends on a turn without one, passages cut to ``passage_words`` (100).
  What still differs from Search-R1 is listed in docs/search.md.
- **Scoring** (Search-R1's ``qa_em.py``; SQuAD's normalisation: lowercase, punctuation and the articles a / an /
  the removed, whitespace collapsed) of the answer of the episode's last turn: ``em`` = equal to a golden answer;
  ``acc`` = a golden answer contained in it. Search-R1 reads the last ``<answer>`` of prompt + response, so a
  response without an answer is scored on the prompt's own "<answer> Beijing </answer>" example; sigx reads the
  response only (docs/search.md gives the difference's size). Search-P1 §4.1 reports ACC as "the ground-truth
  answer is contained in the model's generated response"; sigx reads "response" as the response's answer
  (containment in the whole response would also credit answers copied into reasoning), and says so here. The
  outcome reward is ``em`` (Search-R1's training reward) or ``acc`` (``task.reward``); both are logged per
  held-out set. Blank golden answers are dropped (Search-R1 keeps them; a blank gold matches a blank answer).
- **Search-P1 on this task**: the plan is the numbered list of the first ``<reasoning>`` (``search_p1``
  template), the executed steps are the search queries; a row's ``reference_path`` (e.g. Search-P1's
  ``<correct_reasoning_path>`` queries, App. D.2) and ``reference_plan`` columns feed the reference track. Free
  text queries rarely match a reference step word for word: use the LLM judge (``techniques.search_p1.judge:
  llm``), as the paper does.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from sigx.answers import normalize_answer
from sigx.config import QADataSource, QASearchTaskConfig, RecipeError
from sigx.retrieval import Passage, build_retriever
from sigx.tasks.base import Format, Problem, Score, Segment, Task
from sigx.tasks.natural import NaturalCritique
from sigx.tasks.rows import (MalformedColumn, absent, check_step_columns, load_hub_rows, read_rows, steps_column,
                              texts)

SEARCH_R1_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get "
    "new information. After reasoning, if you find you lack some knowledge, you can call a search engine by "
    "<search> query </search> and it will return the top searched results between <information> and "
    "</information>. You can search as many times as your want. If you find no further external knowledge "
    "needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. "
    "For example, <answer> Beijing </answer>. Question: {question}\n"
)
SEARCH_P1_PROMPT = (
    "You are a meticulous Deep Research Agent. Your goal is to provide a comprehensive and accurate answer by "
    "conducting multiple rounds of search.\n## CRITICAL INSTRUCTIONS\n"
    "1. Detailed Planning (<reasoning>): In the first turn, you MUST break the question down into multiple "
    "dependent sub-questions. Focus on one sub-question at a time.\n"
    "2. Step-by-Step Execution (<tool_call>): Execute only ONE search query per turn. After receiving results, "
    "verify: \"Is this sufficient? Do I need more details?\"\n"
    "3. No Guessing: If results are incomplete, issue another search. Do NOT hallucinate.\n"
    "4. Final Answer (<answer>): Only output <answer> when ALL necessary information is gathered.\n"
    "## CURRENT TASK\nQuestion: {question}\n"
)


#: Search-R1's reply to a turn without a valid action (``execute_predictions``); the episode goes on
SEARCH_R1_INVALID_ACTION = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and </search>. "
    "If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.\n"
)
#: Search-R1's action: the first ``<search>`` or ``<answer>`` pair of a turn (``postprocess_predictions``)
SEARCH_R1_ACTION = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)


@dataclass(frozen=True)
class Template:
    prompt: str
    search: tuple[str, str]
    answer: tuple[str, str]
    results: tuple[str, str]
    plan: tuple[str, str] | None = None
    lowercase: bool = False
    #: Search-R1's episode rules and rendering (see the module docstring); the other templates keep sigx's
    search_r1_rules: bool = False

    def passages(self, found: list[Passage], words: int | None) -> str:
        if self.search_r1_rules:
            return search_r1_passages(found, words)
        words = 100 if words is None else words
        if self.lowercase:
            return " | ".join(f"{p.title}: {_words(p.text, words)}".lower() for p in found) or "none"
        return "".join(f"Doc {i + 1}(Title: {p.title}) {_words(p.text, words)}\n" for i, p in enumerate(found))

    def observation(self, found: list[Passage], words: int | None) -> tuple[str, str]:
        """(what the per-turn cap may cut, the closing tag it never cuts). Under Search-R1's rules the passages
        are stripped as its ``execute_predictions`` does: ``\\n\\n<information>{...strip()}</information>\\n\\n``."""
        body = self.passages(found, words)
        return f"{self.results[0]}{body.strip() if self.search_r1_rules else body}", self.results[1]


def search_r1_passages(found: list[Passage], words: int | None = None) -> str:
    """Search-R1's ``_passages2string``, byte for byte: per document its ``contents`` as served, the first line
    the title (quotes kept: ``(Title: "Evan Morris")``), the other lines the text (newlines kept), each as
    ``Doc i(Title: t) text\\n``. ``words`` (not Search-R1's) cuts each text to that many words."""
    out = ""
    for i, passage in enumerate(found):
        lines = passage.raw.split("\n")
        title, text = lines[0], "\n".join(lines[1:])
        out += f"Doc {i + 1}(Title: {title}) {text if words is None else _words(text, words)}\n"
    return out


TEMPLATES = {
    "search_r1": Template(SEARCH_R1_PROMPT, ("<search>", "</search>"), ("<answer>", "</answer>"),
                          ("\n\n<information>", "</information>\n\n"), search_r1_rules=True),
    "search_p1": Template(SEARCH_P1_PROMPT, ("<tool_call>", "</tool_call>"), ("<answer>", "</answer>"),
                          ("\n<tool_response>", "</tool_response>\n"), plan=("<reasoning>", "</reasoning>")),
    "compact": Template("q:{question}\n", ("s[", "]"), ("a[", "]"), ("\no:", "\n"), lowercase=True),
}


def _words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words[:n])


def exact_match(prediction: str, golden: list[str]) -> bool:
    norm = normalize_answer(prediction)
    return any(norm == normalize_answer(g) for g in golden)


def contains_answer(prediction: str, golden: list[str]) -> bool:
    norm = normalize_answer(prediction)
    return any(normalize_answer(g) and normalize_answer(g) in norm for g in golden)


def _golden(row: dict) -> list[str]:
    """Golden answers from Search-R1's / FlashRAG's columns (``golden_answers``, ``answers``, ``answer``) or
    verl's ``reward_model.ground_truth.target``: a list (a Parquet array too) or one string."""
    value = next((row[k] for k in ("golden_answers", "answers", "answer") if not absent(row.get(k))), None)
    if value is None:
        ground_truth = row.get("reward_model")
        ground_truth = ground_truth.get("ground_truth") if isinstance(ground_truth, dict) else None
        value = ground_truth.get("target") if isinstance(ground_truth, dict) else None
    if isinstance(value, str):
        value = [value]
    if absent(value) or isinstance(value, (int, float)):  # a lone number is no list of answers: none
        return []
    return [v for v in texts(value) if v.strip()]  # MalformedColumn for a mapping, a null answer skipped


def load_source(source: QADataSource, field: str) -> list[dict]:
    if source.path:
        path = Path(source.path).expanduser()
        if not path.is_file():
            raise RecipeError([f"{field}.path: {str(path)!r} is not a file (a .jsonl or .parquet QA set)"])
        rows = read_rows(path, f"{field}.path")
    else:
        rows = load_hub_rows(source.hub, source.subset, source.split, f"{field}.hub")
    if not rows:
        raise RecipeError([f"{field}: {source.label} has no rows"])
    for number, row in enumerate(rows, 1):
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise RecipeError([f"{field}: {source.label} row {number} has no 'question'"])
        try:
            golden = _golden(row)
        except MalformedColumn as err:
            raise RecipeError([f"{field}: {source.label} row {number}: the golden-answer column {err}"]) from None
        if not golden:
            raise RecipeError([f"{field}: {source.label} row {number} has no golden answer (columns "
                               "golden_answers, answers or answer)"])
        check_step_columns(row, f"{field}: {source.label} row {number}")
    return rows


class QASearchTask(NaturalCritique, Task):
    name = "search_qa"

    def __init__(self, config: QASearchTaskConfig, retriever=None):
        self.config = config
        self.template = TEMPLATES[config.template]
        self.max_turns = config.max_searches + 1
        self.max_observation_tokens = config.max_observation_tokens
        rules = self.template.search_r1_rules
        self.force_answer = (not rules) if config.force_answer is None else config.force_answer
        self.answers_every_turn = rules  # Search-R1: a turn without an action gets its message, and goes on
        self.turn_stop_strings = tuple(dict.fromkeys((self.template.search[1], self.template.answer[1])))
        self._train = [self._problem(row, source.label)  # the training sets mixed, as Search-R1 merges them
                       for i, source in enumerate(config.train)
                       for row in load_source(source, f"task.train.{i}")[: source.limit]]
        self._eval = []
        for i, source in enumerate(config.eval):
            problems = [self._problem(row, source.label) for row in load_source(source, f"task.eval.{i}")]
            random.Random(config.seed).shuffle(problems)
            self._eval += problems[: source.limit]
        self.retriever = retriever if retriever is not None else build_retriever(config.retriever)

    def _problem(self, row: dict, source: str) -> Problem:
        question = str(row["question"]).strip()
        if self.config.template == "search_r1" and not question.endswith("?"):
            question += "?"  # as Search-R1's make_prefix does
        shown = question.lower() if self.template.lowercase else question
        golden = _golden(row)
        return Problem(prompt=self.template.prompt.format(question=shown), answer=golden[0],
                       reference_path=steps_column(row.get("reference_path")),
                       reference_plan=steps_column(row.get("reference_plan")),
                       meta={"question": question, "golden": golden, "source": source})

    def train_problem(self, rng: random.Random) -> Problem:
        return rng.choice(self._train)

    def eval_problems(self) -> list[Problem]:
        return self._eval

    # ---------------------------------------------------------------- environment
    def _action(self, turn: str) -> tuple[str, str] | None:
        """("search" | "answer", its argument) when the turn holds an action, else None. Search-R1's rule: the
        first ``<search>``/``<answer>`` pair of the turn. The others: the action the turn ends in."""
        if self.template.search_r1_rules:
            match = SEARCH_R1_ACTION.search(turn)
            return (match.group(1), match.group(2).strip()) if match else None
        text = turn.rstrip()
        for kind, (open_tag, close_tag) in (("answer", self.template.answer), ("search", self.template.search)):
            if text.endswith(close_tag):
                start = text.rfind(open_tag, 0, len(text) - len(close_tag))
                if start >= 0:
                    return kind, text[start + len(open_tag): len(text) - len(close_tag)].strip()
        return None

    def respond_batch(self, problems: list[Problem], turns: list[list[str]]) -> list[str | tuple[str, str] | None]:
        """The replies after a turn: search results for a search within the budget (one retriever call for all
        rows), None for an answer or past the budget (the episode ends), and for a turn without an action None,
        or under Search-R1's rules its invalid-action message (the episode goes on to the turn limit)."""
        queries, rows = [], []
        replies: list[str | tuple[str, str] | None] = [None] * len(turns)
        for row, history in enumerate(turns):
            if len(history) > self.config.max_searches:
                continue  # the turn after the last reply: nothing more is returned
            action = self._action(history[-1])
            if action is not None and action[0] == "search":
                queries.append(action[1])
                rows.append(row)
            elif action is None and self.template.search_r1_rules:
                replies[row] = SEARCH_R1_INVALID_ACTION
        found = self.retriever.search(queries, self.config.retriever.topk) if queries else []
        for row, passages in zip(rows, found):
            observation, closing = self.template.observation(passages, self.config.passage_words)
            if len(turns[row]) == self.config.max_searches and self.force_answer:
                closing += self.template.answer[0]  # the budget is spent: the model answers now (Alg. 2)
            replies[row] = (observation, closing)
        return replies

    def respond(self, problem: Problem, turns: list[str]) -> str | tuple[str, str] | None:
        return self.respond_batch([problem], [turns])[0]

    def demonstration(self, problem: Problem, rng: random.Random, noise: float) -> list[Segment]:
        """For the tiny model's warm start: search the question, read, answer (with probability ``noise``
        another question's answer)."""
        question = problem.meta["question"].lower() if self.template.lowercase else problem.meta["question"]
        open_s, close_s = self.template.search
        passages = self.retriever.search([problem.meta["question"]], self.config.retriever.topk)[0]
        answer = rng.choice(self._train).answer if rng.random() < noise else problem.answer
        answer = answer.lower() if self.template.lowercase else answer
        plan = f"{self.template.plan[0]}1. {question}{self.template.plan[1]} " if self.template.plan else ""
        observation, closing = self.template.observation(passages, self.config.passage_words)
        return [Segment(f"{plan}{open_s}{question}{close_s}", True),
                Segment(observation + closing, False),
                Segment(f"{self.template.answer[0]}{answer}{self.template.answer[1]}", True)]

    # ---------------------------------------------------------------- reward
    def final_answer(self, transcript: list[Segment]) -> str | None:
        """The answer of the transcript's last model turn (an ``<answer>`` the environment opened and the model
        completed counts), or None. Only the response is read, never the prompt (see the module docstring)."""
        actions = self._turn_actions(transcript)
        last = actions[-1] if actions else None
        return last[1] if last is not None and last[0] == "answer" else None

    def score(self, problem: Problem, transcript: list[Segment]) -> Score:
        answer = self.final_answer(transcript)
        golden = problem.meta["golden"]
        em = answer is not None and exact_match(answer, golden)
        acc = answer is not None and contains_answer(answer, golden)
        reward = float(em if self.config.reward == "em" else acc)
        return Score(reward, reward == 1.0, answer, {"em": float(em), "acc": float(acc)})

    def _turn_actions(self, transcript: list[Segment]) -> list[tuple[str, str] | None]:
        """Each model turn's action; a turn that completes an ``<answer>`` the environment opened counts as one."""
        out, opened = [], ""
        for s in transcript:
            if s.by_model:
                out.append(self._action(opened + s.text))
            opened = self.template.answer[0] if not s.by_model and s.text.endswith(self.template.answer[0]) else ""
        return out

    def format_check(self, problem: Problem, transcript: list[Segment]) -> Format:
        """Search-P1 Alg. 3: valid = every turn ends in one action (the first opening with the plan, in the
        search_p1 template), an answer and at least one search; partial = an answer and a tool response; else
        invalid."""
        turns = [s.text for s in transcript if s.by_model]
        actions = self._turn_actions(transcript)
        has_answer = self.final_answer(transcript) is not None
        searched = any(a is not None and a[0] == "search" for a in actions)
        plan_ok = self.template.plan is None or (bool(turns) and turns[0].lstrip().startswith(self.template.plan[0]))
        if has_answer and searched and plan_ok and all(a is not None for a in actions):
            return "valid"
        return "partial" if has_answer and any(not s.by_model for s in transcript) else "invalid"

    def path_steps(self, problem: Problem, transcript: list[Segment]) -> tuple[list[str], list[str]]:
        turns = [s.text for s in transcript if s.by_model]
        planned: list[str] = []
        if self.template.plan and turns:
            match = re.search(re.escape(self.template.plan[0]) + r"(.*?)" + re.escape(self.template.plan[1]),
                              turns[0], re.DOTALL)
            if match:  # the numbered sub-questions (text before the first number is preamble); else one per line
                pieces = re.split(r"(?:^|\s)\d+[.)]\s+", match.group(1))
                items = pieces[1:] if len(pieces) > 1 else match.group(1).splitlines()
                planned = [s.strip() for s in items if s.strip()]
        executed = [a[1] for a in (self._action(t) for t in turns) if a is not None and a[0] == "search"]
        return planned, executed

    # ---------------------------------------------------------------- critiques: compact speaks the tiny format
    def critique_prompt(self, problem: Problem, transcript: list[Segment]) -> str:
        if self.template.lowercase:
            return Task.critique_prompt(self, problem, transcript)
        return super().critique_prompt(problem, transcript)

    def critique_demonstration(self, problem, transcript, correct, verify=False):
        if self.template.lowercase:
            return [Segment("yes" if correct else "no", True)]
        return super().critique_demonstration(problem, transcript, correct, verify)

    def parse_verdict(self, text: str) -> bool | None:
        return Task.parse_verdict(self, text) if self.template.lowercase else super().parse_verdict(text)

    @staticmethod
    def alphabet() -> str:
        return ""
