"""The built-in tiny model: a reproducible, cached warm start."""

import torch
from safetensors.torch import load_file

from sigx.config import ArithmeticTaskConfig, TinyModelConfig
from sigx.models.tiny import ensure_tiny_base
from sigx.tasks.arithmetic import ArithmeticTask

SMALL = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                        sft_steps=3, sft_batch_size=4)
TASK = ArithmeticTaskConfig(eval_prompts=4)


def test_base_does_not_depend_on_the_process_rng_state(tmp_path, monkeypatch):
    weights = []
    for i in range(2):
        monkeypatch.setenv("SIGX_CACHE", str(tmp_path / f"cache{i}"))
        torch.manual_seed(100 + i)  # whatever ran before the build must not change the cached base
        torch.rand(17)
        path = ensure_tiny_base(SMALL, ArithmeticTask(TASK), TASK, log=lambda _: None)
        weights.append(load_file(path / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_base_is_built_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGX_CACHE", str(tmp_path))
    logs = []
    first = ensure_tiny_base(SMALL, ArithmeticTask(TASK), TASK, log=logs.append)
    built = len(logs)
    second = ensure_tiny_base(SMALL, ArithmeticTask(TASK), TASK, log=logs.append)
    assert first == second and built >= 1 and len(logs) == built  # no second build
    other = ensure_tiny_base(SMALL.model_copy(update={"sft_noise": 0.1}), ArithmeticTask(TASK), TASK, log=logs.append)
    assert other != first  # a different warm start gets its own cache entry
    assert not [p for p in tmp_path.joinpath("tiny").iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_a_critique_phase_follows_the_sft_and_trains_on_critiques_as_its_share_of_the_batches():
    """sft_critique_steps: a second phase whose batches are sft_critique_phase_share critiques (the rest task
    demonstrations); a warm start without it keeps the cache key it had before the field existed."""
    import random

    from sigx.models import tiny
    from sigx.models.tiny import build_char_tokenizer, build_tiny_model, sft_warm_start, tiny_cache_key

    task = ArithmeticTask(TASK)
    assert tiny_cache_key(SMALL, TASK) != tiny_cache_key(SMALL.model_copy(update={"sft_critique_steps": 2}), TASK)
    drawn = []

    def counting(task, rng: random.Random, config):  # every critique example drawn
        drawn.append(1)
        return real(task, rng, config)

    real, tiny.critique_example = tiny.critique_example, counting
    try:
        for phase_share, low, high in ((0.5, 0.4, 0.6), (0.9, 0.84, 0.96)):
            drawn.clear()
            config = SMALL.model_copy(update={"sft_critique_fraction": 0.0, "sft_critique_steps": 40,
                                              "sft_batch_size": 16, "sft_critique_phase_share": phase_share})
            tokenizer = build_char_tokenizer()
            losses = sft_warm_start(build_tiny_model(config, tokenizer), tokenizer, task, config, log=lambda _: None)
            assert len(losses) == 3 + 40
            share = len(drawn) / (40 * 16)  # none in the first phase (fraction 0), phase_share of the second's
            assert low < share < high, (phase_share, share)
    finally:
        tiny.critique_example = real
    with_phase = SMALL.model_copy(update={"sft_critique_steps": 2})
    assert tiny_cache_key(with_phase, TASK) == tiny_cache_key(  # the first share keeps the keys it had
        with_phase.model_copy(update={"sft_critique_phase_share": 0.5}), TASK)
    assert tiny_cache_key(with_phase, TASK) != tiny_cache_key(
        with_phase.model_copy(update={"sft_critique_phase_share": 0.9}), TASK)
    assert tiny_cache_key(SMALL, TASK) == tiny_cache_key(  # without a phase its share is no part of the key
        SMALL.model_copy(update={"sft_critique_phase_share": 0.9}), TASK)


def test_the_loaded_tokenizer_reads_text_as_the_warm_start_was_trained_on_it(tmp_path, monkeypatch):
    """What RL feeds the policy (load_base's tokenizer) must be the ids the SFT trained it on (the tokenizer built
    in memory). transformers 5's AutoTokenizer loaded the saved char tokenizer as Qwen2Tokenizer, whose byte-level
    pre-tokenizer dropped every space and newline: search prompts and observations lost their line breaks."""
    import random

    from sigx.config import ModelConfig, SearchTaskConfig
    from sigx.models.loading import load_base
    from sigx.models.tokenizer import ALPHABET, build_char_tokenizer
    from sigx.tasks.search import SearchTask

    monkeypatch.setenv("SIGX_CACHE", str(tmp_path))
    task_config = SearchTaskConfig(num_people=6, num_cities=2, eval_prompts=4)
    task = SearchTask(task_config)
    tokenizer, _, _ = load_base(ModelConfig(tiny=SMALL), task, task_config, log=lambda _: None)
    trained_on = build_char_tokenizer()
    problem = task.eval_problems()[0]
    episode = problem.prompt + "".join(s.text for s in task.demonstration(problem, random.Random(0), 0))
    for text in (episode, task.critique_prompt(problem, []) + "ann=ann bob=bob yes", ALPHABET):
        ids = tokenizer(text)["input_ids"]
        assert ids == trained_on(text)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert "\n" in episode and tokenizer.padding_side == "left"


def test_a_tokenizer_that_drops_characters_is_caught():
    """misread: what the engine warns with when the task's prompt does not survive the tokenizer."""
    from sigx.models.tokenizer import build_char_tokenizer, misread

    class DropsNewlines:  # as the byte-level class read the char vocabulary
        inner = build_char_tokenizer()

        def __call__(self, text, add_special_tokens=True):
            return self.inner(text.replace("\n", ""), add_special_tokens=add_special_tokens)

        def decode(self, ids, skip_special_tokens=False):
            return self.inner.decode(ids, skip_special_tokens=skip_special_tokens)

    assert misread(DropsNewlines(), "q:ann.boss\n") == "q:ann.boss"
    assert misread(build_char_tokenizer(), "q:ann.boss\n\nverdict: yes") is None


def test_only_warm_starts_with_verifying_critiques_of_episodes_change_key_with_their_format(monkeypatch):
    """VERIFY_FORMAT versions the verifying critiques of multi-turn (search) episodes; arithmetic's verifying
    critiques re-derive the answer, unchanged by it, so those warm starts keep their keys (and their cached
    weights and the names reports give them)."""
    import sigx.models.tiny as tiny
    from sigx.config import SearchTaskConfig

    search = SearchTaskConfig(eval_prompts=4)
    verify = SMALL.model_copy(update={"sft_critique_fraction": 0.2, "sft_critique_style": "verify"})
    others = [SMALL.model_copy(update={"sft_critique_fraction": 0.0}),
              SMALL.model_copy(update={"sft_critique_style": "verdict"})]
    cases = [(verify, search), *[(c, search) for c in others], (verify, TASK), *[(c, TASK) for c in others]]
    before = [tiny.tiny_cache_key(c, t) for c, t in cases]
    monkeypatch.setattr(tiny, "VERIFY_FORMAT", tiny.VERIFY_FORMAT + 1)
    after = [tiny.tiny_cache_key(c, t) for c, t in cases]
    assert before[0] != after[0] and before[1:] == after[1:]


def test_a_batch_of_demonstrations_encodes_each_string_as_one_call_per_string_does():
    """The warm start encodes a batch's strings in two batched tokenizer calls; the ids and labels must be those
    of one call per string (a build's weights depend on them): arithmetic and multi-turn search demonstrations,
    critiques, noisy ones, a segment of no text, a prompt of one character."""
    import random

    from sigx.config import SearchTaskConfig
    from sigx.models.tiny import critique_example, encode_demonstrations
    from sigx.models.tokenizer import build_char_tokenizer
    from sigx.tasks.base import Segment
    from sigx.tasks.search import SearchTask

    tokenizer = build_char_tokenizer()

    def one_call_per_string(task, prompt, segments):  # the encoding before it was batched
        ids = tokenizer(prompt)["input_ids"]
        labels = [-100] * len(ids)
        for seg in segments:
            seg_ids = tokenizer(seg.text, add_special_tokens=False)["input_ids"]
            ids += seg_ids
            labels += seg_ids if seg.by_model else [-100] * len(seg_ids)
        if not any(segments[-1].text.endswith(s) for s in task.turn_stop_strings):
            ids.append(tokenizer.eos_token_id)
            labels.append(tokenizer.eos_token_id)
        return ids, labels

    rng = random.Random(3)
    for task in (ArithmeticTask(TASK), SearchTask(SearchTaskConfig())):
        examples = []
        for _ in range(12):
            problem = task.train_problem(rng)
            examples.append((problem.prompt, task.demonstration(problem, rng, rng.choice([0.0, 0.5]))))
            examples.append(critique_example(task, rng, SMALL))
        examples.append(("q", [Segment("", by_model=True), Segment("a\n", by_model=False), Segment("b", by_model=True)]))
        assert any(len(segments) > 2 for _, segments in examples)  # multi-turn episodes among them
        assert encode_demonstrations(tokenizer, task, examples) == [one_call_per_string(task, p, s) for p, s in examples]
    assert encode_demonstrations(tokenizer, task, []) == []


def test_a_shape_that_cannot_fit_in_memory_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """Linux overcommits: an oversized model is not refused at allocation but killed mid-initialisation, without
    a word. The build refuses it first, from its parameter count (16 bytes each: float32 weights, gradients, two
    AdamW moments), with one line; nothing is built or cached."""
    import pytest
    from typer.testing import CliRunner

    from sigx import models
    from sigx.cli import app
    from sigx.config import RecipeError
    from sigx.models.tiny import check_fits
    from sigx.models.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    config = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)
    vocab = len(tokenizer)
    # embeddings and head (untied), q/k/v with biases, o, the MLP's three matrices, two norms, the final norm
    parameters = 2 * vocab * 32 + (32 * 32 + 32) + 2 * (32 * 16 + 16) + 32 * 32 + 3 * 32 * 64 + 2 * 32 + 32
    check_fits(config.model_copy(update={"sft_steps": 0}), tokenizer, available=4 * parameters)  # weights alone
    check_fits(config, tokenizer, available=16 * parameters)  # just fits
    with pytest.raises(RecipeError) as err:
        check_fits(config, tokenizer, available=16 * parameters - 1)
    (line,) = err.value.problems
    assert line == (f"model.tiny: sigx/tiny of this shape (hidden_size 32, num_layers 1, intermediate_size 64) has "
                    f"{parameters / 1e6:,.1f}M parameters: its warm start needs {16 * parameters / 2**30:,.1f} GiB "
                    "(float32 weights, gradients and AdamW's two moments) and this machine has 0.0 GiB available; "
                    "make it smaller")

    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models.tiny, "available_memory", lambda: 2**20)  # a machine with 1 MiB free
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: big\nlogging: {wandb: disabled, output_dir: " + str(tmp_path / "runs") + "}\n")
    result = CliRunner().invoke(app, ["train", str(recipe)])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "model.tiny: sigx/tiny of this shape (hidden_size 128, num_layers 3" in errors[0]
    assert "this machine has 0.0 GiB available; make it smaller" in errors[0]
    assert [p.name for p in (tmp_path / "cache" / "tiny").iterdir() if p.is_dir()] == [], "nothing built"


def test_an_allocation_refused_while_building_is_one_line_and_a_bug_is_not_hidden():
    from sigx.models.tiny import out_of_memory

    refused = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 4398046511104 bytes. Error code 12")
    assert out_of_memory(refused) and out_of_memory(MemoryError()) and out_of_memory(torch.OutOfMemoryError("x"))
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
