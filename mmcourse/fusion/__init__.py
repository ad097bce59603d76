"""Fusion: how modalities meet.

    attention.py    scaled dot-product attention, masks, MultiHeadAttention (self- and cross-), its cache
    blocks.py       FeedForward and the pre-norm transformer Block every layer of the course is built from
    projector.py    the projector (Linear or MLP) and ModalityProjection: an encoder's width → the reader's width
    contrastive.py  a shared embedding space: projection heads, CLIP's loss and temperature, retrieval
    compress.py     fewer tokens for an LLM: pixel shuffle (space-to-depth), stacking/pooling audio frames
    zoo.py          seven fusion modules behind one interface (early, late, tensor, low-rank, gated, resampler, graph)
"""

from mmcourse.fusion import attention, blocks, compress, contrastive, projector, zoo
from mmcourse.fusion.attention import (AttentionCache, MultiHeadAttention, causal_mask, merge_heads,
                                       scaled_dot_product_attention, split_heads)
from mmcourse.fusion.blocks import Block, BlockCache, CrossAttentionBlock, FeedForward
from mmcourse.fusion.compress import downsample_frames, downsampled_length, pixel_shuffle
from mmcourse.fusion.contrastive import (LogitScale, ProjectionHead, clip_loss, distinct_batches, recall_at_k,
                                         similarity_matrix, unique_indices)
from mmcourse.fusion.projector import ModalityProjection, Projector
from mmcourse.fusion.zoo import (ZOO, EarlyFusion, GatedCrossAttention, GraphFusion, LateFusion, LowRankFusion,
                                 QueryResampler, TensorFusion, concat, count_flops, pool, tensor_product)

__all__ = ["attention", "blocks", "projector", "compress", "contrastive", "zoo",
           "pixel_shuffle", "downsample_frames", "downsampled_length",
           "scaled_dot_product_attention", "causal_mask", "split_heads", "merge_heads", "MultiHeadAttention",
           "AttentionCache", "FeedForward", "Block", "CrossAttentionBlock", "BlockCache",
           "Projector", "ModalityProjection",
           "ProjectionHead", "LogitScale", "clip_loss", "similarity_matrix", "recall_at_k", "unique_indices",
           "distinct_batches",
           "ZOO", "EarlyFusion", "LateFusion", "TensorFusion", "LowRankFusion", "GatedCrossAttention",
           "QueryResampler", "GraphFusion", "pool", "concat", "tensor_product", "count_flops"]
