"""mmcourse.fusion.attention against PyTorch's own attention implementations."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.fusion import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from mmcourse.fusion import CrossAttentionBlock, merge_heads, split_heads


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 7, 8, generator=g),
            torch.randn(2, 3, 7, 8, generator=g))


def test_matches_torch_sdpa_both_paths(qkv):
    q, k, v = qkv
    ref = F.scaled_dot_product_attention(q, k, v)
    fast = scaled_dot_product_attention(q, k, v)
    slow, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert torch.allclose(fast, ref, atol=1e-5) and torch.allclose(slow, ref, atol=1e-5)
    assert weights.shape == (2, 3, 5, 7)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 5), atol=1e-6), "softmax runs over the keys"


def test_key_padding_mask_matches_torch_and_zeroes_padding(qkv):
    q, k, v = qkv
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 4:] = True
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])  # torch: True = attend
    out, weights = scaled_dot_product_attention(q, k, v, key_padding_mask=pad, return_weights=True)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(scaled_dot_product_attention(q, k, v, key_padding_mask=pad), ref, atol=1e-5)
    assert weights[0, :, :, 4:].abs().max() == 0
    # the padded sample equals the same sample without its padding
    alone = scaled_dot_product_attention(q[:1], k[:1, :, :4], v[:1, :, :4])
    assert torch.allclose(out[:1], alone, atol=1e-5)


def test_against_nn_multihead_attention_convention(qkv):
    """nn.MultiheadAttention also uses True = padding for key_padding_mask."""
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(12, 3, batch_first=True, bias=False)
    x, ctx = torch.randn(2, 5, 12), torch.randn(2, 7, 12)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    ref, _ = mha(x, ctx, ctx, key_padding_mask=pad)
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    split = lambda t: t.view(2, -1, 3, 4).transpose(1, 2)  # noqa: E731
    out = scaled_dot_product_attention(split(x @ w_q.T), split(ctx @ w_k.T), split(ctx @ w_v.T), key_padding_mask=pad)
    out = out.transpose(1, 2).reshape(2, 5, 12) @ mha.out_proj.weight.T
    assert torch.allclose(out, ref, atol=1e-5)


def test_causal_matches_torch_and_is_bottom_right_aligned(qkv):
    q, k, v = qkv
    sq = torch.randn(2, 3, 7, 8)
    assert torch.allclose(scaled_dot_product_attention(sq, k, v, causal=True),
                          F.scaled_dot_product_attention(sq, k, v, is_causal=True), atol=1e-5)
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    # the last query alone (a decoding step with a cache) sees every key
    last = scaled_dot_product_attention(sq[:, :, -1:], k, v, causal=True)
    assert torch.allclose(last, scaled_dot_product_attention(sq, k, v, causal=True)[:, :, -1:], atol=1e-5)


def test_fast_path_calls_torch_sdpa_and_the_weights_path_does_not(qkv, monkeypatch):
    q, k, v = qkv
    calls, original = [], F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get("attn_mask"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 5:] = True
    scaled_dot_product_attention(q, k, v, key_padding_mask=pad)
    assert len(calls) == 1 and torch.equal(calls[0], ~pad[:, None, None, :]), "SDPA gets True = attend"
    scaled_dot_product_attention(q, k, v, key_padding_mask=pad, return_weights=True)
    assert len(calls) == 1, "with return_weights the weights are computed explicitly"


def test_value_width_may_differ_from_key_width(qkv):
    q, k, _ = qkv
    v = torch.randn(2, 3, 7, 5)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 3:] = True
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
    out, _ = scaled_dot_product_attention(q, k, v, key_padding_mask=pad, return_weights=True)
    assert out.shape == (2, 3, 5, 5)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(scaled_dot_product_attention(q, k, v, key_padding_mask=pad), ref, atol=1e-5)


def test_errors_name_the_problem():
    q = torch.zeros(2, 1, 3, 4)
    with pytest.raises(ValueError, match=r"\(B, H, L, d\)"):
        scaled_dot_product_attention(torch.zeros(2, 3, 4), q, q)
    with pytest.raises(ValueError, match="same head width"):
        scaled_dot_product_attention(q, torch.zeros(2, 1, 3, 5), torch.zeros(2, 1, 3, 5))
    with pytest.raises(ValueError, match="batch and heads"):
        scaled_dot_product_attention(q, torch.zeros(3, 1, 3, 4), torch.zeros(3, 1, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, Lk\)"):
        scaled_dot_product_attention(q, q, q, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="attention_mask == 0"):
        scaled_dot_product_attention(q, q, q, key_padding_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="no real key"):
        scaled_dot_product_attention(q, q, q, key_padding_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="dtype"):
        scaled_dot_product_attention(q, q.double(), q.double())


def test_cross_attention_padding_invariance_and_errors():
    torch.manual_seed(0)
    layer = MultiHeadAttention(d_query=6, d_context=10, d_model=8, n_heads=2).eval()
    x, ctx = torch.randn(2, 4, 6), torch.randn(2, 9, 10)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[0, 5:] = True
    out, weights = layer(x, ctx, key_padding_mask=pad, return_weights=True)
    assert out.shape == (2, 4, 8) and weights.shape == (2, 2, 4, 9)
    alone = layer(x[:1], ctx[:1, :5])
    assert torch.allclose(out[:1], alone, atol=1e-5), "a padded sample gives the same output alone as in the batch"
    assert torch.allclose(layer(x, ctx, key_padding_mask=pad), out, atol=1e-5)
    with pytest.raises(ValueError, match="batch sizes differ"):
        layer(x, ctx[:1])
    with pytest.raises(ValueError, match="d_context = 10"):
        layer(x, torch.randn(2, 9, 7))
    with pytest.raises(ValueError, match="d_query = 6"):
        layer(torch.randn(2, 4, 5), ctx)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(6, 10, 9, 2)


@pytest.mark.parametrize("make, error, words", [
    (lambda q: (q, torch.zeros(3, 1, 3, 4), torch.zeros(3, 1, 3, 4), None), ValueError,
     ["batch sizes differ", "q (2, 1, 3, 4)", "k (3, 1, 3, 4)"]),
    (lambda q: (q, torch.zeros(2, 2, 3, 4), torch.zeros(2, 2, 3, 4), None), ValueError,
     ["numbers of heads differ", "k (2, 2, 3, 4)"]),
    (lambda q: (q, torch.zeros(2, 1, 3, 5), torch.zeros(2, 1, 3, 5), None), ValueError,
     ["head width", "q (2, 1, 3, 4)", "k (2, 1, 3, 5)"]),
    (lambda q: (q, q, torch.zeros(2, 1, 6, 4), None), ValueError, ["number of keys", "v (2, 1, 6, 4)"]),
    (lambda q: (q, q, q, torch.zeros(2, 4, dtype=torch.bool)), ValueError,
     ["key_padding_mask (2, 4)", "(2, 3)", "k (2, 1, 3, 4)"]),
    (lambda q: (q, q, q, torch.zeros(3, dtype=torch.bool)), ValueError, ["key_padding_mask (3,)", "(B, Lk)"]),
    (lambda q: (q, q, q, torch.ones(2, 3, dtype=torch.long)), TypeError, ["torch.int64", "attention_mask == 0"]),
    (lambda q: (q, q.half(), q.half(), None), TypeError, ["q torch.float32", "k torch.float16"]),
    (lambda q: (q.long(), q.long(), q.long(), None), TypeError, ["float tensor", "torch.int64"]),
    (lambda q: (q[0], q, q, None), ValueError, ["(B, H, L, d)", "(1, 3, 4)", "split_heads"]),
])
def test_sdpa_bad_input_names_tensors_and_shapes(make, error, words):
    q, k, v, mask = make(torch.zeros(2, 1, 3, 4))
    with pytest.raises(error) as info:
        scaled_dot_product_attention(q, k, v, key_padding_mask=mask)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


@pytest.fixture(scope="module")
def layer():
    torch.manual_seed(0)
    return MultiHeadAttention(d_query=6, d_context=10, d_model=8, n_heads=2).eval()


@pytest.mark.parametrize("make, error, words", [
    (lambda: (torch.zeros(2, 4, 6), torch.zeros(1, 9, 10), None), ValueError,
     ["batch sizes differ", "x (2, 4, 6)", "context (1, 9, 10)"]),
    (lambda: (torch.zeros(2, 4, 7), torch.zeros(2, 9, 10), None), ValueError, ["x (2, 4, 7)", "d_query = 6"]),
    (lambda: (torch.zeros(2, 4, 6), torch.zeros(2, 9, 384), None), ValueError,
     ["context (2, 9, 384)", "d_context = 10"]),
    (lambda: (torch.zeros(4, 6), torch.zeros(9, 10), None), ValueError, ["(B, L, D)", "x (4, 6)", "x[None]"]),
    (lambda: (torch.zeros(2, 4, 6), torch.zeros(2, 9, 10), torch.zeros(2, 8, dtype=torch.bool)), ValueError,
     ["key_padding_mask (2, 8)", "(2, 9)", "context (2, 9, 10)"]),
    (lambda: (torch.zeros(2, 4, 6), torch.zeros(2, 9, 10), torch.ones(2, 9)), TypeError,
     ["torch.float32", "attention_mask == 0"]),
    (lambda: (torch.zeros(2, 4, 6), torch.zeros(2, 9, 10, dtype=torch.float64), None), TypeError,
     ["context (2, 9, 10)", "torch.float64", "torch.float32"]),
    (lambda: (torch.zeros(2, 4, 6), torch.zeros(2, 9, 10), torch.ones(2, 9, dtype=torch.bool)), ValueError,
     ["no real key"]),
])
def test_cross_attention_bad_input_names_tensors_and_shapes(layer, make, error, words):
    x, context, mask = make()
    with pytest.raises(error) as info:
        layer(x, context, key_padding_mask=mask)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_split_and_merge_heads():
    x = torch.arange(2 * 3 * 12, dtype=torch.float32).reshape(2, 3, 12)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 3)
    assert torch.equal(heads[:, 1], x[..., 3:6]), "head h holds features h·d … (h+1)·d − 1"
    assert torch.equal(merge_heads(heads), x)
    with pytest.raises(ValueError, match="not divisible by n_heads = 5"):
        split_heads(x, 5)


def test_cross_attention_equals_its_steps(layer):
    x, ctx = torch.randn(2, 4, 6), torch.randn(2, 9, 10)
    q, k, v = (split_heads(proj(t), 2) for proj, t in ((layer.q_proj, x), (layer.k_proj, ctx), (layer.v_proj, ctx)))
    weights = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)  # d_head = 4: √4 = 2
    expected = layer.out_proj(merge_heads(weights @ v))
    out, got_weights = layer(x, ctx, return_weights=True)
    assert torch.allclose(out, expected, atol=1e-5) and torch.allclose(got_weights, weights, atol=1e-6)


def test_block_matches_torch_decoder_layer_without_self_attention():
    """CrossAttentionBlock = nn.TransformerDecoderLayer(norm_first=True, gelu) with its self-attention switched off."""
    torch.manual_seed(0)
    d, heads = 16, 4
    block = CrossAttentionBlock(d, d, heads).eval()
    ref = torch.nn.TransformerDecoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True).eval()
    with torch.no_grad():
        ref.self_attn.out_proj.weight.zero_()
        ref.self_attn.out_proj.bias.zero_()  # x + SelfAttn(·) = x
        attn = block.attn
        ref.multihead_attn.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        ref.multihead_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        ref.multihead_attn.out_proj.load_state_dict(attn.out_proj.state_dict())
        ref.norm2.load_state_dict(block.norm_attn.state_dict())
        ref.norm3.load_state_dict(block.norm_ffn.state_dict())
        ref.linear1.load_state_dict(block.ffn[0].state_dict())
        ref.linear2.load_state_dict(block.ffn[2].state_dict())
    x, memory = torch.randn(2, 5, d), torch.randn(2, 9, d)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 4:] = True
    expected = ref(x, memory, memory_key_padding_mask=pad)
    assert torch.allclose(block(x, memory, pad), expected, atol=1e-5)


def test_block_residual_padding_invariance_and_weights():
    torch.manual_seed(0)
    block = CrossAttentionBlock(d_model=8, d_context=12, n_heads=2).eval()
    x, ctx = torch.randn(2, 3, 8), torch.randn(2, 10, 12)
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[0, 6:] = True
    out, weights = block(x, ctx, pad, return_weights=True)
    assert out.shape == (2, 3, 8) and weights.shape == (2, 2, 3, 10)
    assert weights[0, :, :, 6:].abs().max() == 0
    assert torch.allclose(block(x[:1], ctx[:1, :6]), out[:1], atol=1e-5), "a padded sample alone = in the batch"
    assert torch.allclose(block(x, ctx, pad), out, atol=1e-6)
    with torch.no_grad():  # both branches silenced: the block passes x through unchanged (the residual path)
        for linear in (block.attn.out_proj, block.ffn[2]):
            linear.weight.zero_()
            linear.bias.zero_()
    assert torch.equal(block(x, ctx, pad), x)
