"""How a free-text answer is compared with its gold strings: SQuAD's normalisation, which Search-R1's EM and
Search-P1's token F1 both apply. Written once here for the QA task (:mod:`sigx.tasks.qa`) and the rule judge
(:mod:`sigx.judges.rules`), which sit on different floors."""

from __future__ import annotations

import re
import string

_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's (and Search-R1's) answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())
