"""Text: attention masks, pooling, and the text encoder (the tiny tier's WordPiece tokenizer is in mmcourse.data).

A text encoder turns strings into token ids with a tokenizer, then into one vector
per token (B, L, D). Batches are padded to the longest text, so everything after the
tokenizer must know which positions are real: the attention mask (B, L), 1 = real
token, 0 = padding (Hugging Face's convention).

    encoder = TextEncoder.from_tier("tiny")             # or "packaged" (real MiniLM), "hub"
    tokens = encoder(["where is the red shape", "a red circle"])
    tokens.states        # (2, L, 64)  one vector per token
    tokens.padding_mask  # (2, L)      True = padding (mmcourse.tokens' key-padding convention)
    encoder.embed(["where is the red shape"])            # (1, 64): the mean of the real tokens
"""

from __future__ import annotations

import torch

from mmcourse import tiers
from mmcourse.data import SPECIAL_TOKENS, tiny_tokenizer, tiny_vocabulary  # noqa: F401 - re-exported: the tiny tier's tokenizer
from mmcourse.tokens import Tokens, masked_mean


# ---------------------------------------------------------------- masks


def attention_mask_from_ids(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """input_ids (B, L) → attention_mask (B, L) long, 1 where the id is a real token, 0 where it is [PAD]."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError(f"input_ids must be a (B, L) tensor, got {getattr(input_ids, 'shape', type(input_ids))}")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
    return (input_ids != pad_token_id).long()


def attention_bias(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """attention_mask (B, L), 1 = real → the additive bias BERT adds to its attention scores, (B, 1, 1, L).

    0 for a real token and the most negative number of `dtype` for padding, so that after
    scores (B, heads, L_q, L) + bias, softmax gives padding a weight of exactly 0. It is made
    in the model's dtype: −1e9 does not fit in float16 (it becomes −inf, and a row of −inf is NaN).
    """
    _check_attention_mask(attention_mask)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be the model's floating dtype (e.g. torch.float32), got {dtype}")
    keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
    bias = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


# ---------------------------------------------------------------- pooling


def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the real tokens of each sequence: how MiniLM and other sentence encoders pool.

    hidden (B, L, D) float, attention_mask (B, L) with 1 = real token, 0 = padding → (B, D).
    The mask may be bool, integer or float (values 0 and 1). Padding has no influence:
    padding a text with more [PAD] tokens does not change its vector.
    From mmcourse's Tokens (True = padding) pass `tokens.attention_mask`, not `tokens.padding_mask`.
    """
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
        raise ValueError(f"hidden must be (B, L, D), got shape {tuple(getattr(hidden, 'shape', ()))}")
    if not hidden.is_floating_point():
        raise TypeError(f"hidden has dtype {hidden.dtype}; pass the encoder's float states "
                        f"(model(...).last_hidden_state), not token ids")
    _check_attention_mask(attention_mask)
    if attention_mask.shape[0] != hidden.shape[0]:
        raise ValueError(f"batch sizes differ: hidden has {hidden.shape[0]} sequences, attention_mask has "
                         f"{attention_mask.shape[0]}; pass the mask that the tokenizer returned with this batch")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"attention_mask must be (B, L) = {tuple(hidden.shape[:2])} to match hidden {tuple(hidden.shape)}, "
            f"got {tuple(attention_mask.shape)}; pass the mask that the tokenizer returned with this batch"
        )
    padding_mask = attention_mask.to(hidden.device) == 0  # (B, L) True = padding
    empty = padding_mask.all(dim=1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0])
        raise ValueError(f"row {row} of attention_mask has no real token; every text needs at least one. "
                         f"If you passed a padding mask (True = padding, e.g. Tokens.padding_mask), "
                         f"invert it: pass ~padding_mask or tokens.attention_mask")
    return masked_mean(hidden, padding_mask)  # (B, D)


# ---------------------------------------------------------------- the encoder


def _as_text_batch(texts) -> list[str]:
    """A list of non-empty strings; a single str is a batch of one."""
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, torch.Tensor):
        raise TypeError("got a tensor, but TextEncoder takes strings and tokenizes them itself (with [CLS], "
                        "[SEP] and a mask); to run on ids you already have, call encoder.model(input_ids=..., "
                        "attention_mask=...) directly")
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}; convert it with list(texts)")
    if not texts:
        raise ValueError("texts is an empty list; pass at least one string")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is a {type(text).__name__}, not a str; pass strings only")
        if not text.strip():
            raise ValueError(f"texts[{i}] is empty: it would encode as [CLS] [SEP] alone and its vector would "
                             f"mean nothing; drop it first, e.g. [t for t in texts if t.strip()]")
    return list(texts)


def max_positions(model, tokenizer) -> int:
    """The most tokens (specials included) that the model reads: its position table, or the tokenizer's limit."""
    return min(model.config.max_position_embeddings, tokenizer.model_max_length)


class TextEncoder(torch.nn.Module):
    """A BERT-style encoder and its tokenizer: a list of strings → Tokens(states (B, L, D), padding_mask (B, L)).

    Texts are tokenized as one batch padded to the longest; padding_mask is True at padding.
    A single str is accepted as a batch of one. Empty texts and non-strings raise.
    Long texts: with max_length=None a text longer than the model's positions (`max_positions`:
    128 in the tiny tier, 512 for MiniLM and BERT) raises; with max_length=N every text is cut
    to its first N − 2 word pieces between [CLS] and [SEP] (as sentence-transformers does with
    N = 256 for MiniLM). The wrapper keeps the model's mode: loaders return it in eval mode.
    """

    def __init__(self, model, tokenizer, max_length: int | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        limit = max_positions(model, tokenizer)
        if max_length is not None and not 3 <= max_length <= limit:
            raise ValueError(f"max_length must be between 3 ([CLS], one piece, [SEP]) and the model's {limit} "
                             f"positions, got {max_length}")
        self.max_length = max_length
        self.train(model.training)  # take the model's mode (eval from the loaders): dropout stays as it was

    @classmethod
    def from_tier(cls, tier: str = "tiny", name: str | None = None, **kwargs) -> "TextEncoder":
        """Load with `mmcourse.tiers.load_text_encoder(tier, name, **kwargs)`; `max_length` goes to the wrapper."""
        max_length = kwargs.pop("max_length", None)
        model, tokenizer = tiers.load_text_encoder(tier, name, **kwargs)
        return cls(model, tokenizer, max_length=max_length)

    @property
    def width(self) -> int:
        """D, the size of each token vector."""
        return self.model.config.hidden_size

    def tokenize(self, texts) -> dict[str, torch.Tensor]:
        """texts → input_ids, attention_mask (and token_type_ids), each (B, L), on the model's device."""
        texts = _as_text_batch(texts)
        if self.max_length is not None:
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
        else:
            batch = self.tokenizer(texts, padding=True, return_tensors="pt")
            limit = max_positions(self.model, self.tokenizer)
            lengths = batch["attention_mask"].sum(dim=1)
            if int(lengths.max()) > limit:
                i = int(lengths.argmax())
                raise ValueError(f"texts[{i}] is {int(lengths[i])} tokens long, but the model reads at most "
                                 f"{limit}; shorten or split it, or cut every text to its first tokens with "
                                 f"TextEncoder(..., max_length={limit})")
        device = next(self.model.parameters()).device
        return {key: value.to(device) for key, value in batch.items()}

    def forward(self, texts) -> Tokens:
        """texts (B strings) → Tokens(states (B, L, D), padding_mask (B, L) bool, True = padding)."""
        batch = self.tokenize(texts)
        states = self.model(**batch).last_hidden_state  # (B, L, D)
        return Tokens(states, batch["attention_mask"] == 0)

    def embed(self, texts, pooling: str = "mean") -> torch.Tensor:
        """One vector per text, (B, D): the mean of its real tokens ("mean") or the [CLS] token's state ("cls")."""
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        tokens = self(texts)
        if pooling == "cls":
            return tokens.states[:, 0]  # (B, D): [CLS] is the first token (BERT tokenizers pad on the right)
        return masked_mean_pool(tokens.states, tokens.attention_mask)  # (B, D)


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_attention_mask(attention_mask: torch.Tensor, name: str = "attention_mask") -> None:
    """A (B, L) tensor of 0s and 1s (bool, integer or float), 1 = real token."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, L) of 0 and 1, got {type(attention_mask).__name__}; "
                        f"take it from the tokenizer: tokenizer(texts, padding=True, return_tensors='pt')")
    if attention_mask.dim() != 2:
        raise ValueError(f"{name} must be (B, L), got shape {tuple(attention_mask.shape)}")
    if attention_mask.is_complex() or not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1 (1 = real token, 0 = padding), "
                         f"got values {attention_mask.unique()[:5].tolist()}; did you pass input_ids instead? "
                         f"build the mask with attention_mask_from_ids(input_ids, tokenizer.pad_token_id)")
