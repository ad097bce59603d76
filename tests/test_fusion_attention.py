"""mmcourse.fusion.attention against PyTorch's own attention implementations."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.fusion import MultiHeadCrossAttention, causal_mask, scaled_dot_product_attention


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
    layer = MultiHeadCrossAttention(d_query=6, d_context=10, d_model=8, n_heads=2).eval()
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
        MultiHeadCrossAttention(6, 10, 9, 2)
