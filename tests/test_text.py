import pytest
import torch

from mmcourse.encoding import text
from mmcourse.tokens import Tokens

TEXTS = ["where is the red shape", "a large red circle in the top left", "blue"]


@pytest.fixture(scope="module")
def encoder():
    return text.TextEncoder.from_tier("tiny")


# ---------------------------------------------------------------- tokenizer


def test_tiny_vocabulary_is_fixed_and_sorted_within_groups():
    vocab = text.tiny_vocabulary()
    assert vocab[:5] == text.SPECIAL_TOKENS
    assert len(vocab) == len(set(vocab))
    pieces = [v for v in vocab if v.startswith("##")]
    assert pieces == sorted(pieces)


def test_tiny_tokenizer_spells_unknown_words_and_adds_specials():
    tok = text.tiny_tokenizer()
    ids = tok("where is the magenta shape")["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert "[UNK]" not in tokens
    assert tokens[4:11] == ["m", "##a", "##g", "##e", "##n", "##t", "##a"]
    assert tok.convert_tokens_to_ids("red") == text.tiny_vocabulary().index("red")


# ---------------------------------------------------------------- masks


def test_attention_mask_from_ids_matches_the_tokenizer():
    tok = text.tiny_tokenizer()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    mask = text.attention_mask_from_ids(batch["input_ids"], tok.pad_token_id)
    assert mask.dtype == torch.long
    assert torch.equal(mask, batch["attention_mask"])
    with pytest.raises(TypeError, match="integer"):
        text.attention_mask_from_ids(batch["input_ids"].float(), 0)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        text.attention_mask_from_ids(batch["input_ids"][0], 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_attention_bias_equals_transformers_eager_mask(dtype):
    from transformers import BertConfig
    from transformers.masking_utils import create_bidirectional_mask

    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    bias = text.attention_bias(mask, dtype)
    assert bias.shape == (3, 1, 1, 5) and bias.dtype == dtype
    config = BertConfig(attn_implementation="eager", hidden_size=8, num_attention_heads=2)
    reference = create_bidirectional_mask(config=config, inputs_embeds=torch.zeros(3, 5, 8, dtype=dtype),
                                          attention_mask=mask)  # (3, 1, 5, 5)
    assert torch.equal(bias.expand(-1, -1, 5, -1), reference)
    assert torch.equal(text.attention_bias(mask.bool(), dtype), bias)


def test_attention_bias_makes_the_padded_row_equal_the_text_alone(encoder):
    batch = encoder.tokenize(TEXTS)
    alone = encoder.tokenize(TEXTS[:1])
    n = alone["input_ids"].shape[1]
    with torch.no_grad():
        reference = encoder.model(**alone).last_hidden_state[0]
        biased = encoder.model(input_ids=batch["input_ids"],
                               attention_mask=text.attention_bias(batch["attention_mask"])).last_hidden_state[0, :n]
        unmasked = encoder.model(input_ids=batch["input_ids"]).last_hidden_state[0, :n]
    torch.testing.assert_close(biased, reference, atol=1e-5, rtol=1e-5)
    assert (unmasked - reference).abs().max() > 1e-3  # without the mask the padding leaks in


def test_attention_bias_rejects_bad_input():
    with pytest.raises(ValueError, match="only 0 and 1"):
        text.attention_bias(torch.tensor([[101, 7, 102]]))
    with pytest.raises(TypeError, match="floating"):
        text.attention_bias(torch.ones(1, 3), torch.long)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        text.attention_bias(torch.ones(3))


# ---------------------------------------------------------------- pooling


def test_masked_mean_pool_ignores_padding():
    torch.manual_seed(0)
    hidden = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = text.masked_mean_pool(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0, :3].mean(0))
    assert torch.allclose(pooled[1], hidden[1].mean(0))
    hidden2 = hidden.clone()
    hidden2[0, 3:] = 1e6  # garbage in the padding
    assert torch.allclose(text.masked_mean_pool(hidden2, mask), pooled)


def test_masked_mean_pool_accepts_bool_and_float_masks():
    torch.manual_seed(1)
    hidden = torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    pooled = text.masked_mean_pool(hidden, mask)
    assert torch.equal(text.masked_mean_pool(hidden, mask.bool()), pooled)
    assert torch.equal(text.masked_mean_pool(hidden, mask.float()), pooled)
    half = text.masked_mean_pool(hidden.half(), mask)
    assert half.dtype == torch.float16


def test_masked_mean_pool_errors():
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        text.masked_mean_pool(torch.zeros(2, 5, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="no real token"):
        text.masked_mean_pool(torch.zeros(1, 2, 3), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(B, L, D\)"):
        text.masked_mean_pool(torch.zeros(2, 5), torch.ones(2, 5))


def test_masked_mean_pool_bad_input_names_the_fix():
    hidden = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="batch sizes differ.*2.*3"):
        text.masked_mean_pool(hidden, torch.ones(3, 4))
    with pytest.raises(ValueError, match="only 0 and 1.*input_ids"):
        text.masked_mean_pool(hidden, torch.tensor([[2, 5, 7, 3], [2, 9, 3, 0]]))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        text.masked_mean_pool(hidden, torch.ones(2, 4, 1))
    with pytest.raises(TypeError, match="torch.Tensor"):
        text.masked_mean_pool(hidden, [[1, 1, 1, 1], [1, 1, 0, 0]])
    with pytest.raises(TypeError, match="last_hidden_state"):
        text.masked_mean_pool(torch.zeros(2, 4, 3, dtype=torch.long), torch.ones(2, 4))
    # A key-padding mask (True = padding) passed by mistake: the longest text's row is all "padding".
    padding_mask = torch.tensor([[False, False, True, True], [False, False, False, False]])
    with pytest.raises(ValueError, match="invert"):
        text.masked_mean_pool(hidden, padding_mask)


# ---------------------------------------------------------------- the encoder


def test_text_encoder_returns_tokens_with_the_tokenizer_mask(encoder):
    tokens = encoder(TEXTS)
    assert isinstance(tokens, Tokens)
    batch = encoder.tokenizer(TEXTS, padding=True, return_tensors="pt")
    length = batch["input_ids"].shape[1]
    assert tokens.states.shape == (3, length, 64) and encoder.width == 64
    assert torch.equal(tokens.padding_mask, batch["attention_mask"] == 0)
    assert torch.equal(tokens.attention_mask, batch["attention_mask"])
    with torch.no_grad():
        direct = encoder.model(**batch).last_hidden_state
    torch.testing.assert_close(tokens.states, direct)
    assert not encoder.training and list(encoder.parameters())  # the model is a registered submodule


def test_embed_is_padding_invariant(encoder):
    with torch.no_grad():
        together = encoder.embed(TEXTS)
        alone = torch.cat([encoder.embed([t]) for t in TEXTS])
        cls = encoder.embed(TEXTS, pooling="cls")
        states = encoder(TEXTS).states
    assert together.shape == (3, 64)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls, states[:, 0])
    with pytest.raises(ValueError, match="'mean' or 'cls'"):
        encoder.embed(TEXTS, pooling="max")


def test_a_single_string_is_a_batch_of_one(encoder):
    with torch.no_grad():
        single = encoder.embed("where is the red shape")
        listed = encoder.embed(["where is the red shape"])
    assert single.shape == (1, 64)
    assert torch.equal(single, listed)
    assert encoder(("red", "blue")).states.shape[0] == 2  # a tuple works like a list


@pytest.mark.parametrize("texts, error, match", [
    (["where is the red shape", ""], ValueError, r"texts\[1\] is empty"),
    (["   "], ValueError, r"texts\[0\] is empty"),
    ([], ValueError, "empty list"),
    (["red", 3], TypeError, r"texts\[1\] is a int"),
    (["red", None], TypeError, r"texts\[1\] is a NoneType"),
    ({"red", "blue"}, TypeError, r"list\(texts\)"),
    (torch.arange(10)[None], TypeError, "tokenizes them itself"),
])
def test_text_encoder_rejects_bad_texts(encoder, texts, error, match):
    with pytest.raises(error, match=match):
        encoder(texts)


def test_long_texts_raise_unless_max_length_truncates(encoder):
    long_text = " ".join(["red"] * 200)  # 202 tokens with [CLS] and [SEP]; the tiny model has 128 positions
    with pytest.raises(ValueError, match=r"texts\[1\] is 202 tokens.*at most 128.*max_length=128"):
        encoder(["blue", long_text])
    cut = text.TextEncoder(encoder.model, encoder.tokenizer, max_length=16)
    batch = cut.tokenize(["blue", long_text])
    assert batch["input_ids"].shape == (2, 16)
    tokens = cut.tokenizer.convert_ids_to_tokens(batch["input_ids"][1])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens[1:-1] == ["red"] * 14
    assert cut(["blue", long_text]).states.shape == (2, 16, 64)
    with pytest.raises(ValueError, match="between 3 .* 128"):
        text.TextEncoder(encoder.model, encoder.tokenizer, max_length=512)


def test_from_tier_passes_settings_through():
    small = text.TextEncoder.from_tier("tiny", hidden_size=32, num_attention_heads=2, max_length=10)
    assert small.width == 32 and small.max_length == 10
    assert small(["red"]).states.shape == (1, 3, 32)
    with pytest.raises(ValueError, match="unknown tier"):
        text.TextEncoder.from_tier("huge")


def test_training_mode_makes_identical_calls_differ(encoder):
    """Bug 4 of the blog post: dropout is on in training mode; the loaders and the wrapper keep eval mode."""
    with torch.no_grad():
        a, b = encoder(TEXTS).states, encoder(TEXTS).states
        assert torch.equal(a, b)
        encoder.train()
        try:
            c, d = encoder(TEXTS).states, encoder(TEXTS).states
        finally:
            encoder.eval()
    assert (c - d).abs().max() > 1e-2
