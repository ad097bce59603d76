"""Whole models, composed from the stages: encoders (mmcourse.encoding) → fusion (mmcourse.fusion) → decoders.

    tiny_qa.py     notebook 01's model: three encoders, attention over the image, an answer ("where is the red shape?")
    captioner.py   notebook 08's captioner: a frozen ViT, a projector that merges 2 × 2 patches, a text decoder
    llm.py         load_llm(tier): a real LLM (SmolLM2-135M-Instruct) or a tiny Llama, with <image>/<audio> tokens
    vlm.py         the capstone: an LLM that sees and hears (LLaVA: projected states fill placeholder positions)
    train_vlm.py   `python -m mmcourse.models.train_vlm`: LLaVA's two stages on the scenes (DDP-ready)
    capstone.py    load_capstone(): the shipped, hash-checked capstone weights on the LLM, in seconds
"""

from mmcourse.models import captioner, llm, tiny_qa, vlm
from mmcourse.models.captioner import Captioner, FrozenEncoderWithProjector
from mmcourse.models.llm import load_llm
from mmcourse.models.tiny_qa import TinyMultimodalQA, quadrant_assignment
from mmcourse.models.vlm import VisionLanguageModel, VLMConfig

__all__ = ["tiny_qa", "captioner", "llm", "vlm", "TinyMultimodalQA", "quadrant_assignment", "Captioner",
           "FrozenEncoderWithProjector", "load_llm", "VisionLanguageModel", "VLMConfig", "load_capstone"]


def __getattr__(name):  # load_capstone lives in capstone.py, imported on first use (it reads the shipped weights)
    if name == "load_capstone":
        from mmcourse.models.capstone import load_capstone

        return load_capstone
    raise AttributeError(f"module 'mmcourse.models' has no attribute {name!r}")
