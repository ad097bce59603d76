"""Whole models, composed from the stages: encoders (mmcourse.encoding) → fusion (mmcourse.fusion) → decoders.

    tiny_qa.py     notebook 01's model: three encoders, attention over the image, an answer ("where is the red shape?")
    captioner.py   notebook 08's captioner: a frozen ViT, a projector that merges 2 × 2 patches, a text decoder
"""

from mmcourse.models import captioner, tiny_qa
from mmcourse.models.captioner import Captioner, FrozenEncoderWithProjector
from mmcourse.models.tiny_qa import TinyMultimodalQA, quadrant_assignment

__all__ = ["tiny_qa", "captioner", "TinyMultimodalQA", "quadrant_assignment", "Captioner", "FrozenEncoderWithProjector"]
