"""The built-in tasks: problems, held-out split, environment replies and rewards."""

import random

from sigx.config import ArithmeticTaskConfig, SearchTaskConfig
from sigx.tasks.arithmetic import ArithmeticTask
from sigx.tasks.base import Segment, is_eval_split
from sigx.tasks.search import SearchTask


def test_arithmetic_problem_reference_path_and_score():
    task = ArithmeticTask(ArithmeticTaskConfig())
    problem = task.train_problem(random.Random(3))
    assert not is_eval_split(problem.prompt)
    demo = task.demonstration(problem, random.Random(0), noise=0.0)
    assert demo[0].text == ";".join(problem.reference_path) + "#" + problem.answer
    assert task.score(problem, demo).reward == 1.0
    assert task.score(problem, [Segment("1+1=2#" + str(int(problem.answer) + 1), True)]).reward == 0.0
    assert task.score(problem, [Segment("no answer marker", True)]).reward == 0.0


def test_arithmetic_noisy_demonstration_is_wrong_but_consistent():
    task = ArithmeticTask(ArithmeticTaskConfig(min_ops=3, max_ops=3))
    rng = random.Random(0)
    problem = task.train_problem(rng)
    demo = task.demonstration(problem, rng, noise=1.0)[0].text
    steps = demo.split("#")[0].split(";")
    assert task.score(problem, [Segment(demo, True)]).reward == 0.0
    # the slip is carried on: every step starts from the previous step's (wrong) result
    for prev, cur in zip(steps, steps[1:]):
        assert cur.startswith(prev.split("=")[1])


def test_eval_split_is_held_out_and_fixed():
    task = ArithmeticTask(ArithmeticTaskConfig(eval_prompts=50))
    prompts = [p.prompt for p in task.eval_problems()]
    assert len(prompts) == len(set(prompts)) == 50 and all(is_eval_split(p) for p in prompts)
    assert prompts == [p.prompt for p in ArithmeticTask(ArithmeticTaskConfig(eval_prompts=50)).eval_problems()]
    rng = random.Random(0)
    assert not any(task.train_problem(rng).prompt in prompts for _ in range(2000))


def test_search_environment_replies():
    task = SearchTask(SearchTaskConfig(max_turns=3))
    problem = task.eval_problems()[0]
    key = problem.reference_path[0]
    assert task.respond(problem, [f"p:x\ns[{key}]"]) == f"\no:{task.kb[key]}\n"
    assert task.respond(problem, ["s[nobody.boss]"]) == "\no:none\n"
    assert task.respond(problem, ["a[zed]"]) is None  # an answer ends the episode
    assert task.respond(problem, ["rambling"]) is None  # so does a turn with no action
    assert task.respond(problem, ["s[a]", "s[b]", f"s[{key}]"]) is None  # max_turns reached
    eval_prompts = {p.prompt for p in task.eval_problems()}
    assert not eval_prompts & {p.prompt for p in task._train}


def test_search_score_and_path_steps():
    task = SearchTask(SearchTaskConfig())
    problem = next(p for p in task.eval_problems() if len(p.reference_path) == 2)
    segments = task.demonstration(problem, random.Random(0), noise=0.0)
    assert task.score(problem, segments).correct
    plan, executed = task.path_steps(problem, segments)
    assert plan == list(problem.meta["plan"]) and executed == list(problem.reference_path)
    wrong = segments[:-1] + [Segment("a[nobody]", True)]
    assert task.score(problem, wrong).reward == 0.0


def test_a_verifying_critique_re_derives_the_answer_and_compares_it_with_the_claim():
    from sigx.config import ArithmeticTaskConfig
    from sigx.tasks.arithmetic import ArithmeticTask
    from sigx.tasks.base import Problem, Segment

    task = ArithmeticTask(ArithmeticTaskConfig())
    problem = Problem("7+5-3=", "9", ("7+5=12", "12-3=9"))
    wrong = [Segment("7+5=12;12-3=8#8", True)]
    (critique,) = task.critique_demonstration(problem, wrong, correct=False, verify=True)
    assert critique.text == "7+5=12;12-3=9#9 9-8=1 no" and task.parse_verdict(critique.text) is False
    (bare,) = task.critique_demonstration(problem, wrong, correct=False)
    assert bare.text == "no"


def test_a_verifying_search_critique_re_walks_the_chain_and_names_the_wrong_hop():
    from sigx.tasks.base import Problem

    task = SearchTask(SearchTaskConfig())
    problem = Problem("q:ann.boss.city\n", "rome", ("ann.boss", "bob.city"), meta={"plan": ("boss", "city"),
                                                                                 "start": "ann"})
    slipped = [Segment("p:boss.city\n", True), Segment("s[ann.boss]", True), Segment("\no:bob\n", False),
               Segment("s[cal.city]", True), Segment("\no:oslo\n", False), Segment("a[oslo]", True)]
    (critique,) = task.critique_demonstration(problem, slipped, correct=False, verify=True)
    assert critique.text == "ann=ann+ bob=cal- oslo=oslo+ no" and task.parse_verdict(critique.text) is False
    assert task.critique_demonstration(problem, slipped, correct=True)[0].text == "yes"  # the bare verdict
    # an answer that is not what the last search returned is marked too; a flipped label keeps the marks
    misread = slipped[:-1] + [Segment("a[rome]", True)]
    (critique,) = task.critique_demonstration(problem, misread, correct=True, verify=True)
    assert critique.text == "ann=ann+ bob=cal- oslo=rome- yes"
    # an episode cut before its answer (max_turns): only its searches
    cut = slipped[:3]
    assert task.critique_demonstration(problem, cut, correct=False, verify=True)[0].text == "ann=ann+ no"
