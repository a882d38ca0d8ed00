"""A small retrieval-QA world built on the fly for the tests: a corpus of made-up people (each passage names
one person, their city and their instrument) and questions whose answer only that person's passage holds."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

#: the cases of retriever kind bm25 (sigx's own index): skipped where the bm25s package (sigx[search], in dev) is
#: not installed, as on the GPU image, instead of failing on the one line that says it is missing
needs_bm25s = pytest.mark.skipif(importlib.util.find_spec("bm25s") is None,
                                 reason="retriever kind bm25 needs the bm25s package: pip install 'sigx[search]'")

CITIES = ["rome", "oslo", "lima", "kyoto", "cairo", "quito", "perth", "dakar"]
INSTRUMENTS = ["violin", "cello", "flute", "harp", "oboe", "drums"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice("bdfgklmnprstvz" if i % 2 == 0 else "aeiou") for i in range(6))


def build_world(root: Path, people: int = 40, seed: int = 0) -> dict:
    """Writes corpus.jsonl, train.jsonl and test.jsonl under ``root``; returns the facts."""
    rng = random.Random(seed)
    names = list(dict.fromkeys(_name(rng) for _ in range(people * 3)))[:people]
    facts = {n: (rng.choice(CITIES), rng.choice(INSTRUMENTS)) for n in names}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i, (name, (city, instrument)) in enumerate(facts.items()):
            f.write(json.dumps({"id": str(i), "title": name.title(),
                                "text": f"{name.title()} lives in {city.title()} and plays the {instrument}."}) + "\n")
    rows = [{"question": f"where does {n} live", "golden_answers": [c, f"{c} city"], "data_source": "people"}
            for n, (c, _) in facts.items()]
    rows += [{"question": f"what does {n} play", "golden_answers": [i]} for n, (_, i) in facts.items()]
    rng.shuffle(rows)
    cut = len(rows) * 3 // 4
    for name, part in (("train", rows[:cut]), ("test", rows[cut:])):
        with open(root / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    return facts
