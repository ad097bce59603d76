"""Fusion: how modalities meet — attention, a shared embedding space, and the fusion zoo."""

from mmcourse.fusion.attention import (CrossAttentionBlock, MultiHeadCrossAttention, causal_mask, merge_heads,
                                       scaled_dot_product_attention, split_heads)
from mmcourse.fusion.contrastive import (LogitScale, ProjectionHead, clip_loss, distinct_batches, recall_at_k,
                                         similarity_matrix, unique_indices)
from mmcourse.fusion.modules import (ZOO, EarlyFusion, GatedCrossAttention, GraphFusion, LateFusion, LowRankFusion,
                                     QueryResampler, TensorFusion, pool)

__all__ = ["MultiHeadCrossAttention", "CrossAttentionBlock", "causal_mask", "scaled_dot_product_attention",
           "split_heads", "merge_heads",
           "LogitScale", "ProjectionHead", "clip_loss", "recall_at_k", "similarity_matrix", "distinct_batches",
           "unique_indices",
           "ZOO", "EarlyFusion", "LateFusion", "TensorFusion", "LowRankFusion", "GatedCrossAttention",
           "QueryResampler", "GraphFusion", "pool"]
