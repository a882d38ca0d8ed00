"""The tasks for hub instruct models: GSM8K-style problems from a local file, the search agent in plain
language, natural-language critiques, the chat template, and the recipes that use them (validated, not run:
they need a GPU and downloads)."""

import json
import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from sigx.ablation.plan import expand
from sigx.config import RecipeError, SearchP1Config, load_recipe
from sigx.engine.rollout import prompt_ids, use_chat_template
from sigx.tasks import build_task
from sigx.tasks.base import Segment
from sigx.tasks.gsm8k import final_answer, normalize_number, reference_steps
from sigx.tasks.natural import NaturalCritique
from sigx.engine.trajectory import Trajectory
from sigx.techniques.search_p1 import SearchP1

RECIPES = Path(__file__).parent.parent / "recipes"
ROWS = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
               "altogether in April and May.\n#### 72"},
    {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                 "How much did she earn?",
     "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
               "$<<0.2*50=10>>10.\n#### 10"},
    {"question": "A shop sells 1,200 pens a day. How many in 3 days?",
     "answer": "1,200*3 = <<1200*3=3600>>3,600\n#### 3,600"},
]


@pytest.fixture
def gsm8k_dir(tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return tmp_path


def _gsm8k(path, *extra):
    return load_recipe(RECIPES / "full.yaml", [f"task.path={path}", *extra])


@pytest.mark.parametrize("text, value", [("72", "72"), ("1,234", "1234"), ("$10.", "10"), ("0.20", "0.2"),
                                         ("-3", "-3"), ("ten", None)])
def test_numbers_are_normalised_before_comparison(text, value):
    assert normalize_number(text) == value


def test_final_answer_strict_and_flexible():
    assert final_answer("so 5 + 5 = 10\n#### 10", flexible=False) == "10"
    assert final_answer("The answer is 3,600 pens.", flexible=False) is None
    assert final_answer("The answer is 3,600 pens.", flexible=True) == "3600"
    assert final_answer("#### 7 ... then 8", flexible=True) == "7"  # the answer line wins over later numbers


def test_reference_path_is_the_calculator_results():
    assert reference_steps(ROWS[0]["answer"]) == ("24", "72")
    assert reference_steps(ROWS[1]["answer"]) == ("0.2", "10")


def test_a_dataset_may_carry_its_own_reference_path_and_plan(tmp_path):
    rows = [{**ROWS[0], "reference_path": ["half of 48", "48 plus that"], "reference_plan": "find May\nadd up"}]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (problem,) = build_task(_gsm8k(tmp_path).task).eval_problems()
    assert problem.reference_path == ("half of 48", "48 plus that")
    assert problem.reference_plan == ("find May", "add up")


def test_gsm8k_from_a_local_copy_scores_and_paths(gsm8k_dir):
    task = build_task(_gsm8k(gsm8k_dir).task)
    problem = next(p for p in task.eval_problems() if p.answer == "72")
    assert problem.prompt.startswith("Natalia sold clips") and "####" in problem.prompt  # the instruction
    right = [Segment("In May: 48/2 = 24. Total: 48 + 24 = 72.\n#### 72", True)]
    half = [Segment("In May: 48/2 = 24. Total: 24 + 24 = 48.\n#### 48", True)]
    nothing = [Segment("I think it is 50.\n#### 50", True)]
    assert task.score(problem, right).correct and task.score(problem, right).reward == 1.0
    assert not task.score(problem, half).correct and task.score(problem, half).reward == 0.0
    trajectories = [Trajectory(problem=problem, group=0, prompt_ids=[], segments=t) for t in (right, half, nothing)]
    for t in trajectories:
        t.correct = task.score(problem, t.segments).correct
    SearchP1(SearchP1Config(enabled=True), task).shape_rewards(trajectories)
    # no plan: R_path = S_ref = (covered / 2) * (covered / actions): 2 of 2 in 2; 1 of 2 (24) in 2; none
    assert [t.info["search_p1"].r_path for t in trajectories] == [1.0, 0.25, 0.0]
    assert [task.format_check(problem, t) for t in (right, [Segment("about 50", True)], [Segment("no", True)])] == \
        ["valid", "partial", "invalid"]
    demo = task.demonstration(problem, random.Random(0), noise=0.0)
    assert "<<" not in demo[0].text and task.score(problem, demo).correct


def test_gsm8k_bad_path_is_a_one_line_error(tmp_path):
    with pytest.raises(RecipeError, match=r"^task.path: .*does not exist$"):
        build_task(_gsm8k(tmp_path / "nowhere").task)
    with pytest.raises(RecipeError, match=r"^task.path: no train.jsonl or train.parquet in "):
        build_task(_gsm8k(tmp_path).task)


def test_natural_search_environment_scores_and_paths():
    recipe = load_recipe(RECIPES / "full-search.yaml", ["task.num_people=12", "task.num_cities=3"])
    task = build_task(recipe.task)
    problem = next(p for p in task.eval_problems() if len(p.reference_path) == 2)
    start, (rel1, rel2) = problem.meta["start"], problem.meta["plan"]
    assert problem.prompt.endswith(f"Question: {problem.meta['question']}") and start in problem.meta["question"]
    middle = task.kb[f"{start}.{rel1}"]
    assert task.turn_stop_strings == ("</search>", "</answer>")
    turn0 = f"<plan>{rel1}, {rel2}</plan> <search>{start}.{rel1}</search>"
    assert task.respond(problem, [turn0]) == f"\n<result>{middle}</result>\n"
    assert task.respond(problem, [turn0, f"<answer>{problem.answer}</answer>"]) is None
    transcript = [Segment(turn0, True), Segment(f"\n<result>{middle}</result>\n", False),
                  Segment(f"<search>{middle}.{rel2}</search>", True),
                  Segment(f"\n<result>{problem.answer}</result>\n", False),
                  Segment(f"<answer>{problem.answer}</answer>", True)]
    assert task.score(problem, transcript).correct
    assert task.path_steps(problem, transcript) == ([rel1, rel2], list(problem.reference_path))
    assert not task.score(problem, transcript[:4] + [Segment("<answer>nobody</answer>", True)]).correct
    demo = task.demonstration(problem, random.Random(0), noise=0.0)
    assert task.score(problem, demo).correct


@pytest.mark.parametrize("reply, verdict", [
    ("The steps check out.\nVerdict: yes", True), ("Wrong sum. Verdict: NO", False),
    ("verdict: no ... on reflection, Verdict: **yes**", True), ("It looks fine.", None)])
def test_natural_critiques_read_the_last_verdict_line(reply, verdict):
    assert NaturalCritique().parse_verdict(reply) is verdict


def test_natural_critique_prompt_shows_the_question_not_the_instruction(gsm8k_dir):
    task = build_task(_gsm8k(gsm8k_dir).task)
    problem = task.eval_problems()[0]
    prompt = task.critique_prompt(problem, [Segment("... #### 5", True)])
    assert problem.meta["question"] in prompt and task.config.instruction not in prompt
    assert "Proposed answer:\n... #### 5" in prompt and prompt.endswith("'Verdict: no' if it is not.")


def _tokenizer(template: str | None):
    vocab = {c: i for i, c in enumerate("<>|/abcdefghijklmnopqrstuvwxyz_ \n:?")}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="?")))
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.chat_template = template
    return tok


def test_chat_template_wraps_prompts_when_the_tokenizer_has_one():
    template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"
    with_template, without = _tokenizer(template), _tokenizer(None)
    assert use_chat_template("auto", with_template) and not use_chat_template("auto", without)
    assert not use_chat_template("off", with_template)
    with pytest.raises(RecipeError, match="^rollout.chat_template: 'on' but the tokenizer has no chat template"):
        use_chat_template("on", without)
    ids = prompt_ids(with_template, "hi", chat_template=True)
    text = lambda tok, ids: "".join(tok.convert_ids_to_tokens(ids))  # noqa: E731 (one character per token)
    assert text(with_template, ids) == "<|user|>hi\n<|assistant|>"
    assert text(without, prompt_ids(without, "hi", chat_template=False)) == "hi"


@pytest.mark.parametrize("recipe", ["full.yaml", "full-search.yaml"])
def test_gpu_recipes_validate_and_plan_the_full_matrix(recipe):
    loaded = load_recipe(RECIPES / recipe)
    assert loaded.rollout.backend == "vllm" and loaded.training.autocast == "bfloat16"
    assert loaded.model.gradient_checkpointing and loaded.training.micro_batch_size
    assert len(expand(loaded)) == 16 * 3


# The hub-model tasks through the real engine on CPU: the built-in tiny model stands in for the instruct model
# (it cannot solve them; the point is that every stage runs: multi-token stop strings on the transformers
# backend, plain-language critiques, GSM8K paths for Search-P1, SORL's turns, micro-batching); its groups all
# tie, so rows with zero advantage are kept in the update (otherwise the losses would have nothing to do).
ON_CPU = ["model.name=sigx/tiny", "model.dtype=float32", "model.gradient_checkpointing=false",
          "model.tiny.hidden_size=32", "model.tiny.num_layers=1", "model.tiny.sft_steps=2",
          "model.tiny.sft_batch_size=4", "rollout.backend=hf", "rollout.group_size=2", "rollout.max_new_tokens=12",
          "training.steps=2", "training.eval_every=2", "training.prompts_per_step=2", "training.eval_samples=1",
          "training.mini_batches=2", "training.micro_batch_size=2", "training.autocast=off", "task.eval_prompts=2",
          "techniques.gcrl.pairs_per_step=2", "techniques.gcrl.critiques_per_response=2",
          "techniques.gcrl.critique_max_tokens=8", "techniques.gcrl.data_filter=false",
          "training.skip_zero_advantage=false", "logging.wandb=disabled"]
ALL_FOUR = [f"techniques.{name}.enabled=true" for name in ("search_p1", "gcrl", "sspo", "sorl")]


@pytest.mark.parametrize("recipe", ["full.yaml", "full-search.yaml"])
def test_hub_tasks_train_end_to_end_on_cpu_with_all_four_techniques(recipe, gsm8k_dir, tmp_path):
    from sigx.runs import read_jsonl
    from sigx.train import run_training

    extra = [f"task.path={gsm8k_dir}"] if recipe == "full.yaml" else ["task.num_people=8", "task.max_turns=3"]
    loaded = load_recipe(RECIPES / recipe, ON_CPU + ALL_FOUR + extra)
    summary = run_training(loaded, run_dir=tmp_path / "run")
    assert summary["status"] == "completed"
    last = read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]
    assert {"search_p1/r_path", "gcrl/critiques", "sspo/gate_weight", "sorl/turn_clip_fraction"} <= set(last)
    assert last["gcrl/critiques"] > 0 and last["loss"] == last["loss"]  # critiques were sampled; loss not NaN
