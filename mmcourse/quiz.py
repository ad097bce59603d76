"""The interview drill: a question bank whose numbers are computed, and the `mmcourse quiz` command.

    from mmcourse import quiz
    bank = quiz.load_bank()                           # the questions of mmcourse/questions.json
    quiz.verify(bank[0])                              # recompute every number its answer states
    print(quiz.as_markdown(topic="contrastive"))      # a study sheet for one topic
    $ mmcourse quiz --n 10 --topic vit --seed 1       # a drill in the terminal, score at the end

The bank is data (mmcourse/questions.json), one entry per question:

    {"id": "vit-tokens", "topic": "vit", "question": "...", "answer": "... 197 tokens ...",
     "checks": [{"claim": "197", "expr": "vit_tokens(224, 16)"}],
     "numeric": {"claim": "197", "tolerance": 0},      optional: the drill asks for this number
     "question_zh": "...",                              optional: the blog post's original Chinese
     "notebooks": ["03"]}                               optional: where the course builds it

Every number an answer states is covered in one of three ways (`uncovered_numbers` finds the rest):
  1. it is the claim of a check, whose `expr` is evaluated against FACTS below: small functions
     that compute the number with mmcourse's own code (patchify, log_mel_spectrogram, LogitScale,
     TensorFusion, scaled_dot_product_attention, ...) or with mmcourse.metrics;
  2. it is a literal input of a check's expression (224 and 16 in `vit_tokens(224, 16)`);
  3. it is whitelisted: the small integers 0, 1 and 2 (mask values, "stage 1", "k + 1"), years in
     citations ("Radford et al., 2021"), and digits inside names, which the number pattern skips
     (ViT-B/16, BLIP-2, LLaVA-1.5, Recall@5, log10, fp16).
A claim matches its value when they agree to the claim's last digit: "14.3" holds for 14.2857.

The self-check quiz of notebook 13 is NOT in this file: its answer key lives only in the
notebook's hidden tests, so that the released course does not carry it.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import random
import re
import sys
import textwrap
from collections import Counter
from pathlib import Path

import torch

from mmcourse import audio
from mmcourse.data import QUADRANTS
from mmcourse.decoding.text import IGNORE_INDEX, filter_logits
from mmcourse.fusion.attention import scaled_dot_product_attention
from mmcourse.fusion.contrastive import LogitScale, clip_loss, recall_at_k
from mmcourse.fusion.modules import GatedCrossAttention, LowRankFusion, QueryResampler, TensorFusion
from mmcourse.metrics import bleu, chair, clip_score, edit_distance, modified_precision, vqa_accuracy, word_count, word_error_rate
from mmcourse.tokens import Tokens
from mmcourse.vision import patchify, preprocess_images, resize_position_embeddings

BANK_PATH = Path(__file__).with_name("questions.json")

TOPICS = {  # slug → title, in the order the notebook and the drill present them
    "blog": "The blog post's questions",
    "vit": "Images: ViT patches and position embeddings",
    "masks": "Attention and padding masks",
    "whisper": "Audio: Whisper's front end",
    "tokenisation": "Discrete image and audio tokens",
    "contrastive": "Shared spaces: CLIP, SigLIP, the modality gap, ImageBind",
    "objectives": "Pretraining objectives: ITC, ITM, ITG",
    "fusion": "Fusion: early, late, tensor, cross-attention",
    "connectors": "Into the LLM: projector, Q-Former, Flamingo's gate, splicing",
    "training": "Training stages: what is frozen",
    "decoding": "Decoding strategies",
    "generation": "Image and audio decoders",
    "evaluation": "Evaluation: Recall@K, BLEU, CIDEr, CLIPScore, WER",
    "hallucination": "Hallucination and its measures",
    "robustness": "Missing modalities and modality imbalance",
}

# ================================================================ FACTS: the functions checks may call
# Each computes a number with the package's own code; the answers' numbers are checked against them.
# transformers' default configs are the base checkpoints' (ViTConfig: vit-base-patch16-224, BertConfig:
# bert-base-uncased, WhisperConfig: whisper-tiny), so they stand in for those checkpoints offline.


def vit_tokens(image_size: int, patch_size: int, cls: bool = True) -> int:
    """Tokens a ViT makes of an image: patchify's (S / P)² patches, + 1 [CLS] if cls."""
    return patchify(torch.zeros(1, 3, image_size, image_size), patch_size).shape[1] + int(cls)


def vit_grid(image_size: int, patch_size: int) -> int:
    """Patches per side: S / P."""
    return math.isqrt(vit_tokens(image_size, patch_size, cls=False))


def patch_values(patch_size: int, channels: int = 3) -> int:
    """Values in one flattened patch: C · P · P."""
    return patchify(torch.zeros(1, channels, patch_size, patch_size), patch_size).shape[2]


def image_channels() -> int:
    """Channels of pixel_values, even for a grey photo (preprocess_images makes every image RGB)."""
    import PIL.Image

    return preprocess_images(PIL.Image.new("L", (8, 8)), size=8).shape[1]


def vit_base_image_size() -> int:
    from transformers import ViTConfig

    return ViTConfig().image_size


def default_normalisation() -> float:
    """The mean (= std) with which preprocess_images normalises: pixel_values 0 is a pixel of this value."""
    import inspect

    defaults = inspect.signature(preprocess_images).parameters
    mean, std = defaults["mean"].default, defaults["std"].default
    if len(set(mean) | set(std)) != 1:
        raise ValueError(f"expected mean = std, the same for every channel; got mean {mean}, std {std}")
    return mean[0]


def vit_base_width() -> int:
    from transformers import ViTConfig

    return ViTConfig().hidden_size


def bert_base_width() -> int:
    from transformers import BertConfig

    return BertConfig().hidden_size


def whisper_tiny_width() -> int:
    from transformers import WhisperConfig

    return WhisperConfig().d_model


def wav2vec2_stride() -> int:
    """Samples per frame of wav2vec 2.0's CNN feature encoder (the product of its strides)."""
    from transformers import Wav2Vec2Config

    return math.prod(Wav2Vec2Config().conv_stride)


def patch_embedding_parameters(patch_size: int, width: int, channels: int = 3) -> int:
    """Parameters of Conv2d(C, D, kernel_size=P, stride=P), the patch embedding."""
    conv = torch.nn.Conv2d(channels, width, patch_size, stride=patch_size)
    return sum(p.numel() for p in conv.parameters())


def interpolated_positions(trained_size: int, new_size: int, patch_size: int) -> int:
    """Position embeddings after resizing a ViT's grid from trained_size to new_size pixels."""
    g = vit_grid(trained_size, patch_size)
    return resize_position_embeddings(torch.zeros(1, 1 + g * g, 4), vit_grid(new_size, patch_size)).shape[1]


# Whisper's front end: constants of mmcourse.audio and shapes of its log-mel features.
def sample_rate_khz() -> float:
    return audio.SAMPLE_RATE / 1000


def window_seconds() -> int:
    return audio.CHUNK_SECONDS


def n_fft() -> int:
    return audio.N_FFT


def hop_length() -> int:
    return audio.HOP_LENGTH


def stft_window_ms() -> float:
    return 1000 * audio.N_FFT / audio.SAMPLE_RATE


def hop_ms() -> float:
    return 1000 * audio.HOP_LENGTH / audio.SAMPLE_RATE


def stft_bins() -> int:
    """Frequency bins of one STFT frame: n_fft // 2 + 1."""
    window = torch.hann_window(audio.N_FFT)
    spectrum = torch.stft(torch.zeros(audio.N_FFT), audio.N_FFT, audio.HOP_LENGTH, window=window, return_complex=True)
    return spectrum.shape[0]


def whisper_samples(seconds: float) -> int:
    return audio.pad_or_trim(torch.zeros(1), int(seconds * audio.SAMPLE_RATE)).shape[-1]


def whisper_frames(seconds: float) -> int:
    """Log-mel frames of a `seconds` window."""
    return audio.log_mel_spectrogram(audio.pad_or_trim(torch.zeros(1), whisper_samples(seconds))).shape[-1]


def whisper_states(seconds: float) -> int:
    """Encoder states of a `seconds` window: the stride-2 convolution halves the frames."""
    return audio.frames_to_states(whisper_frames(seconds))


def mel_bins() -> int:
    return audio.log_mel_spectrogram(torch.zeros(audio.N_FFT)).shape[-2]


def state_ms() -> float:
    """Milliseconds of audio per encoder state."""
    return 1000 * audio.CHUNK_SECONDS / whisper_states(audio.CHUNK_SECONDS)


def whisper_log_range() -> float:
    """How far below its maximum Whisper clamps the log10 power: the range of a padded clip's features × 4."""
    t = torch.arange(audio.SAMPLE_RATE) / audio.SAMPLE_RATE
    features = audio.log_mel_spectrogram(audio.pad_or_trim(0.5 * torch.sin(2 * math.pi * 440 * t)))  # 1 s tone
    return round(float(features.max() - features.min()) * 4, 4)  # features are (log10 + 4) / 4


def real_states(seconds: float, window: int = 30) -> int:
    """Encoder states that hold a `seconds` clip in a `window`-second window (audio.real_state_mask)."""
    samples = torch.tensor([int(seconds * audio.SAMPLE_RATE)])
    return int(audio.real_state_mask(samples, whisper_states(window)).sum())


# Discrete tokens and decoders: arithmetic on the settings an answer states.
def codec_frames_per_second(sample_rate: int, hop: int) -> float:
    return sample_rate / hop


def codec_tokens_per_second(sample_rate: int, hop: int, n_codebooks: int) -> float:
    """Residual vector quantisation: each frame becomes n_codebooks tokens."""
    return codec_frames_per_second(sample_rate, hop) * n_codebooks


def codebook_bits(size: int) -> float:
    return math.log2(size)


def vq_image_tokens(image_size: int, factor: int) -> int:
    """Codes of a VQ image tokenizer that downsamples by `factor`: (S / f)²."""
    return (image_size // factor) ** 2


def image_values(image_size: int, channels: int = 3) -> int:
    return image_size * image_size * channels


def latent_values(image_size: int, factor: int, channels: int) -> int:
    """Values of a VAE latent (S / f) × (S / f) × channels."""
    return (image_size // factor) ** 2 * channels


def ignore_index() -> int:
    """The label that cross-entropy skips (prompt, image and padding positions)."""
    return IGNORE_INDEX


def llm_sequence_length(n_text: int, image_size: int | None = None, patch_size: int = 14,
                        audio_seconds: float | None = None, audio_pool: int = 1) -> int:
    """Positions an LLM reads when image patches (LLaVA-style: no [CLS]) and Whisper states
    (pooled by `audio_pool`, as Qwen-Audio pools by 2) are spliced in with n_text text tokens."""
    length = n_text
    if image_size is not None:
        length += vit_tokens(image_size, patch_size, cls=False)
    if audio_seconds is not None:
        if not 0 < audio_seconds <= audio.CHUNK_SECONDS:
            raise ValueError(f"audio_seconds must be in (0, {audio.CHUNK_SECONDS}], Whisper's window; "
                             f"got {audio_seconds}")
        length += whisper_states(audio_seconds) // audio_pool
    return length


# Attention and fusion: counted on mmcourse.fusion's functions and modules.
def attention_scores(n_query: int, n_key: int) -> int:
    """Entries of the attention-weight matrix (per head, per layer), from scaled_dot_product_attention."""
    q, k = torch.zeros(1, 1, n_query, 1), torch.zeros(1, 1, n_key, 1)
    return scaled_dot_product_attention(q, k, k, return_weights=True)[1].numel()


def concat_attention_scores(n_text: int, n_image: int) -> int:
    """Self-attention over the concatenated sequence: every token scores every token."""
    return attention_scores(n_text + n_image, n_text + n_image)


def cross_attention_scores(n_text: int, n_image: int) -> int:
    """Text self-attention plus text → image cross-attention (Flamingo-style)."""
    return attention_scores(n_text, n_text) + attention_scores(n_text, n_image)


def padding_key_weight() -> float:
    """The attention weight a padded key receives (key_padding_mask True = padding)."""
    q, k = torch.randn(1, 1, 2, 4), torch.randn(1, 1, 3, 4)
    padding = torch.tensor([[False, False, True]])
    return float(scaled_dot_product_attention(q, k, k, padding, return_weights=True)[1][..., 2].abs().max())


def logit_scale_init() -> float:
    """CLIP's initial logit scale, 1 / 0.07."""
    with torch.no_grad():
        return float(LogitScale()())


def logit_scale_max() -> float:
    """The clamp on CLIP's logit scale: what LogitScale returns for a tiny temperature."""
    with torch.no_grad():
        return float(LogitScale(temperature=1e-4)())


def clip_logit_scale(log_scale: float) -> float:
    """The scale CLIP multiplies cosines by when its parameter (log 1/τ) is `log_scale`: min(e^t, 100)."""
    scale = LogitScale()
    with torch.no_grad():
        scale.log_scale.fill_(log_scale)
        return float(scale())


def clip_loss_at_chance(batch_size: int) -> float:
    """The CLIP loss when all logits are equal (an untrained model): ln B."""
    same = torch.ones(batch_size, 4)
    return float(clip_loss(same, same, 1.0))


def _widths(n_modalities: int) -> dict[str, int]:
    return {f"m{i}": 4 for i in range(n_modalities)}


def tensor_fusion_features(k: int, n_modalities: int) -> int:
    """Entries of TensorFusion's outer product: (k + 1)^M."""
    return TensorFusion(_widths(n_modalities), d_model=1, k=k).out.in_features


def tensor_fusion_weights(k: int, n_modalities: int, d_model: int) -> int:
    """Weights of the linear layer after the outer product: (k + 1)^M · d."""
    return TensorFusion(_widths(n_modalities), d_model=d_model, k=k).out.weight.numel()


def low_rank_factor_weights(k: int, n_modalities: int, d_model: int, rank: int) -> int:
    """Weights of LowRankFusion's modality factors: M · rank · (k + 1) · d."""
    fusion = LowRankFusion(_widths(n_modalities), d_model=d_model, rank=rank, k=k)
    return sum(f.numel() for f in fusion.factors.values())


def resampler_tokens(n_queries: int, n_inputs: int) -> int:
    """Tokens a QueryResampler (the Perceiver Resampler / Q-Former idea) returns for n_inputs tokens."""
    resampler = QueryResampler({"image": 8}, d_model=8, n_queries=n_queries, n_heads=2)
    image = Tokens(torch.zeros(1, n_inputs, 8), torch.zeros(1, n_inputs, dtype=torch.bool))
    with torch.no_grad():
        return resampler({"image": image}).states.shape[1]


def gated_block_change() -> float:
    """How much a freshly built GatedCrossAttention (Flamingo) block changes its input: max |out − in|."""
    generator = torch.Generator().manual_seed(0)
    text, image = torch.randn(2, 5, 8, generator=generator), torch.randn(2, 7, 8, generator=generator)
    block = GatedCrossAttention({"text": 8, "image": 8}, d_model=8, n_heads=2)
    inputs = {"text": Tokens(text, torch.zeros(2, 5, dtype=torch.bool)),
              "image": Tokens(image, torch.zeros(2, 7, dtype=torch.bool))}
    with torch.no_grad():
        return float((block(inputs).states - text).abs().max())


# Decoding.
def kv_positions_without_cache(n_tokens: int) -> int:
    """Positions processed to generate n_tokens when every step re-reads the whole prefix: 1 + 2 + … + n."""
    return sum(range(1, n_tokens + 1))


def top_p_kept(probs: list[float], p: float) -> int:
    """Tokens that nucleus sampling keeps (mmcourse.decoding.text.filter_logits with top_p=p)."""
    logits = torch.tensor(probs, dtype=torch.float64).log()[None]
    return int(torch.isfinite(filter_logits(logits, top_p=p)).sum())


# Evaluation.
# A 4 × 4 image–text similarity matrix, matches on the diagonal: rows 0 and 2 rank their match
# first, row 1 second, row 3 third.
EXAMPLE_SIMILARITY = ((0.9, 0.1, 0.2, 0.3),
                      (0.6, 0.5, 0.1, 0.2),
                      (0.1, 0.2, 0.8, 0.3),
                      (0.7, 0.1, 0.6, 0.4))


def example_size() -> int:
    return len(EXAMPLE_SIMILARITY)


def recall_example(k: int) -> float:
    """Recall@k (rows → columns) of EXAMPLE_SIMILARITY, by mmcourse.fusion.contrastive.recall_at_k."""
    return recall_at_k(torch.tensor(EXAMPLE_SIMILARITY), k)[0]


def n_quadrants() -> int:
    """Answers of the course dataset's 'where is the <colour> shape' question."""
    return len(QUADRANTS)


def chance_percent() -> float:
    """Accuracy of guessing a quadrant, in percent."""
    return 100 / n_quadrants()


FACTS = {f.__name__: f for f in (
    vit_tokens, vit_grid, patch_values, image_channels, vit_base_image_size, default_normalisation, vit_base_width,
    bert_base_width, whisper_tiny_width,
    patch_embedding_parameters, interpolated_positions,
    sample_rate_khz, window_seconds, n_fft, hop_length, stft_window_ms, hop_ms, stft_bins, whisper_samples,
    whisper_frames, whisper_states, mel_bins, state_ms, whisper_log_range, real_states, wav2vec2_stride,
    codec_frames_per_second, codec_tokens_per_second, codebook_bits, vq_image_tokens, image_values, latent_values,
    ignore_index, llm_sequence_length, attention_scores, concat_attention_scores, cross_attention_scores,
    padding_key_weight, logit_scale_init, logit_scale_max, clip_logit_scale, clip_loss_at_chance,
    tensor_fusion_features, tensor_fusion_weights, low_rank_factor_weights, resampler_tokens, gated_block_change,
    kv_positions_without_cache, top_p_kept, example_size, recall_example, n_quadrants,
    chance_percent, word_error_rate, word_count, bleu, clip_score, chair, vqa_accuracy,
)}
SAFE_NAMES = {f.__name__: f for f in (len, sum, min, max, abs, round, math.exp, math.log, math.sqrt)}

# ================================================================ the bank: loading, validation, checks

ENTRY_KEYS = {"id", "topic", "question", "answer", "checks"}
OPTIONAL_KEYS = {"question_zh", "numeric", "notebooks"}
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def validate_bank(bank: list[dict]) -> None:
    """Raise ValueError listing every schema problem of the bank (keys, types, ids, topics, checks)."""
    problems = []
    if not isinstance(bank, list) or not bank:
        raise ValueError("the bank must be a non-empty JSON list of questions")
    seen = set()
    for n, entry in enumerate(bank):
        where = f"entry {n} ({entry.get('id', '?') if isinstance(entry, dict) else '?'})"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        missing, extra = ENTRY_KEYS - set(entry), set(entry) - ENTRY_KEYS - OPTIONAL_KEYS
        if missing:
            problems.append(f"{where}: missing keys {sorted(missing)}")
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)} (allowed: {sorted(ENTRY_KEYS | OPTIONAL_KEYS)})")
        if missing:
            continue
        if not isinstance(entry["id"], str) or not _ID.match(entry["id"]):
            problems.append(f"{where}: id must be lowercase words joined by '-', got {entry['id']!r}")
        elif entry["id"] in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(entry["id"])
        if entry["topic"] not in TOPICS:
            problems.append(f"{where}: unknown topic {entry['topic']!r}; use one of {list(TOPICS)}")
        for key in ("question", "answer"):
            if not isinstance(entry[key], str) or len(entry[key].strip()) < 10:
                problems.append(f"{where}: {key} must be a sentence")
        if "question_zh" in entry and not (isinstance(entry["question_zh"], str) and _CJK.search(entry["question_zh"])):
            problems.append(f"{where}: question_zh must be the original Chinese text")
        checks = entry["checks"]
        if not isinstance(checks, list) or not all(isinstance(c, dict) and set(c) == {"claim", "expr"}
                                                   and isinstance(c["claim"], str) and isinstance(c["expr"], str)
                                                   for c in checks):
            problems.append(f"{where}: checks must be a list of {{'claim': str, 'expr': str}}")
            continue
        for c in checks:
            if parse_number(c["claim"]) is None:
                problems.append(f"{where}: claim {c['claim']!r} is not a number as written in the answer")
        if "numeric" in entry:
            numeric = entry["numeric"]
            if not (isinstance(numeric, dict) and set(numeric) == {"claim", "tolerance"}
                    and isinstance(numeric["tolerance"], (int, float)) and numeric["tolerance"] >= 0):
                problems.append(f"{where}: numeric must be {{'claim': str, 'tolerance': number ≥ 0}}")
            elif numeric["claim"] not in {c["claim"] for c in checks}:
                problems.append(f"{where}: numeric claim {numeric['claim']!r} must be one of the checks' claims")
        if "notebooks" in entry and not (isinstance(entry["notebooks"], list)
                                         and all(isinstance(nb, str) and re.match(r"^\d\d$", nb)
                                                 for nb in entry["notebooks"])):
            problems.append(f"{where}: notebooks must be a list of two-digit numbers as strings, e.g. ['03']")
    if problems:
        raise ValueError("questions.json has problems:\n  " + "\n  ".join(problems))


def load_bank(path: str | Path | None = None) -> list[dict]:
    """The question bank (a list of dicts, in file order), validated."""
    bank = json.loads(Path(path or BANK_PATH).read_text(encoding="utf-8"))
    validate_bank(bank)
    return bank


def questions(topic: str | None = None, ids: list[str] | None = None, bank: list[dict] | None = None) -> list[dict]:
    """The bank's questions, optionally of one topic or with the given ids (in that order)."""
    bank = load_bank() if bank is None else bank
    if topic is not None and topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; choose one of {', '.join(TOPICS)}")
    if ids is not None:
        by_id = {q["id"]: q for q in bank}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ValueError(f"no questions with ids {unknown}; see [q['id'] for q in quiz.load_bank()]")
        return [by_id[i] for i in ids]
    return [q for q in bank if topic is None or q["topic"] == topic]


# ---------------------------------------------------------------- numbers in answers

# A number: not glued to a name (ViT-B/16, BLIP-2, LLaVA-1.5, Recall@5, fp16, 2nd), with an optional
# minus sign, thousands separated by commas, decimals by a point.
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.@])(?<![A-Za-z]-)(?<![A-Z]/)[-−]?\d+(?:,\d{3})*(?:\.\d+)?(?![A-Za-z0-9_])")
# A year in a citation: "Radford et al., 2021", "Griffin and Lim, 1984".
_CITATION = re.compile(r"[A-Z][\w\-]+(?: et al\.| and [A-Z][\w\-]+)?, (19\d\d|20[0-2]\d)\b")
WHITELIST = (0, 1, 2)  # small integers: mask values, "stage 1", "k + 1", "stride 2"


def parse_number(text: str) -> float | None:
    """'480,000' → 480000.0, '−1' → -1.0; None if `text` is not one number."""
    text = text.strip().replace("−", "-")
    if not re.fullmatch(r"-?\d+(?:,\d{3})*(?:\.\d+)?", text):
        return None
    return float(text.replace(",", ""))


def numbers_in(text: str) -> list[str]:
    """The numbers a text states, as written, without the years of citations."""
    years = {m.span(1) for m in _CITATION.finditer(text)}
    return [m.group() for m in _NUMBER.finditer(text) if m.span() not in years]


def _literals(expr: str) -> set[float]:
    """The numeric literals of a check expression (the inputs it states)."""
    found = set()
    for node in ast.walk(ast.parse(expr, mode="eval")):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            found.add(float(node.value))
    return found


def uncovered_numbers(entry: dict) -> list[str]:
    """Numbers in the answer that no check claims, no check expression takes as input, and WHITELIST does not allow."""
    claimed = {parse_number(c["claim"]) for c in entry["checks"]}
    inputs = set().union(*(_literals(c["expr"]) for c in entry["checks"])) if entry["checks"] else set()
    missing = []
    for number in numbers_in(entry["answer"]):
        value = parse_number(number)
        if value in claimed or value in inputs or abs(value) in WHITELIST:
            continue
        missing.append(number)
    return missing


def evaluate(expr: str) -> float:
    """Evaluate a check expression; its only names are FACTS and SAFE_NAMES (len, sum, min, max, abs, round,
    exp, log, sqrt)."""
    names = {"__builtins__": {}, **SAFE_NAMES, **FACTS}
    value = eval(compile(expr, "<check>", "eval"), names)  # noqa: S307 - our own file, no builtins
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"check {expr!r} gave {value!r}; a check must compute one number")
    return value


def claim_holds(claim: str, value: float) -> bool:
    """Do `claim` (as written) and `value` agree to the claim's last digit? '14.3' and 14.2857 do."""
    number = parse_number(claim)
    decimals = len(claim.split(".")[1]) if "." in claim else 0
    return abs(value - number) <= 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(number))


def verify(entry: dict) -> list[dict]:
    """Recompute an entry's checks: [{'claim', 'expr', 'value', 'ok'}], 'ok' False where the answer is wrong."""
    rows = []
    for check in entry["checks"]:
        value = evaluate(check["expr"])
        rows.append({"claim": check["claim"], "expr": check["expr"], "value": value,
                     "ok": claim_holds(check["claim"], value)})
    return rows


# ---------------------------------------------------------------- rendering


def _format_value(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.6g}"


def checks_markdown(entry: dict) -> str:
    """A Markdown table of the entry's checks, recomputed now: number | computed by | value."""
    rows = verify(entry)
    if not rows:
        return "*(this answer states no number that needs a check)*"
    lines = ["| number in the answer | computed by | value | holds |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | `{r['expr']}` | {_format_value(r['value'])} | {'✓' if r['ok'] else '✗'} |")
    return "\n".join(lines)


def as_markdown(entries: list[dict] | None = None, *, topic: str | None = None, ids: list[str] | None = None,
                answers: bool = True, checks: bool = False) -> str:
    """Questions (and answers, and recomputed checks) as Markdown, grouped by topic."""
    entries = questions(topic=topic, ids=ids) if entries is None else entries
    parts, current = [], None
    for q in entries:
        if q["topic"] != current:
            current = q["topic"]
            parts.append(f"### {TOPICS[current]}")
        head = f"**{q['question']}**" + (f"  \n{q['question_zh']}" if "question_zh" in q else "")
        parts.append(f"{head} <small>`{q['id']}`</small>")
        if answers:
            parts.append("> " + q["answer"])
            if checks and q["checks"]:
                parts.append(checks_markdown(q))
    return "\n\n".join(parts)


# ================================================================ the drill: `mmcourse quiz`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=10, help="how many questions (default 10; 0 = all that match)")
    parser.add_argument("--topic", action="append", metavar="TOPIC",
                        help="only questions of this topic (repeatable); --topics lists them")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random order (default: new each run)")
    parser.add_argument("--topics", action="store_true", help="list the topics with their number of questions and exit")
    parser.add_argument("--sheet", action="store_true",
                        help="print the chosen questions with their answers (a study sheet) instead of asking")


def add_quiz(subparsers) -> None:
    """Declare `mmcourse quiz` (call from mmcourse.cli.build_parser)."""
    parser = subparsers.add_parser(
        "quiz", help="drill interview questions on multimodal LLMs, in random order, score at the end",
        description="Ask questions from the course's interview bank in random order. Type your answer (an empty "
                    "line shows the model answer at once); numeric questions are checked, for the others say "
                    "whether your answer covered the model answer. Prints the score at the end.")
    add_arguments(parser)
    parser.set_defaults(run=run_quiz)


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, width=88, initial_indent=indent, subsequent_indent=indent)


def _ask(prompt: str) -> str:
    """One line from stdin (EOFError when the input has ended). Piped input is echoed, so a transcript reads well."""
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        print()
        raise EOFError
    if not sys.stdin.isatty():
        print(line.rstrip("\n"))
    return line.strip()


def choose_questions(bank: list[dict], n: int = 10, topics: list[str] | None = None,
                     seed: int | None = None) -> list[dict]:
    """n questions (0 = all) of the given topics, in a random order that `seed` makes repeatable."""
    if n < 0:
        raise ValueError(f"n must be 0 (all) or more, got {n}")
    chosen = bank
    if topics:
        wanted = [t.lower() for t in topics]
        unknown = [t for t in wanted if t not in TOPICS]
        if unknown:
            raise ValueError(f"unknown topic {', '.join(unknown)}; choose from: {', '.join(TOPICS)}")
        chosen = [q for q in bank if q["topic"] in wanted]
    order = random.Random(seed).sample(chosen, len(chosen))
    return order if n == 0 else order[:n]


def _numeric_correct(reply: str, entry: dict) -> bool:
    try:
        value = float(reply.replace(",", "").replace("−", "-"))
    except ValueError:
        return False
    return abs(value - parse_number(entry["numeric"]["claim"])) <= entry["numeric"]["tolerance"]


def ask(entry: dict, number: int, total: int) -> bool:
    """Ask one question on stdin/stdout, show the model answer; → whether it was answered right."""
    numeric = "numeric" in entry
    print(f"[{number}/{total}] {TOPICS[entry['topic']]}")
    print(_wrap(entry["question"] + (" (answer with a number)" if numeric else ""), indent=""))
    reply = _ask("your answer> ")
    if numeric:
        correct = _numeric_correct(reply, entry)
        print(("correct: " if correct else "not quite: the answer is ") + entry["numeric"]["claim"])
    print("model answer:")
    print(_wrap(entry["answer"]))
    if "notebooks" in entry:
        print(f"  (notebook{'s' if len(entry['notebooks']) > 1 else ''} {', '.join(entry['notebooks'])})")
    if not numeric:
        correct = _ask("did your answer cover it? [y/n]> ").lower() in ("y", "yes")
    print()
    return correct


def run_quiz(args: argparse.Namespace) -> int:
    """Ask the chosen questions, then print the score. Exit 0 (also when the input ends early)."""
    bank = load_bank()
    if args.topics:
        counts = Counter(q["topic"] for q in bank)
        for slug, title in TOPICS.items():
            print(f"{slug:14s} {counts[slug]:3d}  {title}")
        return 0
    try:
        chosen = choose_questions(bank, args.n, args.topic, args.seed)
    except ValueError as err:
        print(f"mmcourse quiz: {err}", file=sys.stderr)
        return 2
    if args.sheet:
        for q in chosen:
            print(f"[{q['id']}] {q['question']}\n{_wrap(q['answer'])}\n")
        return 0
    print(f"mmcourse quiz: {len(chosen)} questions" + (f" (seed {args.seed})" if args.seed is not None else ""))
    print("Answer in your own words and press Enter (an empty line shows the model answer).\n")
    results = []  # (entry, correct)
    try:
        for number, q in enumerate(chosen, 1):
            results.append((q, ask(q, number, len(chosen))))
    except EOFError:
        print(f"\n(input ended after {len(results)} of {len(chosen)} questions)")
    numeric = [correct for q, correct in results if "numeric" in q]
    graded = [correct for q, correct in results if "numeric" not in q]
    print(f"score: {sum(numeric) + sum(graded)}/{len(results)}  (numbers checked: {sum(numeric)}/{len(numeric)}, "
          f"self-graded: {sum(graded)}/{len(graded)})")
    missed = [q["id"] for q, correct in results if not correct]
    if missed:
        print("to revisit: " + ", ".join(missed))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m mmcourse.quiz [options]`: the same drill as `mmcourse quiz`."""
    parser = argparse.ArgumentParser(prog="mmcourse quiz", description="Drill the course's interview questions.")
    add_arguments(parser)
    return run_quiz(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
