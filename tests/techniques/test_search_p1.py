"""Search-P1 (arXiv 2602.22576) on hand-built trajectories: every equation against values computed by hand.

The worked numbers use the rule judge (sigx/judges/rules.py); each comment says which rule gives which value."""

import pytest

from sigx.config import ArithmeticTaskConfig, SearchP1Config, SearchTaskConfig
from sigx.engine.trajectory import Trajectory
from sigx.judges.base import PathEvaluation
from sigx.tasks.arithmetic import ArithmeticTask
from sigx.tasks.base import Problem, Segment
from sigx.tasks.search import SearchTask
from sigx.techniques.search_p1 import (SearchP1, path_reward, reference_alignment, self_consistency, soft_outcome,
                                       total_reward)

SEARCH = SearchTask(SearchTaskConfig(num_people=6, num_cities=3, min_hops=2, max_hops=2, max_turns=6))
BOSS_CITY = next(p for p in SEARCH._all if p.meta["plan"] == ("boss", "city"))
WRONG_CITY = next(c for c in SEARCH.cities if c != BOSS_CITY.answer)


def scored(task, problem, segments):
    t = Trajectory(problem=problem, group=0, prompt_ids=[], segments=segments)
    t.correct = task.score(problem, segments).correct
    t.reward = t.outcome_reward = float(t.correct)
    return t


def episode(problem, *turns):
    """Model turns, each followed by an observation (masked), the last one (the answer) by none."""
    segments = []
    for turn in turns:
        segments += [Segment(turn, True), Segment("\no:x\n", False)]
    return scored(SEARCH, problem, segments[:-1])


def shape(task, *trajectories, **config):
    SearchP1(SearchP1Config(**config), task).shape_rewards(list(trajectories))
    return [t.info["search_p1"] for t in trajectories]


# ------------------------------------------------------------------------------------------------ the equations
E = PathEvaluation(planner_score=1.0, model_plan_steps=3, effective_steps_self=2, effective_steps_ref=1,
                   outcome_accuracy_score=0.5, outcome_reasoning_score=0.8)


def test_eq6_self_consistency():
    assert self_consistency(E, n_actions=4) == pytest.approx(1.0 * 2 / 3 * 2 / 4)
    assert self_consistency(E, n_actions=4, efficiency=False) == pytest.approx(2 / 3)  # Alg. 3's form
    assert self_consistency(PathEvaluation(1.2, 0, 0, 0, 0, 0), n_actions=4) == 0.0  # no plan


def test_eq7_reference_alignment():
    assert reference_alignment(E, n_reference=2, n_actions=4) == pytest.approx(1 / 2 * 1 / 4)
    assert reference_alignment(E, n_reference=2, n_actions=4, efficiency=False) == pytest.approx(1 / 2)
    assert reference_alignment(E, n_reference=0, n_actions=4) is None  # no reference path: track off


def test_path_reward_is_the_maximum_of_the_tracks_not_a_mean():
    assert path_reward(1 / 3, 1 / 8) == pytest.approx(1 / 3)
    assert path_reward(0.1, 0.9) == 0.9
    assert path_reward(0.4, None) == 0.4


def test_eq8_soft_outcome():
    assert soft_outcome(True, E, alpha=0.8) == 1.0
    assert soft_outcome(False, E, alpha=0.8) == pytest.approx(0.8 * 0.5 + 0.2 * 0.8)
    assert soft_outcome(False, E, alpha=0.8, soft=False) == 0.0


def test_eq4_total_with_alg3_format_gate():
    c = SearchP1Config()
    assert total_reward("valid", 0.5, 0.4, c) == pytest.approx(0.3 * 0.5 + 0.6 * 0.4 + 0.1 * 1.0)
    assert total_reward("partial", 0.5, 0.4, c) == pytest.approx(0.3 * 0.5 + 0.6 * 0.4 + 0.1 * 0.5)
    assert total_reward("invalid", 1.2, 1.0, c) == 0.0  # Alg. 3 line 7, whatever the answer


# ------------------------------------------------------------------------------------------------ trajectories
def test_failed_search_episode_3_planned_1_executed_4_actions_1_of_2_reference_steps():
    key1, _ = BOSS_CITY.reference_path  # e.g. "ann.boss"; the gold second key is never searched
    fail = episode(BOSS_CITY, f"p:boss.friend.city\ns[{key1}]", "s[zzz.boss]", "s[yyy.city]", "s[xxx.boss]",
                   f"a[{WRONG_CITY}]")
    (s,) = shape(SEARCH, fail)
    # plan (boss, friend, city): every reference step plus one -> planner 1.0; the first search queries the
    # start entity (hop boss), the other three query entities the chain never reached -> 1 of the 3 planned
    # steps executed; 4 actions; reference keys: 1 of 2 covered
    assert s.evaluation == PathEvaluation(1.0, 3, 1, 1, 0.0, 0.8)
    assert s.s_self == pytest.approx(1.0 * 1 / 3 * 1 / 4)
    assert s.s_ref == pytest.approx(1 / 2 * 1 / 4)
    assert s.r_path == pytest.approx(1 / 8)
    assert s.r_outcome == pytest.approx(0.8 * 0.0 + 0.2 * 0.8)  # wrong single-token answer: r_acc 0
    assert s.format == "valid"
    assert fail.reward == pytest.approx(0.3 * (1 / 8) + 0.6 * 0.16 + 0.1 * 1.0)  # = 0.2335


def test_a_search_on_the_wrong_entity_executes_no_plan_step():
    """The plan's hops are executed only along the chain the searches build: searching another person's boss,
    then that boss's city, follows the plan's relations but not the question (it once earned S_self = 1.2)."""
    start = BOSS_CITY.meta["start"]
    other = next(p for p in SEARCH.people if p != start and SEARCH.kb[f"{p}.boss"] != SEARCH.kb[f"{start}.boss"])
    boss = SEARCH.kb[f"{other}.boss"]
    answer = SEARCH.kb[f"{boss}.city"]
    wrong = episode(BOSS_CITY, f"p:boss.city\ns[{other}.boss]", f"s[{boss}.city]", f"a[{answer}]")
    key1, key2 = BOSS_CITY.reference_path
    right = episode(BOSS_CITY, f"p:boss.city\ns[{key1}]", f"s[{key2}]", f"a[{BOSS_CITY.answer}]")
    w, r = shape(SEARCH, wrong, right)
    assert SEARCH.executed_as_plan(BOSS_CITY, [f"{other}.boss", f"{boss}.city"]) == [f"{other}.boss", f"{boss}.city"]
    assert SEARCH.executed_as_plan(BOSS_CITY, [key1, key2]) == ["boss", "city"]
    assert w.evaluation.effective_steps_self == 0 and w.s_self == 0.0 and w.r_path == 0.0
    assert r.s_self == pytest.approx(1.2)
    # the chain starts again from nothing but the question: a repeated first search is off the chain
    assert SEARCH.executed_as_plan(BOSS_CITY, [key1, key1, key2]) == ["boss", key1, "city"]


def test_every_trajectory_is_rescored_correct_ones_included():
    key1, key2 = BOSS_CITY.reference_path
    perfect = episode(BOSS_CITY, f"p:boss.city\ns[{key1}]", f"s[{key2}]", f"a[{BOSS_CITY.answer}]")
    redundant = episode(BOSS_CITY, f"p:boss.city\ns[{key1}]", f"s[{key1}]", f"s[{key2}]", f"a[{BOSS_CITY.answer}]")
    p, r = shape(SEARCH, perfect, redundant)
    assert perfect.correct and redundant.correct
    assert perfect.reward == pytest.approx(0.3 * 1.2 + 0.6 * 1.0 + 0.1)  # S_self = 1.2 (excellent plan, 2/2, 2/2)
    # a repeated search: S_self = 1.2 * 2/2 * 2/3, S_ref = 2/2 * 2/3; the efficiency factor costs it
    assert r.r_path == pytest.approx(1.2 * 2 / 3)
    assert redundant.reward == pytest.approx(0.3 * 0.8 + 0.6 + 0.1) and redundant.reward < perfect.reward


def test_format_grades_of_alg3():
    key1, key2 = BOSS_CITY.reference_path
    no_plan = episode(BOSS_CITY, f"s[{key1}]", f"s[{key2}]", f"a[{BOSS_CITY.answer}]")  # answer + observations
    no_answer = episode(BOSS_CITY, f"p:boss.city\ns[{key1}]", f"s[{key2}]")
    no_search = episode(BOSS_CITY, f"p:boss.city\na[{BOSS_CITY.answer}]")
    s_partial, s_none, s_nosearch = shape(SEARCH, no_plan, no_answer, no_search)
    assert [s_partial.format, s_none.format, s_nosearch.format] == ["partial", "invalid", "invalid"]
    assert no_answer.reward == 0.0 and no_search.reward == 0.0 and no_search.correct  # a correct answer, still 0
    # partial: no plan -> S_self 0; S_ref = 2/2 * 2/2 = 1 -> 0.3 * 1 + 0.6 * 1 + 0.1 * 0.5
    assert no_plan.reward == pytest.approx(0.3 + 0.6 + 0.05)


def test_without_a_reference_path_only_self_consistency_runs_and_the_summary_says_so():
    bare = Problem(BOSS_CITY.prompt, BOSS_CITY.answer, meta=BOSS_CITY.meta)  # no reference path or plan
    key1, key2 = BOSS_CITY.reference_path
    traj = episode(bare, f"p:boss.city\ns[{key1}]", f"s[{key2}]", f"a[{WRONG_CITY}]")
    technique = SearchP1(SearchP1Config(), SEARCH)
    technique.shape_rewards([traj])
    s = traj.info["search_p1"]
    assert s.s_ref is None and s.r_path == s.s_self == pytest.approx(1.0)  # plan rated 1.0 (no reference plan)
    # r_reason from the plan's own coverage (2/2 -> 1.0), r_acc 0
    assert traj.reward == pytest.approx(0.3 * 1.0 + 0.6 * 0.2 + 0.1)
    row = technique.metrics([traj])  # summary() reads its own rows, without the "search_p1/" prefix
    assert row["reference_share"] == 0.0 and "s_ref" not in row
    summary = technique.summary([row, row])
    assert summary["search_p1_reference_share"] == 0.0 and "self-consistency track only" in summary["search_p1_tracks"]
    numbers = {k for k, v in summary.items() if isinstance(v, float)}
    assert numbers == set(SearchP1.summary_metrics)  # what an ablation may declare as its metric


def test_arithmetic_rewards_by_hand():
    task = ArithmeticTask(ArithmeticTaskConfig())
    problem = Problem("7+5-3=", "9", ("7+5=12", "12-3=9"))
    right = scored(task, problem, [Segment("7+5=12;12-3=9#9", True)])
    half = scored(task, problem, [Segment("7+5=12;12-3=8#8", True)])  # first step right
    wrong = scored(task, problem, [Segment("7+5=11;11-3=8#8", True)])
    malformed = scored(task, problem, [Segment("7+5=12;12-3#9", True)])  # a broken step, the right answer
    no_answer = scored(task, problem, [Segment("7+5=12;12-3=9", True)])
    shape(task, right, half, wrong, malformed, no_answer)
    # no plan in arithmetic: R_path = S_ref = (c/2) * (c/n_actions)
    assert right.reward == pytest.approx(0.3 * 1.0 + 0.6 + 0.1)
    assert half.reward == pytest.approx(0.3 * (1 / 2 * 1 / 2) + 0.6 * (0.2 * 0.8) + 0.1)  # r_reason 0.8 (half)
    assert wrong.reward == pytest.approx(0.1)  # nothing covered: only the format term
    assert malformed.info["search_p1"].format == "partial"
    assert malformed.reward == pytest.approx(0.3 * (1 / 2 * 1 / 2) + 0.6 * 1.0 + 0.05)
    assert no_answer.reward == 0.0
    assert right.reward > half.reward > wrong.reward > no_answer.reward


def test_options_follow_alg3_and_the_binary_ablation():
    task = ArithmeticTask(ArithmeticTaskConfig())
    problem = Problem("7+5-3=", "9", ("7+5=12", "12-3=9"))
    half = scored(task, problem, [Segment("7+5=12;12-3=8#8", True)])
    shape(task, half, efficiency=False, soft_outcome=False)
    assert half.reward == pytest.approx(0.3 * (1 / 2) + 0.6 * 0.0 + 0.1)


def test_critiques_keep_their_own_reward_and_metrics_name_every_term():
    task = ArithmeticTask(ArithmeticTaskConfig())
    problem = Problem("7+5-3=", "9", ("7+5=12", "12-3=9"))
    response = scored(task, problem, [Segment("7+5=12;12-3=8#8", True)])
    critique = scored(task, Problem("q", "yes"), [Segment("yes", True)])
    critique.kind, critique.reward = "critique", 0.7
    technique = SearchP1(SearchP1Config(), task)
    technique.shape_rewards([response, critique])
    assert critique.reward == 0.7 and "search_p1" not in critique.info
    metrics = technique.metrics([response, critique])
    assert {"r_path", "s_self", "s_ref", "r_outcome", "r_format", "reward", "failed_reward", "failed_with_signal",
            "reference_share", "planner_score", "format_invalid"} <= set(metrics)


def test_natural_search_grades_format_like_the_compact_one():
    from sigx.tasks.search_natural import NaturalSearchTask

    task = NaturalSearchTask(SearchTaskConfig(num_people=6, num_cities=3, min_hops=2, max_hops=2, interface="natural"))
    problem = next(p for p in task._all if p.meta["plan"] == ("boss", "city"))
    k1, k2 = problem.reference_path
    segments = [Segment(f"<plan>boss, city</plan> <search>{k1}</search>", True), Segment("\n<result>x</result>\n", False),
                Segment(f"<search>{k2}</search>", True), Segment("\n<result>y</result>\n", False),
                Segment(f"<answer>{problem.answer}</answer>", True)]
    assert task.format_check(problem, segments) == "valid"
    assert task.format_check(problem, segments[2:]) == "partial"  # no plan
