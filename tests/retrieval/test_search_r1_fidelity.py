"""Search-R1's set-up, byte for byte, where sigx says it follows it (template ``search_r1``).

The reference rules below are written from Search-R1's ``search_r1/llm_agent/generation.py`` (``_passages2string``,
``execute_predictions``, ``postprocess_predictions``, ``_process_next_obs``) and ``verl/utils/reward_score/qa_em.py``
as they read; sigx's code is checked against them on awkward inputs, and against hand-written strings where the
rule alone could hide a shared mistake."""

import re
import string

import pytest
from test_qa_task import ScriptedBackend, qa_task
from test_retrievers import RetrievalStub

from sigx.config import RecipeError
from sigx.engine.rollout import SamplingParams, observation_ids
from sigx.models.tokenizer import build_char_tokenizer
from sigx.retrieval import Passage, Retriever
from sigx.retrieval.http import HTTPRetriever
from sigx.tasks.qa import SEARCH_R1_INVALID_ACTION, search_r1_passages
from sigx.tasks.rows import read_rows


# ------------------------------------------------------------------------------------------------ the reference
def reference_passages2string(documents: list[dict]) -> str:
    """Search-R1's ``_passages2string``: title = first line of ``contents``, text = the other lines joined."""
    out = ""
    for idx, doc in enumerate(documents):
        content = doc["contents"]
        title = content.split("\n")[0]
        text = "\n".join(content.split("\n")[1:])
        out += f"Doc {idx + 1}(Title: {title}) {text}\n"
    return out


def reference_observation(documents: list[dict]) -> str:
    """``execute_predictions``' reply to a search."""
    return f"\n\n<information>{reference_passages2string(documents).strip()}</information>\n\n"


def reference_action(prediction: str) -> tuple[str | None, str]:
    match = re.search(r"<(search|answer)>(.*?)</\1>", prediction, re.DOTALL)
    return (match.group(1), match.group(2).strip()) if match else (None, "")


def reference_normalize(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def reference_em(solution_str: str, golden: list[str]) -> int:
    """``compute_score_em``: the last ``<answer>`` of the whole sequence (prompt + response), None with <= 1."""
    matches = list(re.finditer(r"<answer>(.*?)</answer>", solution_str, re.DOTALL))
    if len(matches) <= 1:
        return 0
    answer = matches[-1].group(1).strip()
    return int(any(reference_normalize(answer) == reference_normalize(g) for g in golden))


QUOTED = {"id": "1", "contents": '"Evan Morris"\nEvan L. Morris (January 26, 1977 – July 9, 2015) was a lobbyist.'}
UNQUOTED = {"id": "2", "contents": "Rome\nRome is the capital city of Italy."}
INNER_QUOTES = {"id": "3", "contents": '"The ""Real"" McCoy"\nA phrase "with quotes" inside.'}
MULTI_LINE = {"id": "4", "contents": '"Lists"\nfirst line\n\nsecond  line   with   spaces\n'}
LONG = {"id": "5", "contents": '"Long"\n' + " ".join(f"w{i}" for i in range(400))}
NO_TEXT = {"id": "6", "contents": "Only a title"}
AWKWARD = [QUOTED, UNQUOTED, INNER_QUOTES, MULTI_LINE, LONG, NO_TEXT]


def passages(documents: list[dict]) -> list[Passage]:
    from sigx.retrieval.corpus import passage_from_row

    return [passage_from_row(d, "test", need_id=False) for d in documents]


# ------------------------------------------------------------------------------------------------ observations
@pytest.mark.parametrize("documents", [[QUOTED], [UNQUOTED], [INNER_QUOTES], [MULTI_LINE], [LONG], [NO_TEXT],
                                       AWKWARD[:3], AWKWARD, []], ids=lambda d: f"{len(d)}docs")
def test_the_search_r1_observation_is_search_r1s_rendering_byte_for_byte(documents, tmp_path):
    found = passages(documents)
    assert search_r1_passages(found) == reference_passages2string(documents)
    task = qa_task(tmp_path, FixedRetriever(found), template="search_r1", max_observation_tokens=10**6)
    observation, closing = task.respond_batch([task.eval_problems()[0]], [["<search> q </search>"]])[0]
    assert observation + closing == reference_observation(documents)


def test_hand_written_observations():
    """Against strings written out by hand, not by a second implementation of the rule."""
    assert search_r1_passages(passages([QUOTED, UNQUOTED])) == (
        'Doc 1(Title: "Evan Morris") Evan L. Morris (January 26, 1977 – July 9, 2015) was a lobbyist.\n'
        "Doc 2(Title: Rome) Rome is the capital city of Italy.\n")
    assert search_r1_passages(passages([INNER_QUOTES, MULTI_LINE])) == (
        'Doc 1(Title: "The ""Real"" McCoy") A phrase "with quotes" inside.\n'
        'Doc 2(Title: "Lists") first line\n\nsecond  line   with   spaces\n\n')
    assert search_r1_passages(passages([NO_TEXT])) == "Doc 1(Title: Only a title) \n"
    # a corpus row given as title + text renders as title, newline, text (no quotes are invented)
    assert search_r1_passages([Passage("7", "Oslo", "Oslo is in Norway.")]) == "Doc 1(Title: Oslo) Oslo is in Norway.\n"


class FixedRetriever(Retriever):
    def __init__(self, found):
        self.found, self.calls = found, []

    def search(self, queries, k):
        self.calls.append(list(queries))
        return [list(self.found) for _ in queries]


# ------------------------------------------------------------------------------------------------ server answers
@pytest.mark.parametrize("with_ids", [True, False])
@pytest.mark.parametrize("mode", ["ok", "bare"])
def test_a_search_r1_server_answer_with_or_without_ids_renders_as_search_r1(with_ids, mode):
    """Search-R1's BM25 server, when its index stores the documents, answers ``{"title", "text", "contents"}``
    without an id; its dense server answers the corpus rows (``{"id", "contents"}``). Both are read."""
    docs = [{"title": "Evan Morris", "text": QUOTED["contents"].split("\n", 1)[1], "contents": QUOTED["contents"]},
            {"title": "Rome", "text": "Rome is the capital city of Italy.", "contents": UNQUOTED["contents"]}]
    if with_ids:
        docs = [{"id": str(i), "contents": d["contents"]} for i, d in enumerate(docs)]
    server = RetrievalStub(mode=mode, docs=docs)
    try:
        found = HTTPRetriever(server.url, retries=0).search(["Evan Morris lobbyist", "capital Italy Rome"], k=2)
    finally:
        server.close()
    assert [p.id for p in found[0]] == (["0", "1"] if with_ids else ["", ""])
    assert found[0][0].title == "Evan Morris" and found[0][0].contents == QUOTED["contents"]
    ranked = sorted(docs, key=lambda d: -len({"evan", "morris", "lobbyist"} & set(d["contents"].lower().split())))
    assert search_r1_passages(found[0]) == reference_passages2string(ranked[:2])


# ------------------------------------------------------------------------------------------------ the cap
def test_the_observation_cap_is_per_turn_and_never_cuts_the_closing_tag(tmp_path):
    """A 4-search episode of long observations: every observation is cut to the cap on its own (the old
    per-episode cap left the second a few tokens and the third and fourth none), each still closes."""
    tok = build_char_tokenizer()
    long = [Passage(str(i), f"T{i}", "x" * 900, contents=f"T{i}\n" + "x" * 900) for i in range(3)]
    task = qa_task(tmp_path, FixedRetriever(long), template="search_r1", max_searches=4, max_observation_tokens=500)
    script = [[f"<search>q{t}</search>" for t in range(4)] + ["<answer>a</answer>"]]
    (traj,) = ScriptedBackend(tok, script).rollout(task, task.eval_problems()[:1], [0], SamplingParams(64), tok)
    observations = [s.text for s in traj.segments if not s.by_model]
    assert len(observations) == 4
    for text in observations:  # (the char tokenizer has no capitals: they decode to nothing)
        assert "<information>oc 1(itle: 0) xxx" in text and text.endswith("xxx</information>\n\n")
    env_runs = [len(run) for run in "".join(map(str, traj.loss_mask)).split("1") if run]
    assert env_runs == [500, 500, 500, 500]


def test_a_reply_that_fits_is_tokenized_whole_and_a_long_one_keeps_its_tail():
    tok = build_char_tokenizer()
    assert observation_ids(tok, ("abc", "</x>"), 100) == (tok("abc</x>", add_special_tokens=False)["input_ids"],
                                                          "abc</x>")
    ids, text = observation_ids(tok, ("a" * 50, "</x>"), 10)
    assert text == "a" * 6 + "</x>" and len(ids) == 10
    ids, text = observation_ids(tok, "a" * 50, 10)  # a plain string is cut like Search-R1's, tail-less
    assert text == "a" * 10
    ids, text = observation_ids(tok, ("abc", "</long-tail>"), 4)  # the tail alone is over the cap: it stays
    assert text == "</long-tail>"


# ------------------------------------------------------------------------------------------------ episode rules
def run_episode(tmp_path, script, **task_config):
    tok = build_char_tokenizer()
    retriever = FixedRetriever([Passage("1", "T", "t", contents="T\nt")])
    task = qa_task(tmp_path, retriever, template="search_r1", **task_config)
    (traj,) = ScriptedBackend(tok, [script]).rollout(task, task.eval_problems()[:1], [0], SamplingParams(64), tok)
    return task, retriever, traj


def test_an_invalid_turn_gets_search_r1s_message_and_the_episode_goes_on(tmp_path):
    task, retriever, traj = run_episode(tmp_path, ["<think>hmm</think>", "<search> who </search>",
                                                   "<answer> x </answer>"], max_searches=4)
    texts = [s.text for s in traj.segments]
    assert texts[1] == SEARCH_R1_INVALID_ACTION
    assert SEARCH_R1_INVALID_ACTION == (
        "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
        "</search>. If I want to give the final answer, I should put the answer between <answer> and </answer>. "
        "Let me try again.\n")
    assert retriever.calls == [["who"]] and task.final_answer(traj.segments) == "x"
    assert texts[3] == reference_observation([{"contents": "T\nt"}])


def test_the_query_is_the_first_pair_of_a_turn_as_search_r1_reads_it(tmp_path):
    for turn in ["<search>first</search>", "<think>a</think><search> first </search>",
                 "<search>first</search> and <search>second</search>", "<answer>x</answer><search>q</search>",
                 "<search>a<search>b</search>", "no tags", "<search>open only", "<answer> y </answer>"]:
        task, _, _ = run_episode(tmp_path, ["<answer>z</answer>"])
        assert task._action(turn) == ((reference_action(turn)) if reference_action(turn)[0] else None), turn


def test_no_forced_answer_and_the_turn_limit_under_search_r1(tmp_path):
    # three replies allowed: search, invalid, search; the fourth turn gets none, whatever it does
    task, retriever, traj = run_episode(tmp_path, ["<search>a</search>", "oops", "<search>b</search>",
                                                   "<search>c</search>"], max_searches=3)
    env = [s.text for s in traj.segments if not s.by_model]
    assert len(env) == 3 and env[1] == SEARCH_R1_INVALID_ACTION and not env[2].endswith("<answer>")
    assert retriever.calls == [["a"], ["b"]] and traj.num_turns == 4 and task.final_answer(traj.segments) is None
    assert task.force_answer is False
    forced, _, traj = run_episode(tmp_path, ["<search>a</search>", "x </answer>"], max_searches=1, force_answer=True)
    assert forced.force_answer and [s.text for s in traj.segments][1].endswith("</information>\n\n<answer>")


def test_a_cut_or_eos_turn_goes_on_under_search_r1_and_ends_the_episode_elsewhere(tmp_path):
    from sigx.engine.rollout import RolloutBackend, TurnOutput

    tok = build_char_tokenizer()

    class CutFirst(RolloutBackend):
        def __init__(self):
            self.turn = 0

        def generate_turn(self, contexts, stop_strings, params, generator=None):
            self.turn += 1
            text = "<search>unfinish" if self.turn == 1 else "<answer>x</answer>"
            return [TurnOutput(tok(text, add_special_tokens=False)["input_ids"], self.turn > 1) for _ in contexts]

    for template, turns in (("search_r1", 2), ("search_p1", 1)):
        task = qa_task(tmp_path, FixedRetriever([]), template=template)
        (traj,) = CutFirst().rollout(task, task.eval_problems()[:1], [0], SamplingParams(64), tok)
        assert traj.num_turns == turns and traj.truncated is (turns == 1)


# ------------------------------------------------------------------------------------------------ EM
PROMPT_EXAMPLE = "For example, <answer> Beijing </answer>. Question: who?\n"


@pytest.mark.parametrize("response, golden, sigx_em, search_r1_em", [
    ("<answer> Paris </answer>", ["Paris"], 1, 1),
    ("<answer>the  PARIS.</answer>", ["paris"], 1, 1),
    ("<search>x</search>", ["Beijing"], 0, 1),  # no answer: Search-R1 scores the prompt's example
    ("<search>x</search>", ["Paris"], 0, 0),
    ("<answer>Paris", ["Paris"], 0, 0),  # an unclosed answer is no answer in both
])
def test_em_reads_the_response_only_where_search_r1_reads_the_prompt_too(tmp_path, response, golden, sigx_em,
                                                                          search_r1_em):
    from sigx.tasks.base import Segment

    task = qa_task(tmp_path, FixedRetriever([]), template="search_r1")
    problem = task.eval_problems()[0]
    problem = type(problem)(**{**problem.__dict__, "meta": {**problem.meta, "golden": golden}})
    prompt = task.template.prompt.format(question="who?")
    assert "<answer> and </answer>" in prompt and "<answer> Beijing </answer>" in prompt
    assert task.score(problem, [Segment(response, True)]).metrics["em"] == sigx_em
    assert reference_em(prompt + response, golden) == search_r1_em


# ------------------------------------------------------------------------------------------------ parquet
def test_parquet_rows_and_without_pyarrow_one_line(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "nq.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "who?", "golden_answers": ["Ann", "Anne"]},
                                         {"question": "where?", "golden_answers": ["Rome"]}]), path)
    rows = read_rows(path, "task.train.0.path")
    assert rows == [{"question": "who?", "golden_answers": ["Ann", "Anne"]},
                    {"question": "where?", "golden_answers": ["Rome"]}]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(RecipeError, match=r"^task.train.0.path: .*bad.parquet: not a readable Parquet file") as err:
        read_rows(tmp_path / "bad.parquet", "task.train.0.path")
    assert "\n" not in str(err.value)
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(RecipeError, match=r"needs pyarrow: pip install 'sigx\[search\]'") as err:
        read_rows(path, "task.train.0.path")
    assert "\n" not in str(err.value) and str(err.value).startswith("task.train.0.path: ")
