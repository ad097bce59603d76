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
