"""The smallest complete multimodal model: three encoders, a fusion step, an answer.

    question text  ──► text encoder  (BERT)    ──► (B, L_t, 64) ─┐ masked mean ─┐
    question audio ──► audio encoder (Whisper) ──► (B, L_a, 64) ─┘ masked mean ─┴► query q (B, d)
    image          ──► image encoder (ViT)     ──► (B, 1 + N, 64) ──► keys k (B, N, d)
    fusion:  attention weights a = softmax(k q / √d) over the N image patches   (B, N)
    answer:  the attention mass that falls in each quadrant of the image         (B, 4)

It answers the dataset's two-modality question ("where is the red shape?"): the colour
is only in the question, the position only in the image. Reading the answer off the
attention weights (a pointer, as in pointer networks) makes the model learn in seconds
on a CPU, and makes its reasoning visible: plot `weights` over the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from mmcourse.encoding.audio import real_state_mask
from mmcourse.tokens import masked_mean


def quadrant_assignment(grid: int) -> torch.Tensor:
    """Which quadrant each patch of a (grid × grid) patch grid lies in: (grid², 4) one-hot, row-major."""
    if grid < 2 or grid % 2:
        raise ValueError(f"the patch grid must be even to split into quadrants, got {grid}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    quadrant = (rows // (grid // 2)) * 2 + cols // (grid // 2)  # 0 TL, 1 TR, 2 BL, 3 BR
    return nn.functional.one_hot(quadrant.reshape(-1), 4).float()


class TinyMultimodalQA(nn.Module):
    """Answer "where is the <colour> shape?" from an image and a spoken and/or written question."""

    def __init__(self, text_encoder: nn.Module, image_encoder: nn.Module, audio_encoder: nn.Module, d: int = 64):
        super().__init__()
        self.text_encoder, self.image_encoder, self.audio_encoder = text_encoder, image_encoder, audio_encoder
        width_t = text_encoder.config.hidden_size
        width_a = audio_encoder.config.d_model
        width_i = image_encoder.config.hidden_size
        self.query = nn.Linear(width_t + width_a, d)  # fuse the two question encodings into one query
        self.key = nn.Linear(width_i, d)  # project image patches into the query's space
        grid = image_encoder.config.image_size // image_encoder.config.patch_size
        self.register_buffer("quadrants", quadrant_assignment(grid), persistent=False)  # (N, 4)

    def forward(self, pixel_values, input_ids, attention_mask, input_features, num_samples):
        """pixel_values (B, 3, S, S), input_ids/attention_mask (B, L), input_features (B, 80, F),
        num_samples (B,) real audio samples → logits (B, 4) and patch weights (B, N)."""
        text = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        audio = self.audio_encoder(input_features).last_hidden_state  # (B, F/2, width_a)
        text_padding = attention_mask == 0  # (B, L) True = padding
        audio_padding = ~real_state_mask(num_samples, audio.shape[1])  # (B, F/2) True = after the end of the sound
        q = self.query(torch.cat([masked_mean(text, text_padding), masked_mean(audio, audio_padding)], dim=-1))
        patches = self.image_encoder(pixel_values=pixel_values).last_hidden_state[:, 1:]  # drop [CLS]: (B, N, width_i)
        k = self.key(patches)  # (B, N, d)
        scores = (k @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(k.shape[-1])  # (B, N)
        weights = scores.softmax(dim=-1)
        logits = torch.log(weights @ self.quadrants + 1e-9)  # (B, 4) log of the attention mass per quadrant
        return logits, weights
