"""The fusion zoo: one interface, padding invariance, missing modalities, the properties each paper promises."""

import pytest
import torch

from mmcourse.fusion import (ZOO, EarlyFusion, GatedCrossAttention, GraphFusion, LateFusion, LowRankFusion,
                             QueryResampler, TensorFusion, pool)
from mmcourse.tokens import Tokens

WIDTHS = {"text": 12, "image": 16, "audio": 8}


def make_inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = {"text": 5, "image": 9, "audio": 7}
    inputs = {}
    for m, w in WIDTHS.items():
        pad = torch.zeros(b, lengths[m], dtype=torch.bool)
        if m != "image":
            pad[0, -2:] = True  # sample 0 is padded
        inputs[m] = Tokens(torch.randn(b, lengths[m], w, generator=g), pad)
    return inputs


def build(cls):
    torch.manual_seed(0)
    return cls(WIDTHS, 16).eval()


@pytest.mark.parametrize("name", list(ZOO))
def test_one_interface_and_padding_invariance(name):
    module = build(ZOO[name])
    inputs = make_inputs()
    with torch.no_grad():
        out = module(inputs)
        assert isinstance(out, Tokens) and out.states.shape[0] == 3 and out.states.shape[-1] == 16
        vector = pool(out)
        assert vector.shape == (3, 16) and torch.isfinite(vector).all()
        # sample 0 without its padding gives the same fused vector
        trimmed = {m: Tokens(t.states[:1, : (~t.padding_mask[0]).sum()], t.padding_mask[:1, : (~t.padding_mask[0]).sum()])
                   for m, t in inputs.items()}
        alone = pool(module(trimmed))
    assert torch.allclose(alone, vector[:1], atol=1e-5), f"{name}: padding changed the fused representation"


@pytest.mark.parametrize("name", list(ZOO))
def test_missing_modality(name):
    module = build(ZOO[name])
    inputs = make_inputs()
    del inputs["audio"]
    with torch.no_grad():
        out = module(inputs)
    assert torch.isfinite(out.states).all()


def test_gated_cross_attention_is_identity_at_initialisation():
    torch.manual_seed(0)
    block = GatedCrossAttention({"text": 16, "image": 16}, 16, query="text")
    inputs = make_inputs()
    inputs = {"text": Tokens(torch.randn(3, 5, 16), inputs["text"].padding_mask), "image": inputs["image"]}
    inputs["image"] = Tokens(torch.randn(3, 9, 16), inputs["image"].padding_mask)
    out = block(inputs)
    assert torch.equal(out.states, inputs["text"].states), "tanh(0) = 0: the block starts as the identity"
    with torch.no_grad():
        block.block.alpha_attn.fill_(1.0)
    assert not torch.allclose(block(inputs).states, inputs["text"].states)
    with pytest.raises(ValueError, match="query modality"):
        block({"image": inputs["image"]})


def test_query_resampler_output_length_is_fixed():
    module = QueryResampler(WIDTHS, 16, n_queries=4)
    for length in (3, 50):
        inputs = {"image": Tokens(torch.randn(2, length, 16), torch.zeros(2, length, dtype=torch.bool))}
        assert module(inputs).states.shape == (2, 4, 16)


def test_tensor_fusion_keeps_unimodal_terms_and_low_rank_is_small():
    tf = TensorFusion({"a": 4, "b": 4}, 8, k=3)
    assert tf.out.in_features == 16, "(k+1)² for two modalities"
    lmf = LowRankFusion({"a": 4, "b": 4, "c": 4}, 8, rank=2, k=3)
    assert sum(p.numel() for p in lmf.factors.parameters()) == 3 * 2 * 4 * 8
    # with b and c missing, tensor fusion still sees a through its constant-1 terms
    x = {"a": Tokens(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool))}
    tf3 = TensorFusion({"a": 4, "b": 4}, 8, k=3)
    y1 = tf3(x).states
    x2 = {"a": Tokens(x["a"].states + 1, x["a"].padding_mask)}
    assert not torch.allclose(y1, tf3(x2).states)


def test_graph_fusion_nodes_exchange_messages():
    torch.manual_seed(0)
    g = GraphFusion({"a": 4, "b": 4}, 8).eval()
    a = Tokens(torch.randn(1, 3, 4), torch.zeros(1, 3, dtype=torch.bool))
    b1 = Tokens(torch.randn(1, 3, 4), torch.zeros(1, 3, dtype=torch.bool))
    b2 = Tokens(torch.randn(1, 3, 4), torch.zeros(1, 3, dtype=torch.bool))
    node_a_1 = g({"a": a, "b": b1}).states[0, 0]
    node_a_2 = g({"a": a, "b": b2}).states[0, 0]
    assert not torch.allclose(node_a_1, node_a_2), "node a must depend on node b through the messages"


def test_errors_name_the_problem():
    module = EarlyFusion(WIDTHS, 16)
    inputs = make_inputs()
    with pytest.raises(ValueError, match="unknown modalities"):
        module({"video": inputs["text"]})
    with pytest.raises(ValueError, match="built for 12"):
        module({"text": inputs["image"]})
    with pytest.raises(ValueError, match="different batch sizes"):
        module({"text": inputs["text"], "image": Tokens(inputs["image"].states[:2], inputs["image"].padding_mask[:2])})
    with pytest.raises(TypeError, match="Tokens"):
        module({"text": inputs["text"].states})
    with pytest.raises(ValueError, match="at least one modality"):
        EarlyFusion({}, 16)
    with pytest.raises(ValueError, match="query"):
        GatedCrossAttention({"image": 4}, 8, query="text")
    assert LateFusion(WIDTHS, 16)(inputs).states.shape == (3, 1, 16)


def test_self_attention_block_matches_torch_transformer_layer():
    """EarlyFusion's block is the pre-norm transformer layer: equal to torch's with the same weights."""
    from mmcourse.fusion import Block

    torch.manual_seed(0)
    d, heads = 16, 4
    ours = Block(d, heads).eval()
    ref = torch.nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True).eval()
    with torch.no_grad():
        a = ours.attn
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        ref.self_attn.out_proj.weight.copy_(a.out_proj.weight)
        ref.self_attn.out_proj.bias.copy_(a.out_proj.bias)
        for mine, theirs in ((ours.norm_attn, ref.norm1), (ours.norm_ffn, ref.norm2),
                             (ours.ffn[0], ref.linear1), (ours.ffn[2], ref.linear2)):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        x = torch.randn(3, 6, d)
        pad = torch.zeros(3, 6, dtype=torch.bool)
        pad[0, -2:] = True
        got, want = ours(x, padding_mask=pad), ref(x, src_key_padding_mask=pad)
    real = ~pad  # torch's fast path may write zeros at padded positions; compare the real tokens
    assert torch.allclose(got[real], want[real], atol=1e-5)


def _copy_attention(ours, theirs) -> None:
    theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
    theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
    theirs.out_proj.weight.copy_(ours.out_proj.weight)
    theirs.out_proj.bias.copy_(ours.out_proj.bias)


def test_decoder_block_matches_torch_transformer_decoder_layer():
    """The same Block with self- and cross-attention and a causal mask is torch's pre-norm decoder layer."""
    from mmcourse.fusion import Block

    torch.manual_seed(0)
    d, heads = 16, 4
    ours = Block(d, heads, d_context=d).eval()
    ref = torch.nn.TransformerDecoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True).eval()
    with torch.no_grad():
        _copy_attention(ours.attn, ref.self_attn)
        _copy_attention(ours.cross_attn, ref.multihead_attn)
        for mine, theirs in ((ours.norm_attn, ref.norm1), (ours.norm_cross, ref.norm2), (ours.norm_ffn, ref.norm3),
                             (ours.ffn[0], ref.linear1), (ours.ffn[2], ref.linear2)):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        x, memory = torch.randn(2, 5, d), torch.randn(2, 7, d)
        memory_pad = torch.zeros(2, 7, dtype=torch.bool)
        memory_pad[1, 4:] = True
        got = ours(x, memory, memory_pad, causal=True)
        future = torch.ones(5, 5, dtype=torch.bool).triu(1)  # torch: True = may NOT attend
        want = ref(x, memory, tgt_mask=future, memory_key_padding_mask=memory_pad)
    assert torch.allclose(got, want, atol=1e-5)


def test_gated_cross_attention_at_init_only_the_gates_learn():
    torch.manual_seed(0)
    block = GatedCrossAttention({"text": 8, "image": 8}, 8, n_heads=2)
    inputs = {"text": Tokens(torch.randn(2, 3, 8), torch.zeros(2, 3, dtype=torch.bool)),
              "image": Tokens(torch.randn(2, 5, 8), torch.zeros(2, 5, dtype=torch.bool))}
    (block(inputs).states ** 2).sum().backward()
    assert block.block.alpha_attn.grad.abs() > 0, "the attention gate must receive a gradient at initialisation"
    assert torch.count_nonzero(block.block.attn.q_proj.weight.grad) == 0, "tanh(0) = 0 blocks the attention's gradient"


def test_count_flops_counts_matmuls_and_cpu_attention():
    import torch.nn.functional as F

    from mmcourse.fusion.zoo import count_flops

    assert count_flops(torch.nn.Linear(3, 5), torch.randn(10, 3)) == 2 * 10 * 3 * 5
    b, h, lq, lk, dh = 2, 4, 7, 11, 8
    q, k = torch.randn(b, h, lq, dh), torch.randn(b, h, lk, dh)
    mask = torch.ones(b, 1, 1, lk, dtype=torch.bool)
    assert count_flops(F.scaled_dot_product_attention, q, k, k, attn_mask=mask) == 4 * b * h * lq * lk * dh

    # a whole gated cross-attention block, by hand: projections, Q/K/V/O, attention, the 4× FFN
    d, w, lq, lc = 16, 12, 5, 9
    block = GatedCrossAttention({"text": d, "image": w}, d)
    inputs = {"text": Tokens(torch.randn(1, lq, d), torch.zeros(1, lq, dtype=torch.bool)),
              "image": Tokens(torch.randn(1, lc, w), torch.zeros(1, lc, dtype=torch.bool))}
    expected = (2 * lc * w * d  # the image's projection to d
                + 2 * 2 * lq * d * d  # W_q on the text, W_o on the result
                + 2 * 2 * lc * d * d  # W_k, W_v on the image
                + 4 * lq * lc * d  # Q Kᵀ and weights · V, summed over the heads
                + 2 * 2 * lq * d * 4 * d)  # the FFN d → 4d → d
    assert count_flops(block, inputs) == expected


def test_tensor_product_holds_every_term():
    from mmcourse.fusion.zoo import tensor_product

    a, b, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 2)
    ones = torch.ones(2, 1)
    a1, b1, c1 = torch.cat([a, ones], 1), torch.cat([b, ones], 1), torch.cat([c, ones], 1)
    assert torch.allclose(tensor_product([a, b]), torch.einsum("bi,bj->bij", a1, b1).flatten(1))
    assert torch.allclose(tensor_product([a, b, c]), torch.einsum("bi,bj,bk->bijk", a1, b1, c1).flatten(1))
    two = tensor_product([a, b]).view(2, 4, 5)
    assert torch.equal(two[:, :3, 4], a) and torch.equal(two[:, 3, :4], b) and torch.equal(two[:, 3, 4], ones[:, 0])
    with pytest.raises(ValueError, match="pool the tokens first"):
        tensor_product([torch.randn(2, 5, 3)])
