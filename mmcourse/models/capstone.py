"""The shipped capstone model: the trained connector (vision tower, projectors, LoRA) on the LLM, in seconds.

    capstone = load_capstone()                               # packaged SmolLM2 + weights/capstone.safetensors
    capstone.ask(image, "where is the red shape?")           # → "top left"
    capstone.ask(image, audio=wave_16k)                      # a spoken question → "top left"
    capstone.ask(image, audio=wave_16k, heard=True)          # → ("where is the red shape", "top left")
    capstone.ask(None, "What is the capital of France?")     # the plain LLM (LoRA switched off)

The weights are those `python -m mmcourse.models.train_vlm` wrote (its record, losses and step times, is
weights/capstone.json); their sha256 is pinned below and checked before loading. The LLM comes from
`load_llm(tier)`; its converted cache makes the load take seconds after the first run.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from mmcourse.models.llm import load_llm
from mmcourse.models.vlm import VisionLanguageModel, VLMConfig, whisper_states

WEIGHTS = Path(__file__).parent / "weights" / "capstone.safetensors"
WEIGHTS_SHA256 = "7baf455889850e0d9b9618eba55f3183935ca071b4cbf7275bb5f2b3fc412dfa"  # the shipped training run (its record: weights/capstone.json)


class Capstone:
    """A VisionLanguageModel plus its frozen hearing (Whisper's encoder and feature extractor)."""

    def __init__(self, vlm: VisionLanguageModel, encoder, features):
        self.vlm, self.encoder, self.features = vlm.eval(), encoder.eval(), features

    def hear(self, wave) -> torch.Tensor:
        """A 16 kHz mono clip (T,) → its Whisper states (⌈T / 320⌉, D)."""
        return whisper_states(self.encoder, self.features, torch.as_tensor(wave, dtype=torch.float32))

    def ask(self, image=None, question: str = "", audio=None, max_new_tokens: int = 24, heard: bool = False):
        """One answer. image: anything mmcourse.encoding.preprocess_images reads (PIL, array, tensor) or None;
        audio: a 16 kHz clip or None. With neither, the untouched LLM answers the question (LoRA off).
        heard=True: (the question it heard from the clip, or None; the answer) (VisionLanguageModel.answer)."""
        from mmcourse.encoding.vision import preprocess_images

        if image is None and audio is None:
            if not question.strip():
                raise ValueError("ask needs a question, an image or a clip")
            with self.plain_llm():
                return self.vlm.answer(None, question, max_new_tokens=max_new_tokens, heard=heard)[0]
        pixels = None if image is None else preprocess_images(image, size=self.vlm.cfg.image_size)
        states = [] if audio is None else [self.hear(audio)]
        return self.vlm.answer(pixels, question, audio=states, max_new_tokens=max_new_tokens, heard=heard)[0]

    def plain_llm(self):
        """A context in which the LLM is the untouched one (peft's disable_adapter; nothing to do without LoRA)."""
        llm = self.vlm.llm
        return llm.disable_adapter() if hasattr(llm, "disable_adapter") else contextlib.nullcontext()


def load_capstone(tier: str = "packaged", weights=None, seed: int = 0) -> Capstone:
    """The capstone model on `tier`'s LLM. packaged/hub: with the shipped weights (hash-checked) or `weights`;
    tiny: untrained (for tests), unless `weights` names a file trained on the tiny tier."""
    from mmcourse.tiers import load_audio_encoder

    path = Path(weights) if weights else (WEIGHTS if tier != "tiny" else None)
    state, cfg = ({}, VLMConfig(audio_width=64)) if path is None else read_weights(path, pinned=path == WEIGHTS)
    llm, tokenizer = load_llm(tier)
    vlm = VisionLanguageModel(llm, tokenizer, cfg, seed=seed)
    if state:
        vlm.load_trained(state)
    encoder, features = load_audio_encoder("tiny" if tier == "tiny" else "packaged")
    return Capstone(vlm, encoder, features)


def read_weights(path, pinned: bool = False) -> tuple[dict[str, torch.Tensor], VLMConfig]:
    """(tensors, the VLMConfig they were trained with) from a file VisionLanguageModel.save wrote."""
    from safetensors import safe_open

    from mmcourse.packaged.pins import check_file

    path = Path(path)
    _check_weights(path, pinned)
    if pinned and WEIGHTS_SHA256:
        check_file(path, WEIGHTS_SHA256)
    with safe_open(str(path), "pt") as f:
        cfg = VLMConfig(**json.loads(f.metadata()["vlm_config"]))
        return {k: f.get_tensor(k) for k in f.keys()}, cfg


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_weights(path: Path, pinned: bool) -> None:
    if not path.is_file():
        where = "the shipped capstone weights are missing from the package; reinstall mmcourse" if pinned else \
            "no such weights file"
        raise FileNotFoundError(f"{path}: {where} (or train them: python -m mmcourse.models.train_vlm --out {path})")
