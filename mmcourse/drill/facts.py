"""The facts the bank's answers are checked against: small functions that compute each number with the
package's own code (patchify, log_mel_spectrogram, LogitScale, TensorFusion, scaled_dot_product_attention, ...)
or with mmcourse.metrics. A check's `expr` in questions.json may call exactly these (FACTS) and SAFE_NAMES.
"""

from __future__ import annotations

import math

import torch

from mmcourse.data import COLORS, QUADRANTS, SHAPES
from mmcourse.decoding import IGNORE_INDEX, filter_logits
from mmcourse.encoding import audio
from mmcourse.encoding.vision import patchify, preprocess_images, resize_position_embeddings
from mmcourse.fusion.attention import scaled_dot_product_attention
from mmcourse.fusion.contrastive import LogitScale, clip_loss, recall_at_k
from mmcourse.fusion.zoo import GatedCrossAttention, LowRankFusion, QueryResampler, TensorFusion
from mmcourse.metrics import bleu, chair, clip_score, vqa_accuracy, word_count, word_error_rate
from mmcourse.tokens import Tokens

# Each computes a number with the package's own code; the answers' numbers are checked against them.
# transformers' default configs are the base checkpoints' (ViTConfig: vit-base-patch16-224, BertConfig:
# bert-base-uncased, WhisperConfig: whisper-tiny), so they stand in for those checkpoints offline.


def vit_tokens(image_size: int | tuple[int, int], patch_size: int, cls: bool = True) -> int:
    """Tokens a ViT makes of an image, S × S (image_size=S) or H × W (image_size=(H, W)): patchify's
    (H / P) · (W / P) patches, + 1 [CLS] if cls. vit_tokens((224, 336), 14, cls=False) = 16 · 24 = 384."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    return patchify(torch.zeros(1, 1, height, width), patch_size).shape[1] + int(cls)


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


# Whisper's front end: constants of mmcourse.encoding.audio and shapes of its log-mel features.
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


def llm_sequence_length(n_text: int, image_size: int | tuple[int, int] | None = None, patch_size: int = 14,
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



# High resolution: tiles, packing, pixel shuffle, pruning, and what image tokens cost an LLM's KV cache.
def pixel_shuffle_tokens(grid: int, factor: int) -> int:
    """Tokens left when a grid × grid map of tokens is pixel-shuffled (space-to-depth) by `factor`: (g / f)².

    Computed with torch's own pixel_unshuffle on a (1, D, g, g) map, as InternVL and the capstone merge
    each f × f block of neighbouring tokens into one token of f² times the width."""
    return int(torch.nn.functional.pixel_unshuffle(torch.zeros(1, 1, grid, grid), factor)[0, 0].numel())


def pixel_shuffle_width(width: int, factor: int) -> int:
    """Width of each token after the pixel shuffle: D · f²."""
    return torch.nn.functional.pixel_unshuffle(torch.zeros(1, width, factor, factor), factor).shape[1]


def tiled_image_tokens(n_tiles: int, tile_size: int, patch_size: int, thumbnail: bool = True,
                       shuffle: int = 1) -> int:
    """Visual tokens of an image cut into n_tiles square tiles (AnyRes / InternVL dynamic resolution):
    (n_tiles + thumbnail) × tokens per tile, each tile (S / P)² patches, pixel-shuffled by `shuffle`."""
    if n_tiles < 1:
        raise ValueError(f"n_tiles must be ≥ 1, got {n_tiles}")
    per_tile = pixel_shuffle_tokens(vit_grid(tile_size, patch_size), shuffle)
    return (n_tiles + int(thumbnail)) * per_tile


def grid_tokens(height: int, width: int, patch_size: int) -> int:
    """Patches of an H × W image at its own aspect ratio (NaViT, Qwen2-VL): (H / P) · (W / P), by patchify
    (whose error names the side that is not a multiple of P, and the fix)."""
    return vit_tokens((height, width), patch_size, cls=False)


def qwen2vl_image_tokens(height: int, width: int) -> int:
    """Tokens Qwen2-VL gives an H × W image (H, W multiples of 28): 14-px patches, then 2 × 2 merged."""
    return grid_tokens(height, width, 28)


def packed_sequences(lengths: list[int], max_length: int) -> int:
    """Sequences of max_length that first-fit-decreasing packing needs for examples of these lengths (NaViT)."""
    if any(n > max_length for n in lengths):
        raise ValueError(f"an example of {max(lengths)} tokens does not fit a sequence of {max_length}")
    bins: list[int] = []
    for n in sorted(lengths, reverse=True):
        for i, used in enumerate(bins):
            if used + n <= max_length:
                bins[i] += n
                break
        else:
            bins.append(n)
    return len(bins)


def padding_positions(lengths: list[int], max_length: int | None = None) -> int:
    """Padding positions when each example is padded to max_length (default: the longest one)."""
    longest = max(lengths) if max_length is None else max_length
    return len(lengths) * longest - sum(lengths)


def packing_padding(lengths: list[int], max_length: int) -> int:
    """Padding positions left when the examples are packed into sequences of max_length."""
    return packed_sequences(lengths, max_length) * max_length - sum(lengths)


def fastv_kept(n_image: int, ratio: float) -> int:
    """Image tokens FastV keeps after layer K when it drops the fraction `ratio` with the least attention."""
    scores = torch.arange(n_image, dtype=torch.float32)
    return int(scores.topk(n_image - int(n_image * ratio)).indices.numel())


def fastv_saving_percent(n_layers: int, k: int, ratio: float) -> float:
    """Percent of the image tokens' per-layer work FastV saves: layers after K see (1 − R) of them."""
    return 100 * (n_layers - k) * ratio / n_layers


def kv_cache_bytes(n_tokens: int, n_layers: int, kv_heads: int, head_dim: int, dtype: str = "float16") -> int:
    """Bytes of the KV cache of n_tokens: layers × 2 (K and V) × kv_heads × head_dim × bytes × tokens,
    measured on meta tensors of that shape (nothing is allocated)."""
    cache = torch.empty(n_layers, 2, kv_heads, n_tokens, head_dim, dtype=getattr(torch, dtype), device="meta")
    return cache.numel() * cache.element_size()


def mib(n_bytes: float) -> float:
    return n_bytes / 2 ** 20


# Positions: 1-D RoPE, M-RoPE, interpolation.
def rope_frequencies(head_dim: int) -> int:
    """Rotation frequencies of RoPE in one head: one per pair of dimensions, head_dim / 2."""
    return torch.arange(0, head_dim, 2).numel()


def mrope_position_ids(n_text_before: int, t: int, h: int, w: int, n_text_after: int = 1) -> torch.Tensor:
    """M-RoPE's (3, L) position ids (temporal, height, width) for text, a t × h × w grid of visual tokens,
    then text (Qwen2-VL): text uses one id on all three axes; the grid's ids start after the text; text after
    the grid resumes at 1 + the largest id used."""
    text = torch.arange(n_text_before).expand(3, -1)
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    grid = torch.stack([tt.flatten(), hh.flatten(), ww.flatten()]) + n_text_before
    start = int(grid.max()) + 1
    after = torch.arange(start, start + n_text_after).expand(3, -1)
    return torch.cat([text, grid, after], dim=1)


def mrope_next_position(n_text_before: int, t: int, h: int, w: int) -> int:
    """The position id of the first text token after a t × h × w visual grid under M-RoPE."""
    return int(mrope_position_ids(n_text_before, t, h, w)[0, -1])


def rope_next_position(n_text_before: int, n_visual: int) -> int:
    """The same with 1-D RoPE (LLaVA): every visual token takes one position."""
    return n_text_before + n_visual


def position_interpolation_scale(trained_length: int, new_length: int) -> float:
    """Position Interpolation (Chen et al., 2023): positions are multiplied by L_train / L_new."""
    return trained_length / new_length


# Video.
def video_tokens(seconds: float, fps: float, tokens_per_frame: int, temporal_merge: int = 1) -> int:
    """Visual tokens of a clip sampled at `fps`, frames merged `temporal_merge` at a time (Qwen2-VL: 2)."""
    frames = int(seconds * fps)
    return (frames // temporal_merge) * tokens_per_frame


def video_tokens_per_second(fps: float, tokens_per_frame: int, temporal_merge: int = 1) -> float:
    return fps / temporal_merge * tokens_per_frame


def pooled_tokens(grid: int, pool: int) -> int:
    """Tokens left when a grid × grid frame is average-pooled pool × pool (video LLMs' spatial pooling)."""
    return torch.nn.functional.avg_pool2d(torch.zeros(1, 1, grid, grid), pool)[0, 0].numel()


# Audio LLMs and speech out.
def audio_llm_tokens(seconds: float, pool: int = 2) -> int:
    """Tokens an audio LLM reads for a clip: Whisper's encoder states pooled by `pool` (Qwen-Audio: 2)."""
    return whisper_states(seconds) // pool


def codec_bitrate(frame_rate: float, n_codebooks: int, codebook_size: int) -> float:
    """Bits per second of a residual-VQ codec: frames/s × codebooks × log2(codebook size)."""
    return frame_rate * n_codebooks * codebook_bits(codebook_size)


def multiscale_token_rates(sample_rate: int, hop: int, strides: tuple[int, ...]) -> list[float]:
    """SNAC's token rates: one level per stride, level s at sample_rate / hop / s tokens per second."""
    return [sample_rate / hop / s for s in strides]


def multiscale_tokens_per_second(sample_rate: int, hop: int, strides: tuple[int, ...]) -> float:
    return sum(multiscale_token_rates(sample_rate, hop, strides))


def temporal_ids(seconds: float, ms_per_id: float = 40) -> int:
    """TMRoPE (Qwen2.5-Omni): temporal position ids in `seconds` when one id stands for ms_per_id."""
    return int(round(1000 * seconds / ms_per_id))


# The capstone: LLaVA's recipe on SmolLM2-135M.
SMOLLM2_135M = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "head_dim": 64, "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True}


def smollm2_config(key: str) -> int:
    """One number of SmolLM2-135M's configuration (read from its GGUF file in tests/test_questions.py)."""
    return SMOLLM2_135M[key]


def smollm2_parameters() -> int:
    """Parameters of SmolLM2-135M, counted on transformers' LlamaForCausalLM built on the meta device."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M))
    return sum(p.numel() for p in model.parameters())


def smollm2_kv_bytes_per_token(dtype: str = "float16") -> int:
    c = SMOLLM2_135M
    return kv_cache_bytes(1, c["num_hidden_layers"], c["num_key_value_heads"], c["head_dim"], dtype)


def lora_parameters(d_in: int, d_out: int, r: int) -> int:
    """Trainable parameters LoRA adds to one d_in → d_out matrix: A (r × d_in) and B (d_out × r), r·(d_in + d_out)."""
    adapter = torch.nn.Sequential(torch.nn.Linear(d_in, r, bias=False), torch.nn.Linear(r, d_out, bias=False))
    return sum(p.numel() for p in adapter.parameters())


def smollm2_lora_parameters(r: int, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> int:
    """LoRA parameters on SmolLM2-135M's attention/MLP matrices named in `targets`, over all 30 layers."""
    c = SMOLLM2_135M
    d, kv, ff = c["hidden_size"], c["num_key_value_heads"] * c["head_dim"], c["intermediate_size"]
    shapes = {"q_proj": (d, c["num_attention_heads"] * c["head_dim"]), "k_proj": (d, kv), "v_proj": (d, kv),
              "o_proj": (c["num_attention_heads"] * c["head_dim"], d), "gate_proj": (d, ff), "up_proj": (d, ff),
              "down_proj": (ff, d)}
    unknown = set(targets) - set(shapes)
    if unknown:
        raise ValueError(f"unknown target modules {sorted(unknown)}; choose from {sorted(shapes)}")
    return c["num_hidden_layers"] * sum(lora_parameters(*shapes[t], r) for t in targets)


def projector_parameters(d_in: int, d_out: int, hidden: int = 0) -> int:
    """Parameters of mmcourse.fusion.Projector (a Linear, or LLaVA-1.5's two-layer MLP when hidden > 0)."""
    from mmcourse.fusion.projector import Projector

    return sum(p.numel() for p in Projector(d_in, d_out, hidden).parameters())


def expanded_length(n_text: int, n_placeholders: int, tokens_per_image: int) -> int:
    """Sequence length after each <image> placeholder of an n_text-token prompt becomes tokens_per_image tokens."""
    ids = [0] * (n_text - n_placeholders) + [1] * n_placeholders
    return sum(tokens_per_image if i else 1 for i in ids)

# Training and alignment: what each stage trains, counted on configs (meta device: nothing is allocated or
# downloaded, each count takes well under a second), Adam's memory, and the DPO loss.
CLIP_VIT_L14_336 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                    "image_size": 336, "patch_size": 14}  # LLaVA-1.5's vision tower, openai/clip-vit-large-patch14-336
LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False}  # Vicuna-7B v1.5's shape


def _count(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def clip_vit_l14_336_parameters() -> int:
    """Parameters of CLIP ViT-L/14 at 336 px (vision tower only), on transformers' CLIPVisionModel (meta device)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    with torch.device("meta"):
        return _count(CLIPVisionModel(CLIPVisionConfig(**CLIP_VIT_L14_336)))


def vicuna_7b_parameters() -> int:
    """Parameters of a Llama-2-7B-shaped LLM (Vicuna-7B v1.5, LLaVA-1.5-7B's LLM), on LlamaForCausalLM (meta)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        return _count(LlamaForCausalLM(LlamaConfig(**LLAMA2_7B)))


def llava15_projector_parameters() -> int:
    """LLaVA-1.5-7B's connector: an MLP 1024 → 4096 → 4096 (GELU), mmcourse.fusion.Projector of that shape."""
    return projector_parameters(CLIP_VIT_L14_336["hidden_size"], LLAMA2_7B["hidden_size"], LLAMA2_7B["hidden_size"])


def llava15_trainable_parameters(stage: int) -> int:
    """Parameters LLaVA-1.5-7B trains in stage 1 (the projector) or stage 2 (the projector and the whole LLM); the
    vision tower stays frozen in both (Liu et al., 2023, arXiv:2310.03744)."""
    if stage not in (1, 2):
        raise ValueError(f"LLaVA has two training stages, 1 and 2; got {stage!r}")
    return llava15_projector_parameters() + (vicuna_7b_parameters() if stage == 2 else 0)


def llava15_parameters() -> int:
    """All of LLaVA-1.5-7B: vision tower + projector + LLM."""
    return clip_vit_l14_336_parameters() + llava15_trainable_parameters(2)


def smollm2_lora_model_trainable(r: int = 8, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> int:
    """Trainable parameters of SmolLM2-135M (built on the meta device) frozen with LoRA adapters of rank r on
    `targets`, counted after requires_grad is set, as a training script would (A: r × d_in, B: d_out × r)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M))
        model.requires_grad_(False)
        for name, module in list(model.named_modules()):
            if name.rsplit(".", 1)[-1] in targets and isinstance(module, torch.nn.Linear):
                module.lora_A = torch.nn.Linear(module.in_features, r, bias=False)
                module.lora_B = torch.nn.Linear(r, module.out_features, bias=False)
    return _count(model, trainable_only=True)


def adam_bytes_per_parameter(dtype: str = "float32") -> int:
    """Bytes training one parameter with Adam holds: the weight, its gradient and the two moment estimates,
    measured on torch.optim.Adam's state after one step."""
    weight = torch.nn.Parameter(torch.zeros(1, dtype=getattr(torch, dtype)))
    weight.grad = torch.zeros_like(weight)
    optimizer = torch.optim.Adam([weight])
    optimizer.step()
    moments = [t for t in optimizer.state[weight].values() if torch.is_tensor(t) and t.dim() > 0]
    return sum(t.numel() * t.element_size() for t in [weight, weight.grad, *moments])


def gib(n_bytes: float) -> float:
    return n_bytes / 2 ** 30


def dpo_loss(beta: float, policy_chosen: float, reference_chosen: float, policy_rejected: float,
             reference_rejected: float) -> float:
    """DPO's loss for one preference pair (Rafailov et al., 2023, arXiv:2305.18290), from sequence log-probabilities:
    −log σ(β · ((log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))))."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return float(-torch.nn.functional.logsigmoid(torch.tensor(beta * margin, dtype=torch.float64)))


def dpo_reward(beta: float, policy: float, reference: float) -> float:
    """DPO's implicit reward of an answer: β · (log π(y) − log π_ref(y))."""
    return beta * (policy - reference)


def capstone_part_parameters(part: str) -> int:
    """Parameters of one trained part of the capstone (mmcourse.models.vlm.VLMConfig's defaults, SmolLM2's width 576):
    "vision" (the tiny ViT tower), "image_projector", "audio_projector" (Whisper tiny.en states stacked by the
    audio stride), "lora" (r = 8 on q_proj and v_proj, the training script's default)."""
    from mmcourse.fusion.projector import Projector
    from mmcourse.models.vlm import VLMConfig
    from mmcourse.tiers import load_image_encoder

    cfg, d = VLMConfig(), SMOLLM2_135M["hidden_size"]
    if part == "vision":
        return _count(load_image_encoder("tiny", image_size=cfg.image_size, patch_size=cfg.patch_size,
                                         hidden_size=cfg.vision_width, num_hidden_layers=cfg.vision_layers).model)
    if part == "image_projector":
        return _count(Projector(cfg.vision_width * cfg.shuffle ** 2, d * cfg.tile_words, hidden=d))
    if part == "audio_projector":
        return _count(Projector(cfg.audio_width * cfg.audio_stride, d, hidden=d))
    if part == "lora":
        return smollm2_lora_parameters(8)
    raise ValueError(f"unknown part {part!r}; choose vision, image_projector, audio_projector or lora")


def capstone_trainable_parameters(stage: int) -> int:
    """What the capstone trains (mmcourse.models.train_vlm): stage 0 the vision tower alone (its probes are thrown
    away), stage 1 both projectors, stage 2 the projectors and LoRA; the tower stays frozen after stage 0, and the
    LLM's own weights and the Whisper encoder are never trained."""
    parts = {0: ["vision"], 1: ["image_projector", "audio_projector"],
             2: ["image_projector", "audio_projector", "lora"]}[stage]
    return sum(capstone_part_parameters(part) for part in parts)


def capstone_tiles() -> int:
    """Tiles per image in the capstone: (64 px / 8 px patches / pixel shuffle 4)² (VLMConfig's defaults)."""
    from mmcourse.models.vlm import VLMConfig

    return VLMConfig().tiles


def capstone_image_tokens() -> int:
    """LLM positions per image in the capstone: its tiles × the 3 words of each (size, colour, shape)."""
    from mmcourse.models.vlm import VLMConfig

    return VLMConfig().image_tokens


def capstone_task_kinds(stage: int) -> int:
    """Kinds of synthetic examples the capstone's training script draws in a stage (mmcourse.models.train_vlm)."""
    from mmcourse.models import train_vlm

    return len(set({1: train_vlm.STAGE1_TASKS, 2: train_vlm.STAGE2_TASKS}[stage]))


def pope_negative_kinds() -> int:
    """How the capstone's POPE questions pick an absent object: random, popular, adversarial."""
    from mmcourse.models import train_vlm

    return len(train_vlm.POPE_NEGATIVES)


def scene_vocabulary(kind: str) -> int:
    """Colours, shapes or quadrants of the course's synthetic scenes (mmcourse.data)."""
    return len({"colours": COLORS, "shapes": SHAPES, "quadrants": QUADRANTS}[kind])


def deaf_accuracy(kind: str, place_fraction: float) -> float:
    """Percent right of answers that cannot hear the question, on balanced questions of one kind ("where": the
    quadrants equally often, "is there": yes and no), when the answer is a place (each quadrant equally) on
    `place_fraction` of the questions and yes or no (equally) on the rest: sum over answers of
    P(answer) · P(truth = answer), what metrics.unpaired_accuracy estimates from a model's own answers."""
    if kind not in ("where", "is there") or not 0 <= place_fraction <= 1:
        raise ValueError(f"deaf_accuracy takes kind 'where' or 'is there' and a fraction in [0, 1], got {kind!r}, "
                         f"{place_fraction!r}")
    truths = list(QUADRANTS) if kind == "where" else ["yes", "no"]
    given = {**{q: place_fraction / len(QUADRANTS) for q in QUADRANTS}, "yes": (1 - place_fraction) / 2,
             "no": (1 - place_fraction) / 2}
    return 100 * sum(p * truths.count(answer) / len(truths) for answer, p in given.items())


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
    pixel_shuffle_tokens, pixel_shuffle_width, tiled_image_tokens, grid_tokens, qwen2vl_image_tokens,
    packed_sequences, padding_positions, packing_padding, fastv_kept, fastv_saving_percent, kv_cache_bytes, mib,
    rope_frequencies, mrope_next_position, rope_next_position, position_interpolation_scale, video_tokens,
    video_tokens_per_second, pooled_tokens, audio_llm_tokens, codec_bitrate, multiscale_token_rates,
    multiscale_tokens_per_second, temporal_ids, smollm2_config, smollm2_parameters, smollm2_kv_bytes_per_token,
    lora_parameters, smollm2_lora_parameters, projector_parameters, expanded_length,
    clip_vit_l14_336_parameters, vicuna_7b_parameters, llava15_projector_parameters, llava15_trainable_parameters,
    llava15_parameters, smollm2_lora_model_trainable, adam_bytes_per_parameter, gib, dpo_loss, dpo_reward,
    capstone_part_parameters, capstone_trainable_parameters, capstone_tiles, capstone_image_tokens, capstone_task_kinds, pope_negative_kinds,
    scene_vocabulary, deaf_accuracy,
)}
SAFE_NAMES = {f.__name__: f for f in (len, sum, min, max, abs, round, math.exp, math.log, math.sqrt)}
