"""Text: a tokenizer for the tiny tier, masks and pooling.

A text encoder turns a string into token ids with a tokenizer, then into one
vector per token (B, L, D). Batches are padded to the longest text, so every
operation after the encoder must know which positions are real: that is the
attention mask (B, L), 1 = real token, 0 = padding (Hugging Face's convention).
"""

from __future__ import annotations

import functools
import string

import torch

from mmcourse.data import VOCABULARY

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@functools.lru_cache(maxsize=1)
def tiny_vocabulary() -> tuple[str, ...]:
    """The tiny tier's WordPiece vocabulary, the same on every machine.

    Special tokens first, then the dataset's words, then single letters, digits and
    punctuation, then continuation pieces (##a … ##z), each group sorted. Any lowercase
    word can be spelled with the pieces, so nothing English becomes [UNK].
    """
    chars = sorted(set(string.ascii_lowercase + string.digits + ".,?!'-"))
    words = [w for w in VOCABULARY if w not in chars]
    pieces = sorted("##" + c for c in string.ascii_lowercase + string.digits)
    return tuple(SPECIAL_TOKENS) + tuple(words) + tuple(chars) + tuple(pieces)


def tiny_tokenizer():
    """A BERT WordPiece tokenizer over `tiny_vocabulary()`, built offline.

    It is built from an in-memory vocab dict: `BertTokenizer(vocab_file=...)` silently
    ignores the file in transformers 5 (every word becomes [UNK]).
    """
    from transformers import BertTokenizer

    vocab = {token: i for i, token in enumerate(tiny_vocabulary())}
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=128)


def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the real tokens of each sequence.

    hidden (B, L, D), attention_mask (B, L) with 1 = real token, 0 = padding → (B, D).
    Padding has no influence: padding a text with more [PAD] tokens does not change its vector.
    """
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be (B, L, D), got shape {tuple(hidden.shape)}")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"attention_mask must be (B, L) = {tuple(hidden.shape[:2])} to match hidden {tuple(hidden.shape)}, "
            f"got {tuple(attention_mask.shape)}"
        )
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    counts = weights.sum(dim=1)  # (B, 1)
    if bool((counts == 0).any()):
        raise ValueError("a row of attention_mask has no real token; every text needs at least one token")
    return (hidden * weights).sum(dim=1) / counts
