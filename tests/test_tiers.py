import time

import pytest
import torch

from mmcourse import tiers
from tests.conftest import require_extra


def test_tiny_text_encoder():
    model, tokenizer = tiers.load_text_encoder()
    assert not model.training, "loaders return models in eval mode (dropout off)"
    enc = tokenizer(["a red circle", "where is the blue shape"], padding=True, return_tensors="pt")
    out = model(**enc).last_hidden_state
    assert out.shape == (2, enc["input_ids"].shape[1], 64)


def test_tiny_models_are_identical_on_every_load_and_leave_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, _ = tiers.load_image_encoder()
    assert torch.equal(torch.rand(1), expected_next), "building a tiny model must not consume the global RNG"
    b, _ = tiers.load_image_encoder()
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    c, _ = tiers.load_image_encoder(seed=1)
    assert not torch.equal(a.embeddings.patch_embeddings.projection.weight, c.embeddings.patch_embeddings.projection.weight)


def test_tiny_image_encoder_token_count():
    model, processor = tiers.load_image_encoder()
    assert model(pixel_values=torch.zeros(2, 3, 64, 64)).last_hidden_state.shape == (2, 65, 64)
    big, _ = tiers.load_image_encoder(image_size=224, patch_size=16)
    assert big(pixel_values=torch.zeros(1, 3, 224, 224)).last_hidden_state.shape[1] == 197
    with pytest.raises(ValueError, match="multiple"):
        tiers.load_image_encoder(image_size=65, patch_size=8)


def test_tiny_audio_encoder_frames_to_states():
    model, fe = tiers.load_audio_encoder()
    assert model(torch.zeros(1, 80, 3000)).last_hidden_state.shape == (1, 1500, 64)
    short, fe3 = tiers.load_audio_encoder(seconds=3)
    assert short(torch.zeros(2, 80, 300)).last_hidden_state.shape == (2, 150, 64)
    assert fe3.n_samples == 48000
    with pytest.raises(ValueError, match="between 1 and 30"):
        tiers.load_audio_encoder(seconds=40)


def test_tiny_text_decoder_generates():
    model, tokenizer = tiers.load_text_decoder()
    ids = tokenizer(["a red"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape == (1, ids.shape[1] + 3)


def test_attention_implementation_switch():
    model, tokenizer = tiers.load_text_encoder(attn_implementation="eager")
    out = model(**tokenizer(["a red circle"], return_tensors="pt"), output_attentions=True)
    assert out.attentions[0].shape == (1, 4, 5, 5)


def test_unknown_tier():
    with pytest.raises(ValueError, match="tiny, packaged, hub"):
        tiers.load_text_encoder("large")


def test_hub_offline_fails_fast_and_names_the_other_tiers(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    for loader in (tiers.load_text_encoder, tiers.load_image_encoder, tiers.load_audio_encoder, tiers.load_text_decoder):
        start = time.perf_counter()
        with pytest.raises(tiers.HubUnavailable) as err:
            loader("hub")
        assert time.perf_counter() - start < 10
        assert "tier='tiny'" in str(err.value) and "tier='packaged'" in str(err.value)


def test_hub_without_network_fails_fast_even_when_not_told_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(tiers.runtime, "hub_reachable", lambda timeout=1.5: False)
    start = time.perf_counter()
    with pytest.raises(tiers.HubUnavailable, match="unreachable"):
        tiers.load_text_encoder("hub", "bert-base-uncased")
    assert time.perf_counter() - start < 10


def test_packaged_tier_has_no_vit_and_no_tiny_recognizer():
    with pytest.raises(tiers.TierUnavailable, match="tier='tiny'"):
        tiers.load_image_encoder("packaged")
    with pytest.raises(tiers.TierUnavailable):
        tiers.load_speech_recognizer("tiny")


def test_packaged_text_and_audio_encoders():
    from mmcourse import packaged

    try:
        packaged.minilm_path(), packaged.whisper_path()
        ok = True
    except ImportError:
        ok = False
    require_extra(ok, "the packaged weights")
    model, tokenizer = tiers.load_text_encoder("packaged")
    assert model.config.hidden_size == 384 and not model.training
    encoder, fe = tiers.load_audio_encoder("packaged")
    assert encoder(torch.zeros(1, 80, 3000)).last_hidden_state.shape == (1, 1500, 384)
    assert tiers.tier_status()["packaged"] == "available"


def test_tier_status_reports_missing_packaged(monkeypatch):
    from mmcourse import packaged

    def missing():
        raise packaged.PackagedWeightsMissing(packaged.WHISPER_PACKAGE)

    monkeypatch.setattr(packaged, "whisper_path", missing)
    status = tiers.tier_status()
    assert status["tiny"] == "available" and "mmcourse[packaged]" in status["packaged"]
