"""The agentic retrieval-QA task: Search-R1's answer normalisation and metrics on hand-written cases, the three
templates' episodes on scripted turns (one retriever call per turn for every row that searched, observations
masked and capped, the forced answer after the budget), Search-P1's format grade and path, data loading
errors, and the tiny model trained end to end on BM25 and on a retrieval server that fails mid-run (one line,
then the same command resumes)."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from qa_data import build_world, needs_bm25s
from test_retrievers import RetrievalStub

from sigx.config import RecipeError, recipe_from_data
from sigx.engine.rollout import RolloutBackend, SamplingParams, TurnOutput
from sigx.models.tokenizer import build_char_tokenizer
from sigx.retrieval import Passage, Retriever
from sigx.runs import read_jsonl
from sigx.tasks import build_task
from sigx.tasks.base import Segment
from sigx.answers import normalize_answer
from sigx.tasks.qa import contains_answer, exact_match


# ------------------------------------------------------------------------------------------------ metrics
@pytest.mark.parametrize("text, normal", [
    ("The Beatles", "beatles"), ("  Eddie   Argos. ", "eddie argos"), ("an Apple, a pear!", "apple pear"),
    ("U.S.A.", "usa"), ("Theatre", "theatre"), ("A", ""), ("Rock & Roll", "rock roll"),
])
def test_normalisation_is_squads(text, normal):
    assert normalize_answer(text) == normal


@pytest.mark.parametrize("prediction, golden, em, acc", [
    ("the Eiffel Tower", ["Eiffel Tower"], True, True),
    ("Eiffel Tower in Paris", ["Eiffel Tower"], False, True),
    ("Paris", ["Eiffel Tower", "Paris"], True, True),
    ("Tower", ["Eiffel Tower"], False, False),
    ("1,000", ["1000"], True, True),
    ("", ["x"], False, False),
    ("anything", ["the"], False, False),  # a golden answer that normalises to nothing never matches by containment
])
def test_exact_match_and_accuracy(prediction, golden, em, acc):
    assert exact_match(prediction, golden) is em and contains_answer(prediction, golden) is acc


# ------------------------------------------------------------------------------------------------ episodes
class CountingRetriever(Retriever):
    def __init__(self):
        self.calls = []

    def search(self, queries, k):
        self.calls.append(list(queries))
        return [[Passage(str(i), f"T{i}", f"passage about {q} " + "word " * 200)] for i, q in enumerate(queries)]


def qa_task(tmp_path, retriever=None, **task):
    build_world(tmp_path)
    config = {"name": "search_qa", "train": [{"path": str(tmp_path / "train.jsonl")}],
              "eval": [{"path": str(tmp_path / "test.jsonl"), "name": "people"}],
              "retriever": {"corpus": str(tmp_path / "corpus.jsonl")}, **task}
    from sigx.tasks.qa import QASearchTask

    return QASearchTask(recipe_from_data({"task": config}).task, retriever=retriever)


class ScriptedBackend(RolloutBackend):
    """Row r of every turn t says ``script[r][t]``: the test decides exactly what is 'generated'."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.turn = tokenizer, script, 0

    def generate_turn(self, contexts, stop_strings, params, generator=None):
        rows = [r for r in self.script if len(r) > self.turn][: len(contexts)]
        self.turn += 1
        return [TurnOutput(self.tokenizer(text[self.turn - 1], add_special_tokens=False)["input_ids"], True)
                for text in rows]


def test_one_retriever_call_per_turn_for_every_row_that_searched_with_observations_masked_and_capped(tmp_path):
    retriever = CountingRetriever()
    task = qa_task(tmp_path, retriever, template="compact", max_searches=2, max_observation_tokens=120)
    tok = build_char_tokenizer()
    problems = task.eval_problems()[:3]
    script = [["s[first]", "s[second]", "x]"], ["a[rome]"], ["s[only]", "a[oslo]"]]
    trajectories = ScriptedBackend(tok, script).rollout(task, problems, [0, 1, 2], SamplingParams(64), tok)
    assert retriever.calls == [["first", "only"], ["second"]]  # one batch per turn; the answered row left
    first, answered, second = trajectories
    assert [s.by_model for s in first.segments] == [True, False, True, False, True]
    assert first.segments[3].text.endswith("a[")  # budget spent: the environment opened the answer
    assert task.final_answer(first.segments) == "x" and task.format_check(problems[0], first.segments) == "valid"
    # retrieved tokens are masked and capped at 120 per reply, the closing newline and the opened answer tag
    # (kept, never cut) included
    assert len(first.loss_mask) - sum(first.loss_mask) == 120 + 120
    assert first.segments[1].text.endswith("\n") and first.segments[3].text.endswith("\na[")
    assert len(second.loss_mask) - sum(second.loss_mask) == 120
    model_text = tok.decode([t for t, m in zip(first.completion_ids, first.loss_mask) if m])
    assert model_text == "s[first]s[second]x]"
    assert [s.text for s in answered.segments] == ["a[rome]"]


def search_p1_transcript(answer="Eddie Argos", plan=True, close=True):
    turns = [("<reasoning>I need to: 1. Find the band performing it. 2. Find the lead singer.</reasoning> "
              if plan else "") + "<tool_call>Bang Bang Rock & Roll album</tool_call>",
             "\n<tool_response>Doc 1(Title: Art Brut) ...</tool_response>\n",
             "<tool_call>lead singer of Art Brut</tool_call>",
             "\n<tool_response>Doc 1(Title: Eddie Argos) ...</tool_response>\n",
             f"<answer>{answer}</answer>" if close else f"<answer>{answer}"]
    return [Segment(t, i % 2 == 0) for i, t in enumerate(turns)]


def test_search_p1_template_plan_path_format_and_score(tmp_path):
    task = qa_task(tmp_path, CountingRetriever(), template="search_p1")
    problem = task.eval_problems()[0]
    problem = type(problem)(**{**problem.__dict__, "meta": {**problem.meta, "golden": ["Eddie Argos"]}})
    segments = search_p1_transcript()
    assert task.path_steps(problem, segments) == (["Find the band performing it.", "Find the lead singer."],
                                                  ["Bang Bang Rock & Roll album", "lead singer of Art Brut"])
    assert task.format_check(problem, segments) == "valid"
    assert task.score(problem, segments).metrics == {"em": 1.0, "acc": 1.0}
    assert task.format_check(problem, search_p1_transcript(plan=False)) == "partial"  # no plan: not well formed
    assert task.format_check(problem, search_p1_transcript(close=False)) == "invalid"  # no answer
    wrong = task.score(problem, search_p1_transcript(answer="singer Eddie Argos of Art Brut"))
    assert (wrong.reward, wrong.metrics) == (0.0, {"em": 0.0, "acc": 1.0})  # reward em: contained is not equal
    assert "Question: " in problem.prompt and "<reasoning>" in problem.prompt


def test_search_r1_prompt_and_answer_after_thinking(tmp_path):
    task = qa_task(tmp_path, CountingRetriever(), template="search_r1", reward="acc")
    problem = task.eval_problems()[0]
    assert problem.prompt.startswith("Answer the given question.") and problem.prompt.endswith("?\n")
    golden = problem.meta["golden"][0]
    segments = [Segment("<think>look it up</think><search>x</search>", True),
                Segment("\n\n<information>Doc 1(Title: a) b\n</information>\n\n", False),
                Segment(f"<think>found</think>\n<answer> The {golden} </answer>", True)]
    assert task.final_answer(segments) == f"The {golden}" and task.score(problem, segments).reward == 1.0
    observation, closing = task.respond(problem, ["<think>?</think><search>who</search>"])
    assert observation.startswith("\n\n<information>Doc 1(Title: T0) passage about who")
    assert closing == "</information>\n\n"
    assert len(observation.split()) > 200  # Search-R1 renders passages whole (passage_words cuts only when set)
    short, _ = qa_task(tmp_path, CountingRetriever(), template="search_r1", passage_words=100).respond(problem, ["<search>who</search>"])
    assert len(short.split()) < 110


@pytest.mark.parametrize("row, message", [
    ({"golden_answers": ["x"]}, "task.train.0: train row 1 has no 'question'"),
    ({"question": "q", "golden_answers": []}, "task.train.0: train row 1 has no golden answer"),
    ({"question": "q"}, "has no golden answer"),
    ({"question": "q", "golden_answers": [None]}, "has no golden answer"),  # was the answer "None"
    ({"question": "q", "golden_answers": {"Ann": 1}}, 'row 1: the golden-answer column is dict {"Ann": 1}, not a list'),
    ({"question": "q", "golden_answers": [["Ann"]]}, 'row 1: the golden-answer column holds list ["Ann"], not text'),
    ({"question": "q", "reward_model": "Ann"}, "has no golden answer"),  # was an AttributeError
    ({"question": "q", "golden_answers": ["Ann"], "reference_path": 5},
     "row 1: column reference_path is int 5, not a list"),
    ({"question": "q", "golden_answers": ["Ann"], "reference_plan": [{"step": 1}]},
     'row 1: column reference_plan holds dict {"step": 1}, not text'),
])
def test_bad_qa_rows_are_one_line(tmp_path, row, message):
    build_world(tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(RecipeError) as err:
        qa_task.__wrapped__(tmp_path) if hasattr(qa_task, "__wrapped__") else _task_without_rebuild(tmp_path)
    assert len(err.value.problems) == 1 and message in str(err.value)


def _task_without_rebuild(tmp_path):
    config = {"name": "search_qa", "train": [{"path": str(tmp_path / "train.jsonl")}],
              "eval": [{"path": str(tmp_path / "test.jsonl")}], "retriever": {"corpus": str(tmp_path / "corpus.jsonl")}}
    return build_task(recipe_from_data({"task": config}).task)


@needs_bm25s
def test_verl_format_rows_and_a_missing_file(tmp_path):
    build_world(tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps(
        {"question": "who?", "reward_model": {"ground_truth": {"target": ["Ann"]}}}) + "\n")
    task = _task_without_rebuild(tmp_path)
    assert task._train[0].meta["golden"] == ["Ann"]
    (tmp_path / "train.jsonl").unlink()
    with pytest.raises(RecipeError, match=r"task.train.0.path: .* is not a file"):
        _task_without_rebuild(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"eval": [{"hub": "h", "subset": "nq", "split": "test"}, {"path": "nq.jsonl"}]},  # both labelled "nq"
     "task.eval: two sets are named 'nq' (their per-set metrics would merge); give each a name"),
    ({"eval": [{"path": "a.jsonl", "name": "hotpot/dev"}]}, "task.eval.0.name"),  # eval/<name>/reward: no "/"
    ({"eval": [{"hub": "h", "split": ""}]}, "task.eval.0.split"),
    ({"retriever": {"kind": "http", "url": "127.0.0.1:8000/retrieve"}},  # no scheme: no host either
     "task.retriever.url: '127.0.0.1:8000/retrieve' is not an http(s) URL with a host"),
    ({"retriever": {"kind": "http", "url": "file:///etc/passwd"}}, "task.retriever.url"),
])
def test_qa_sections_that_would_misreport_or_fail_at_the_first_search_are_refused_when_read(change, message):
    config = {"name": "search_qa", "train": [{"path": "train.jsonl"}], "eval": [{"path": "test.jsonl"}],
              "retriever": {"corpus": "corpus.jsonl"}, **change}
    with pytest.raises(RecipeError) as err:
        recipe_from_data({"task": config})
    assert len(err.value.problems) == 1 and message in err.value.problems[0], err.value.problems
    named = [{"hub": "h", "subset": "nq", "split": "test"}, {"hub": "h", "subset": "nq", "split": "dev", "name": "nq-dev"}]
    assert [s.label for s in recipe_from_data({"task": {**config, "eval": named, "retriever": {
        "kind": "http", "url": "https://search.example:8443/retrieve"}}}).task.eval] == ["nq", "nq-dev"]


# ------------------------------------------------------------------------------------------------ end to end
def tiny_qa_recipe(tmp_path, retriever: dict, **training) -> dict:
    build_world(tmp_path / "data")
    return {
        "name": "qa-e2e",
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                           "intermediate_size": 64, "sft_steps": 150, "sft_batch_size": 8}},  # greedy searches
        "task": {"name": "search_qa", "template": "compact", "max_searches": 2, "max_observation_tokens": 150,
                 "train": [{"path": str(tmp_path / "data" / "train.jsonl")}],
                 "eval": [{"path": str(tmp_path / "data" / "test.jsonl"), "name": "people", "limit": 6},
                          {"path": str(tmp_path / "data" / "train.jsonl"), "name": "seen", "limit": 4}],
                 "retriever": retriever},
        "rollout": {"group_size": 2, "max_new_tokens": 32},
        "training": {"steps": 4, "prompts_per_step": 2, "eval_every": 2, "eval_samples": 1, **training},
        "logging": {"wandb": "disabled"},
    }


@needs_bm25s
def test_the_tiny_model_trains_end_to_end_on_bm25_and_reports_each_held_out_set(tmp_path):
    from sigx.train import run_training

    recipe = recipe_from_data(tiny_qa_recipe(tmp_path, {"corpus": str(tmp_path / "data" / "corpus.jsonl")}))
    summary = run_training(recipe, run_dir=tmp_path / "run")
    assert summary["steps"] == 4 and set(summary["final_eval_sets"]) == {"people", "seen"}
    assert set(summary["final_eval_sets"]["people"]) == {"reward", "em", "acc", "greedy_reward", "greedy_em",
                                                          "greedy_acc"}
    assert all(0.0 <= v <= 1.0 for s in summary["final_eval_sets"].values() for v in s.values())
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert any("eval/people/acc" in r for r in rows) and all(r.get("turns", 1) <= 3 for r in rows)


def test_a_retrieval_server_that_fails_mid_run_stops_with_one_line_and_the_same_command_resumes(tmp_path):
    server = RetrievalStub(corpus=[{"id": str(i), "title": r["title"], "text": r["text"]} for i, r in
                                   enumerate(json.loads(line) for line in _corpus_lines(tmp_path))])
    try:
        data = tiny_qa_recipe(tmp_path, {"kind": "http", "url": server.url, "timeout_s": 5, "retries": 1},
                              steps=6, checkpoint_every=2)
        path = tmp_path / "qa.yaml"
        path.write_text(yaml.safe_dump(data))
        args = [sys.executable, "-m", "sigx.cli", "train", str(path), "--run-dir", str(tmp_path / "run")]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.time() + 300
        while not (tmp_path / "run" / "checkpoint.pt").exists():  # the first checkpoint (step 2) is written
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
            time.sleep(0.05)
        server.mode = "error"  # the server breaks
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode != 0 and "Traceback" not in out
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "task.retriever.url" in errors[0] and "HTTP 500" in errors[0] and "after 2 attempts" in errors[0]
        server.mode = "ok"  # it is back: the same command resumes from the checkpoint and completes
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        steps = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "reward" in r]
        assert steps == list(range(1, 7))  # every step once, none lost and none twice
    finally:
        server.close()


def _corpus_lines(tmp_path):
    build_world(tmp_path / "data")
    return (tmp_path / "data" / "corpus.jsonl").read_text().splitlines()


@needs_bm25s
def test_null_answers_are_skipped_and_numbers_read_as_text(tmp_path):
    build_world(tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps({"question": "q", "golden_answers": [None, 1969, "1969 AD"],
                                                      "reference_plan": "find\nanswer"}) + "\n")
    problem = _task_without_rebuild(tmp_path)._train[0]
    assert problem.meta["golden"] == ["1969", "1969 AD"] and problem.reference_plan == ("find", "answer")
