"""Notebook 07 · fusion modules: wrong and right answers to its five exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

_GATED_INIT = ("class GatedXAttnBlock(nn.Module):\n    def __init__(self, d_model, n_heads):\n        super().__init__()\n"
               "        self.norm_attn, self.norm_context, self.norm_ffn = nn.LayerNorm(d_model), nn.LayerNorm(d_model), "
               "nn.LayerNorm(d_model)\n"
               "        self.attn = MultiHeadAttention(d_model, d_model, d_model, n_heads)\n"
               "        self.ffn = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))\n"
               "        self.alpha_attn = nn.Parameter(torch.zeros(()))\n        self.alpha_ffn = nn.Parameter(torch.zeros(()))\n\n")
_GATED_FORWARD = ("        x = x + torch.tanh(self.alpha_attn) * self.attn(self.norm_attn(x), self.norm_context(context), "
                  "padding_mask)\n        return x + torch.tanh(self.alpha_ffn) * self.ffn(self.norm_ffn(x))\n")


def _gated(forward: str = _GATED_FORWARD, init: str = _GATED_INIT) -> str:
    return init + "    def forward(self, x, context, padding_mask):\n" + forward


_RESAMPLER_INIT = ("class TinyResampler(nn.Module):\n    def __init__(self, d_model, n_queries, n_heads):\n"
                   "        super().__init__()\n        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)\n"
                   "        self.norm_queries, self.norm_context = nn.LayerNorm(d_model), nn.LayerNorm(d_model)\n"
                   "        self.attn = MultiHeadAttention(d_model, d_model, d_model, n_heads)\n\n")


def _resampler(forward: str, init: str = _RESAMPLER_INIT) -> str:
    return init + "    def forward(self, context, padding_mask):\n" + forward


_FLOPS = "def fusion_attention_flops(l_text, l_image, d_model):\n"

MUTANTS = {
    "nb07_tensor_fusion_features": Exercise(
        wrong=[
            wrong("no 1 appended", "def tensor_fusion_features(vectors):\n"
                  "    product = vectors[0].new_ones(vectors[0].shape[0], 1)\n    for z in vectors:\n"
                  "        product = (product.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)\n    return product",
                  names=r"append the 1"),
            wrong("the 1 prepended", "def tensor_fusion_features(vectors):\n"
                  "    product = vectors[0].new_ones(vectors[0].shape[0], 1)\n    for z in vectors:\n"
                  "        z1 = torch.cat([z.new_ones(z.shape[0], 1), z], dim=-1)\n"
                  "        product = (product.unsqueeze(-1) * z1.unsqueeze(1)).flatten(1)\n    return product",
                  names=r"row i is \[a, 1\]_i"),
            wrong("the last modality varying slowest", "def tensor_fusion_features(vectors):\n"
                  "    product = vectors[0].new_ones(vectors[0].shape[0], 1)\n    for z in vectors:\n"
                  "        z1 = torch.cat([z, z.new_ones(z.shape[0], 1)], dim=-1)\n"
                  "        product = (z1.unsqueeze(-1) * product.unsqueeze(1)).flatten(1)\n    return product",
                  names=r"varies slowest"),
            wrong("two modalities only", "def tensor_fusion_features(vectors):\n"
                  "    a, b = [torch.cat([z, torch.ones(z.shape[0], 1)], dim=1) for z in vectors[:2]]\n"
                  "    return torch.einsum('bi,bj->bij', a, b).flatten(1)", names=r"one modality at a time"),
            subtle("the outer product taken across the batch", "def tensor_fusion_features(vectors):\n"
                   "    out = torch.ones(1)\n    for z in vectors:\n"
                   "        z1 = torch.cat([z, torch.ones(z.shape[0], 1)], dim=1)\n"
                   "        out = torch.outer(out.flatten(), z1.flatten())\n"
                   "    return out.reshape(vectors[0].shape[0], -1)"),
            subtle("the 1 appended to the first modality only", "def tensor_fusion_features(vectors):\n"
                   "    product = torch.cat([vectors[0], torch.ones(vectors[0].shape[0], 1)], dim=1)\n"
                   "    for z in vectors[1:]:\n        product = (product.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)\n"
                   "    return product"),
            subtle("a 0 appended instead of a 1", "def tensor_fusion_features(vectors):\n"
                   "    product = vectors[0].new_ones(vectors[0].shape[0], 1)\n    for z in vectors:\n"
                   "        z1 = torch.cat([z, z.new_zeros(z.shape[0], 1)], dim=-1)\n"
                   "        product = (product.unsqueeze(-1) * z1.unsqueeze(1)).flatten(1)\n    return product"),
        ],
        right=[
            right("functools.reduce over einsum, F.pad for the 1", "import functools\n\n\n"
                  "def tensor_fusion_features(vectors):\n"
                  "    padded = [F.pad(z, (0, 1), value=1.0) for z in vectors]\n"
                  "    return functools.reduce(lambda p, z: torch.einsum('bi,bj->bij', p, z).flatten(1), padded)"),
            right("torch.kron, one sample at a time", "def tensor_fusion_features(vectors):\n    rows = []\n"
                  "    for i in range(vectors[0].shape[0]):\n        row = torch.ones(1, dtype=vectors[0].dtype)\n"
                  "        for z in vectors:\n            row = torch.kron(row, torch.cat([z[i], torch.ones(1, dtype=z.dtype)]))\n"
                  "        rows.append(row)\n    return torch.stack(rows)"),
        ]),
    "nb07_fusion_weight_counts": Exercise(
        wrong=[
            wrong("tensor fusion without its bias", "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    return {'tensor': (k + 1) ** n_modalities * d_model,\n"
                  "            'low-rank': n_modalities * rank * (k + 1) * d_model + d_model}", names=r"plus a bias"),
            wrong("k^M: the appended 1s forgotten", "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    return {'tensor': k ** n_modalities * d_model + d_model,\n"
                  "            'low-rank': n_modalities * rank * (k + 1) * d_model + d_model}", names=r"\(k \+ 1\)\^M"),
            wrong("the product's size taken as a sum", "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    return {'tensor': (k + 1) * n_modalities * d_model + d_model,\n"
                  "            'low-rank': n_modalities * rank * (k + 1) * d_model + d_model}", names=r"\(k \+ 1\)\^M"),
            wrong("low-rank: one factor per modality, the rank forgotten",
                  "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    return {'tensor': (k + 1) ** n_modalities * d_model + d_model,\n"
                  "            'low-rank': n_modalities * (k + 1) * d_model + d_model}", names=r"per rank"),
            wrong("low-rank: a bias per factor", "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    return {'tensor': (k + 1) ** n_modalities * d_model + d_model,\n"
                  "            'low-rank': n_modalities * rank * ((k + 1) * d_model + d_model)}", names=r"one bias"),
            wrong("the key spelled low_rank", "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    return {'tensor': (k + 1) ** n_modalities * d_model + d_model,\n"
                  "            'low_rank': n_modalities * rank * (k + 1) * d_model + d_model}", names=r"the keys"),
            subtle("floats from math.pow", "import math\n\n\ndef fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                   "    return {'tensor': math.pow(k + 1, n_modalities) * d_model + d_model,\n"
                   "            'low-rank': float(n_modalities * rank * (k + 1) * d_model + d_model)}"),
            subtle("the appended 1 forgotten in the factors", "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                   "    return {'tensor': (k + 1) ** n_modalities * d_model + d_model,\n"
                   "            'low-rank': n_modalities * rank * k * d_model + d_model}"),
        ],
        right=[
            right("math.prod and a count of the factors", "import math\n\n\n"
                  "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    factor = (k + 1) * d_model\n"
                  "    return {'low-rank': sum(factor for _ in range(n_modalities * rank)) + d_model,\n"
                  "            'tensor': math.prod([k + 1] * n_modalities) * d_model + d_model}"),
            right("counted on real layers", "def fusion_weight_counts(k, n_modalities, d_model, rank):\n"
                  "    linear = nn.Linear((k + 1) ** n_modalities, d_model)\n"
                  "    factors = nn.ParameterList([nn.Parameter(torch.empty(k + 1, d_model)) "
                  "for _ in range(n_modalities * rank)])\n"
                  "    return {'tensor': sum(p.numel() for p in linear.parameters()),\n"
                  "            'low-rank': sum(p.numel() for p in factors.parameters()) + d_model}"),
        ]),
    "nb07_gated_xattn_block": Exercise(
        wrong=[
            wrong("gates start open, at 1", _gated(init=_GATED_INIT.replace("torch.zeros(())", "torch.ones(())")),
                  names=r"start alpha_attn and alpha_ffn at 0"),
            wrong("no tanh on the gates", _gated(
                "        x = x + self.alpha_attn * self.attn(self.norm_attn(x), self.norm_context(context), padding_mask)\n"
                "        return x + self.alpha_ffn * self.ffn(self.norm_ffn(x))\n"), names=r"tanh\(α_attn\)"),
            wrong("gates as plain tensors", _gated(init=_GATED_INIT.replace("nn.Parameter(torch.zeros(()))", "torch.zeros(())")),
                  names=r"nn\.Parameter"),
            wrong("gates of shape (1,)", _gated(init=_GATED_INIT.replace("torch.zeros(())", "torch.zeros(1)")),
                  names=r"scalar nn\.Parameter"),
            wrong("context not normalised", _gated(
                "        x = x + torch.tanh(self.alpha_attn) * self.attn(self.norm_attn(x), context, padding_mask)\n"
                "        return x + torch.tanh(self.alpha_ffn) * self.ffn(self.norm_ffn(x))\n"), names=r"LN\(context\)"),
            wrong("FFN on the block's input, not the updated x", _gated(
                "        h = x + torch.tanh(self.alpha_attn) * self.attn(self.norm_attn(x), self.norm_context(context), "
                "padding_mask)\n        return h + torch.tanh(self.alpha_ffn) * self.ffn(self.norm_ffn(x))\n"),
                names=r"updated x"),
            subtle("padding mask not passed to the attention", _gated(
                "        x = x + torch.tanh(self.alpha_attn) * self.attn(self.norm_attn(x), self.norm_context(context))\n"
                "        return x + torch.tanh(self.alpha_ffn) * self.ffn(self.norm_ffn(x))\n")),
            subtle("one gate for both steps", _gated(
                "        x = x + torch.tanh(self.alpha_attn) * self.attn(self.norm_attn(x), self.norm_context(context), "
                "padding_mask)\n        return x + torch.tanh(self.alpha_attn) * self.ffn(self.norm_ffn(x))\n")),
            subtle("the gate multiplies the whole residual stream", _gated(
                "        x = torch.tanh(self.alpha_attn) * (x + self.attn(self.norm_attn(x), self.norm_context(context), "
                "padding_mask))\n        return torch.tanh(self.alpha_ffn) * (x + self.ffn(self.norm_ffn(x)))\n")),
            subtle("the FFN 2x wide", _gated(init=_GATED_INIT.replace("4 * d_model", "2 * d_model"))),
        ],
        right=[
            right("register_parameter, .tanh() and addcmul", _gated(
                "        gate = self.alpha_attn.tanh()\n"
                "        a = self.attn(self.norm_attn(x), self.norm_context(context), key_padding_mask=padding_mask)\n"
                "        x = torch.addcmul(x, gate.expand_as(x), a)\n"
                "        return torch.addcmul(x, self.alpha_ffn.tanh().expand_as(x), self.ffn(self.norm_ffn(x)))\n",
                "class GatedXAttnBlock(nn.Module):\n    def __init__(self, d_model, n_heads):\n        super().__init__()\n"
                "        self.register_parameter('alpha_attn', nn.Parameter(torch.tensor(0.0)))\n"
                "        self.register_parameter('alpha_ffn', nn.Parameter(torch.tensor(0.0)))\n"
                "        for name in ('norm_attn', 'norm_context', 'norm_ffn'):\n"
                "            setattr(self, name, nn.LayerNorm(d_model))\n"
                "        self.attn = MultiHeadAttention(d_query=d_model, d_context=d_model, d_model=d_model, n_heads=n_heads)\n"
                "        self.ffn = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(approximate='none'), "
                "nn.Linear(4 * d_model, d_model))\n\n")),
            right("functional layer norms and GELU", _gated(
                "        ln = lambda m, t: F.layer_norm(t, t.shape[-1:], m.weight, m.bias, m.eps)\n"
                "        x = x + torch.tanh(self.alpha_attn) * self.attn(ln(self.norm_attn, x), ln(self.norm_context, context), "
                "padding_mask)\n        h = ln(self.norm_ffn, x)\n"
                "        return x + torch.tanh(self.alpha_ffn) * self.ffn[2](F.gelu(self.ffn[0](h)))\n")),
        ]),
    "nb07_tiny_resampler": Exercise(
        wrong=[
            wrong("the context attends to itself: its length comes out", _resampler(
                "        c = self.norm_context(context)\n        return context + self.attn(c, c, padding_mask)\n"),
                names=r"queries, not the input"),
            wrong("queries not a parameter", _resampler(
                "        q = self.queries.expand(context.shape[0], -1, -1)\n"
                "        return q + self.attn(self.norm_queries(q), self.norm_context(context), padding_mask)\n",
                _RESAMPLER_INIT.replace("nn.Parameter(torch.randn(n_queries, d_model) * 0.02)",
                                        "torch.randn(n_queries, d_model) * 0.02")), names=r"learned"),
            wrong("queries stored (d_model, n_queries)", _resampler(
                "        q = self.queries.T.expand(context.shape[0], -1, -1)\n"
                "        return q + self.attn(self.norm_queries(q), self.norm_context(context), padding_mask)\n",
                _RESAMPLER_INIT.replace("torch.randn(n_queries, d_model)", "torch.randn(d_model, n_queries)")),
                names=r"\(n_queries, d_model\)"),
            wrong("no residual", _resampler(
                "        q = self.queries.expand(context.shape[0], -1, -1)\n"
                "        return self.attn(self.norm_queries(q), self.norm_context(context), padding_mask)\n"),
                names=r"residual"),
            subtle("padding mask not passed on", _resampler(
                "        q = self.queries.expand(context.shape[0], -1, -1)\n"
                "        return q + self.attn(self.norm_queries(q), self.norm_context(context))\n")),
            subtle("the context not normalised", _resampler(
                "        q = self.queries.expand(context.shape[0], -1, -1)\n"
                "        return q + self.attn(self.norm_queries(q), context, padding_mask)\n")),
            subtle("the residual adds the normalised queries", _resampler(
                "        q = self.norm_queries(self.queries.expand(context.shape[0], -1, -1))\n"
                "        return q + self.attn(q, self.norm_context(context), padding_mask)\n")),
        ],
        right=[
            right("repeat, keyword arguments", _resampler(
                "        q = self.queries.unsqueeze(0).repeat(len(context), 1, 1)\n"
                "        return q + self.attn(x=self.norm_queries(q), context=self.norm_context(context), "
                "key_padding_mask=padding_mask)\n")),
            right("the attention on the un-expanded queries, broadcast back", _resampler(
                "        q = self.norm_queries(self.queries)[None].expand(context.shape[0], *self.queries.shape)\n"
                "        return self.queries + self.attn(q, F.layer_norm(context, (context.shape[-1],), "
                "self.norm_context.weight, self.norm_context.bias), padding_mask)\n")),
        ]),
    "nb07_fusion_attention_flops": Exercise(
        wrong=[
            wrong("a multiply-add counted as 1 FLOP", _FLOPS +
                  "    def attention(lq, lk):\n        return 2 * lq * lk * d_model\n"
                  "    return {'early': attention(l_text + l_image, l_text + l_image), 'cross': attention(l_text, l_image)}",
                  names=r"2 · 2 · Lq · Lk · d"),
            wrong("cross-attention counted both ways", _FLOPS +
                  "    def attention(lq, lk):\n        return 4 * lq * lk * d_model\n"
                  "    return {'early': attention(l_text + l_image, l_text + l_image),\n"
                  "            'cross': attention(l_text, l_image) + attention(l_image, l_text)}", names=r"two products"),
            wrong("early fusion: only the text tokens ask", _FLOPS +
                  "    def attention(lq, lk):\n        return 4 * lq * lk * d_model\n"
                  "    return {'early': attention(l_text, l_text + l_image), 'cross': attention(l_text, l_image)}",
                  names=r"query and a key"),
            wrong("early fusion: each modality attends to itself", _FLOPS +
                  "    def attention(lq, lk):\n        return 4 * lq * lk * d_model\n"
                  "    return {'early': attention(l_text, l_text) + attention(l_image, l_image), "
                  "'cross': attention(l_text, l_image)}", names=r"Lq = Lk = 24"),
            subtle("the two results swapped", _FLOPS +
                  "    def attention(lq, lk):\n        return 4 * lq * lk * d_model\n"
                  "    return {'cross': attention(l_text + l_image, l_text + l_image), 'early': attention(l_text, l_image)}"),
            subtle("FLOPs as floats", _FLOPS +
                   "    def attention(lq, lk):\n        return 4.0 * lq * lk * d_model\n"
                   "    return {'early': attention(l_text + l_image, l_text + l_image), 'cross': attention(l_text, l_image)}"),
            subtle("per head only: d_model / 4", _FLOPS +
                   "    def attention(lq, lk):\n        return 4 * lq * lk * (d_model // 4)\n"
                   "    return {'early': attention(l_text + l_image, l_text + l_image), 'cross': attention(l_text, l_image)}"),
        ],
        right=[
            right("one expression per product", _FLOPS +
                  "    products = lambda lq, lk: sum(2 * lq * lk * d_model for _ in ('Q Kᵀ', 'weights · V'))\n"
                  "    total = l_text + l_image\n    return {'cross': products(l_text, l_image), 'early': products(total, total)}"),
            right("measured with FlopCounterMode on two matmuls", "from torch.utils.flop_counter import FlopCounterMode\n\n\n"
                  + _FLOPS + "    def attention(lq, lk):\n"
                  "        q, k = torch.zeros(1, lq, d_model), torch.zeros(1, lk, d_model)\n"
                  "        with FlopCounterMode(display=False) as counter:\n            (q @ k.mT).softmax(-1) @ k\n"
                  "        return counter.get_total_flops()\n"
                  "    return {'early': attention(l_text + l_image, l_text + l_image), 'cross': attention(l_text, l_image)}"),
        ]),
}
