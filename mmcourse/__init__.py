"""mmcourse: the reference code of a course on multimodal LLMs. The folders are the course's diagram.

The lesson, in the order the notebooks teach it (read these):

    tokens.py            Tokens(states (B, L, D), padding_mask (B, L) True = padding): the one currency between stages
    encoding/            each modality → Tokens                                       notebooks 02–04
        text.py              attention masks, masked mean pooling, a BERT-style TextEncoder
        vision.py            the image-layout parser, preprocessing, patches, a ViT-style ImageEncoder
        audio.py             16 kHz mono, log-mel (80, 3000), a Whisper-style AudioEncoder
    fusion/              where modalities meet                                        notebooks 05–07
        attention.py         scaled dot-product attention, masks, MultiHeadAttention (self and cross), its cache
        blocks.py            FeedForward and the pre-norm Block every layer of the course is built from
        projector.py         the projector: an encoder's width → the reader's width (Linear or MLP)
        contrastive.py       a shared embedding space: CLIP's loss, temperature, retrieval
        zoo.py               seven fusion modules behind one interface
    decoding/            Tokens → text, images, audio                                 notebooks 08–10
        text.py              a TextDecoder conditioned by prefix (LLaVA) or cross-attention (Whisper)
        generate.py          greedy, sampling (temperature, top-k, top-p), beam search: for any model
        image.py             a patch decoder that draws a caption, a probe that checks the drawing
        audio.py             a mel decoder and the way back to a waveform
    models/              whole models composed from the stages                        notebooks 01, 08
        tiny_qa.py           notebook 01's model: three encoders, attention over the image, an answer
        captioner.py         a frozen ViT, a projector, a text decoder

What the notebooks stand on (read when curious):

    runtime.py           the device, autocast, seeding, `device = runtime.setup()`, timing
    tiers.py             one API for the model tiers: tiny (built from configs), packaged (pip wheels), hub
    data.py              the synthetic scenes (images, captions, questions, speech), the tiny tokenizer
    train.py             a small training loop, modality dropout, per-modality gradient norms
    probes.py            attribution, linear probes, attention sharpness (notebook 11)
    metrics.py           WER, BLEU, CHAIR, CLIPScore, VQA accuracy
    viz.py               images, spectrograms, attention maps, embeddings, audio players
    packaged/            real weights shipped in pip packages, hash-pinned, and their readers

Plumbing you never need to read for the lesson:

    grading.py           the check_* helpers the notebooks' test cells call (its names never change)
    classroom/           nbgrader plumbing, the sandboxed parallel grader, the `mmcourse` command
    drill/               the interview question bank and its terminal drill (`mmcourse quiz`)

Everything a notebook imports comes from here, from a subpackage (`from mmcourse.fusion import Block`) or from a
module above (`from mmcourse import data, viz`). Names resolve lazily, so `import mmcourse.grading` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name → the module that defines it (imported on first use, PEP 562)
_EXPORTS = {
    "Tokens": "mmcourse.tokens", "masked_mean": "mmcourse.tokens", "is_present": "mmcourse.tokens",
    "TextEncoder": "mmcourse.encoding", "ImageEncoder": "mmcourse.encoding", "AudioEncoder": "mmcourse.encoding",
    "MultiHeadAttention": "mmcourse.fusion", "Block": "mmcourse.fusion", "CrossAttentionBlock": "mmcourse.fusion",
    "FeedForward": "mmcourse.fusion", "Projector": "mmcourse.fusion", "scaled_dot_product_attention": "mmcourse.fusion",
    "DecoderConfig": "mmcourse.decoding", "TextDecoder": "mmcourse.decoding", "greedy_decode": "mmcourse.decoding",
    "TinyMultimodalQA": "mmcourse.models", "Captioner": "mmcourse.models",
}
_MODULES = ("tokens", "encoding", "fusion", "decoding", "models", "runtime", "tiers", "data", "train", "probes",
            "metrics", "viz", "packaged", "grading", "classroom", "drill")

__all__ = [*_MODULES, *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"mmcourse.{name}")
    raise AttributeError(f"module 'mmcourse' has no attribute {name!r}; see the map in mmcourse/__init__.py")


def __dir__():
    return sorted(__all__)
