"""What every encoder returns: a batch of token vectors and which of them are padding.

    text   "where is the red shape"   → Tokens(states (B, L_text, D),  padding_mask (B, L_text))
    image  (B, 3, 224, 224)           → Tokens(states (B, 197, D),     padding_mask (B, 197))   all False
    audio  1 s of speech in a 30 s window → Tokens(states (B, 1500, D), padding_mask (B, 1500))  True after state 50

Mask conventions differ between libraries, and mixing them up is a classic silent bug:
    Hugging Face attention_mask     1 / True = real token (keep)
    nn.MultiheadAttention key_padding_mask   True = padding (ignore)
    F.scaled_dot_product_attention boolean attn_mask   True = attend (keep)
mmcourse uses the key-padding convention everywhere: `padding_mask` True = padding, ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Tokens:
    states: torch.Tensor  # (B, L, D)
    padding_mask: torch.Tensor  # (B, L) bool, True = padding

    def __post_init__(self):
        if self.states.dim() != 3:
            raise ValueError(f"states must be (B, L, D), got shape {tuple(self.states.shape)}")
        if self.padding_mask.shape != self.states.shape[:2]:
            raise ValueError(f"padding_mask must be (B, L) = {tuple(self.states.shape[:2])}, "
                             f"got {tuple(self.padding_mask.shape)}")
        if self.padding_mask.dtype != torch.bool:
            raise TypeError(f"padding_mask must be bool (True = padding), got {self.padding_mask.dtype}; "
                            f"from a Hugging Face attention_mask use `attention_mask == 0`")

    @property
    def attention_mask(self) -> torch.Tensor:
        """The Hugging Face convention: (B, L) long, 1 = real token."""
        return (~self.padding_mask).long()

    def to(self, device) -> "Tokens":
        return Tokens(self.states.to(device), self.padding_mask.to(device))


def check_conditioning(cond, d_cond: int, built_as: str) -> None:
    """Check what a decoder is conditioned on: Tokens (B, L, d_cond) of floats, each row with a real token.

    built_as names the decoder class, for the fix in the message (e.g. "PatchImageDecoder")."""
    if not isinstance(cond, Tokens):
        shape = tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__
        raise TypeError(f"cond must be mmcourse.tokens.Tokens(states (B, L, {d_cond}), padding_mask (B, L)), "
                        f"got {shape}; wrap (B, L, D) states as Tokens(states, torch.zeros(B, L, dtype=torch.bool)), "
                        f"a (B, D) vector as Tokens(v[:, None], torch.zeros(B, 1, dtype=torch.bool))")
    width = cond.states.shape[-1]
    if width != d_cond:
        raise ValueError(f"cond tokens have width {width}, but this {built_as} was built for d_cond = {d_cond}; "
                         f"project them (nn.Linear({width}, {d_cond})) or build {built_as}(d_cond={width}, ...)")
    if not cond.states.is_floating_point():
        raise TypeError(f"cond.states has dtype {cond.states.dtype}; pass an encoder's float states, not token ids")
    if cond.states.shape[1] == 0:
        raise ValueError("cond has no tokens (L = 0); a decoder needs at least one conditioning token")
    if bool(cond.padding_mask.all(dim=1).any()):
        rows = cond.padding_mask.all(dim=1).nonzero().flatten().tolist()
        raise ValueError(f"cond rows {rows} are all padding; each sample needs at least one real token. If you "
                         f"passed a Hugging Face attention_mask (1 = real) as padding_mask, invert it: "
                         f"attention_mask == 0")


def masked_mean(states: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """The mean over the real positions only: states (B, L, D), padding_mask (B, L) True = padding → (B, D).

    Padding contributes nothing, whatever values it holds, so a text gets the same vector in any batch.
    A row with no real position gives zeros (not NaN)."""
    keep = (~padding_mask).to(states.dtype).unsqueeze(-1)  # (B, L, 1), 1 = real
    return (states * keep).sum(1) / keep.sum(1).clamp(min=1.0)


def is_present(tokens: Tokens) -> torch.Tensor:
    """(B,) bool: True where the sample has at least one real (unmasked) token of this modality."""
    if not isinstance(tokens, Tokens):
        raise TypeError(f"expected mmcourse.tokens.Tokens, got {type(tokens).__name__}")
    return ~tokens.padding_mask.all(dim=1)


def check_modalities(inputs: dict[str, Tokens], widths: dict[str, int] | None = None) -> int:
    """A non-empty dict {modality: Tokens} with one batch size (and, given widths, known modalities of those
    widths). Returns the batch size B."""
    if not isinstance(inputs, dict) or not inputs:
        expected = f"; expected some of {sorted(widths)}" if widths else ""
        raise ValueError(f"no modality given: inputs must be a non-empty dict {{modality: Tokens}}{expected}")
    unknown = set(inputs) - set(widths) if widths is not None else set()
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; this module was built for {sorted(widths)}")
    for m, t in inputs.items():
        if not isinstance(t, Tokens):
            raise TypeError(f"inputs[{m!r}] must be mmcourse.tokens.Tokens(states, padding_mask), got {type(t).__name__}")
        if widths is not None and t.states.shape[-1] != widths[m]:
            raise ValueError(f"{m} tokens have width {t.states.shape[-1]}, but the module was built for {widths[m]}")
    sizes = {m: t.states.shape[0] for m, t in inputs.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"modalities have different batch sizes: {sizes}; each sample needs all its modalities")
    return next(iter(sizes.values()))
