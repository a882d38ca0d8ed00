"""The rule judge's fields on the paper's scales (arXiv 2602.22576 App. D.3), each rule by hand."""

from sigx.judges.rules import accuracy_score, matched, planner_score, reasoning_score, token_f1


def test_matching_is_order_agnostic_and_counts_multiplicity():
    assert matched(["a", "b"], ["b", "a"]) == 2
    assert matched(["a", "b"], ["a", "a", "x"]) == 1
    assert matched(["a", "a"], ["a"]) == 1
    assert matched([], ["a"]) == 0


def test_rule_planner_score_on_the_papers_scale():
    assert planner_score((), ("boss", "city")) == 0.2  # no plan
    assert planner_score(("boss", "city"), ("boss", "city")) == 1.2  # the reference, in order
    assert planner_score(("city", "boss"), ("boss", "city")) == 1.0  # every step, another order
    assert planner_score(("boss", "friend", "city"), ("boss", "city")) == 1.0  # every step and an extra one
    assert planner_score(("boss", "friend"), ("boss", "city")) == 0.6  # half
    assert planner_score(("friend",), ("boss", "city")) == 0.2
    assert planner_score(("friend",), ()) == 1.0  # no reference plan: neutral


def test_rule_accuracy_and_reasoning_scores():
    assert accuracy_score("rome", ("rome",), correct=True) == 1.0
    assert accuracy_score("Eddie", ("Eddie Argos",), correct=False) == 0.5  # partial word overlap
    assert accuracy_score("The Argos.", ("argos",), correct=False) == 1.0  # equal after SQuAD normalisation
    assert accuracy_score("paris", ("rome",), correct=False) == 0.0
    assert [reasoning_score(c, 4) for c in (4, 2, 1, 0)] == [1.0, 0.8, 0.5, 0.0]
    assert token_f1("Eddie", "Eddie Argos") == 2 * (1 * 0.5) / 1.5
