"""A character-level tokenizer built locally with the `tokenizers` library (no hub download).

It is a real ``PreTrainedTokenizerFast``: it saves and loads with ``save_pretrained``/``from_pretrained`` like
any hub tokenizer, so the rest of sigx never special-cases the tiny model. Characters are the right unit
here: the built-in tasks are digits, operators and short names, and a char model must really compute.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz+-*/=;:#.,?!()[]<>_ \n"


def build_char_tokenizer(alphabet: str = ALPHABET) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in dict.fromkeys(alphabet):
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every char, newlines too
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        padding_side="left",
    )


#: tokenizer classes that mean "the tokenizer is exactly its tokenizer.json" (transformers 4: PreTrainedTokenizerFast;
#: 5: TokenizersBackend, what save_pretrained writes for the tokenizer above)
GENERIC_FAST_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def load_tokenizer(path: str):
    """The tokenizer of the model at ``path``, as it was saved.

    ``AutoTokenizer`` in transformers 5 picks the class of the model's type (``Qwen2Tokenizer`` for the tiny
    model's Qwen2 architecture) even when the saved tokenizer is a generic one, and that class rebuilds its own
    byte-level pre-tokenizer over the saved vocabulary: spaces and newlines, which a char vocabulary holds as
    themselves, are dropped (``"q:ann.boss\\n"`` encodes as ``"q:ann.boss"``), so the policy reads text its warm
    start never saw. A tokenizer saved as generic is therefore loaded as generic; any other through AutoTokenizer.
    """
    from transformers import AutoTokenizer

    config_file = Path(path) / "tokenizer_config.json"
    if config_file.is_file():
        try:
            saved_class = json.loads(config_file.read_text()).get("tokenizer_class")
        except (OSError, ValueError, AttributeError):
            saved_class = None
        if saved_class in GENERIC_FAST_CLASSES:
            return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def misread(tokenizer, text: str) -> str | None:
    """What ``text`` reads back as after a trip through ``tokenizer``, when that is not ``text`` itself (None when
    it is). A tokenizer that drops or replaces characters of the task's prompts feeds the policy other text than
    the task wrote, silently: how the tiny model lost every newline of the search task under transformers 5."""
    back = tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True)
    return None if back == text else back
