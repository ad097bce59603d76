"""Fusion: how modalities meet — attention, a shared embedding space, and the fusion zoo."""

from mmcourse.fusion.attention import MultiHeadCrossAttention, causal_mask, scaled_dot_product_attention
from mmcourse.fusion.contrastive import LogitScale, ProjectionHead, clip_loss, recall_at_k, similarity_matrix

__all__ = ["MultiHeadCrossAttention", "causal_mask", "scaled_dot_product_attention",
           "LogitScale", "ProjectionHead", "clip_loss", "recall_at_k", "similarity_matrix"]
