"""A character-level tokenizer built locally with the `tokenizers` library (no hub download).

It is a real ``PreTrainedTokenizerFast``: it saves and loads with ``save_pretrained``/``from_pretrained`` like
any hub tokenizer, so the rest of sigx never special-cases the tiny model. Characters are the right unit
here: the built-in tasks are digits, operators and short names, and a char model must really compute.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz+-*/=;:#.,?!()[]<>_ \n"


def build_char_tokenizer(alphabet: str = ALPHABET) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in dict.fromkeys(alphabet):
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        padding_side="left",
    )
