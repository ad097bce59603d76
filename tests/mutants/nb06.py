"""Notebook 06 · attention fusion: wrong and right answers to its four exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

_BLOCK_INIT = ("class CrossAttentionBlock(nn.Module):\n    def __init__(self, d_model, d_context, n_heads):\n"
               "        super().__init__()\n        self.norm_attn = nn.LayerNorm(d_model)\n"
               "        self.attn = fusion.MultiHeadAttention(d_model, d_context, d_model, n_heads)\n"
               "        self.norm_ffn = nn.LayerNorm(d_model)\n"
               "        self.ffn = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))\n\n")


def _block(forward: str, init: str = _BLOCK_INIT) -> str:
    return init + "    def forward(self, x, context, key_padding_mask=None):\n" + forward


MUTANTS = {
    "nb06_attention": Exercise(
        wrong=[
            wrong("softmax over the queries (the blog's dim=1)", "def attention(q, k, v, key_padding_mask=None):\n"
                  "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                  "    if key_padding_mask is not None:\n"
                  "        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float('-inf'))\n"
                  "    weights = scores.softmax(dim=-2)\n    return weights @ v, weights", names=r"LAST axis"),
            wrong("no 1/sqrt(d) (bug 13)", "def attention(q, k, v, key_padding_mask=None):\n"
                  "    scores = q @ k.transpose(-2, -1)\n    if key_padding_mask is not None:\n"
                  "        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float('-inf'))\n"
                  "    weights = scores.softmax(dim=-1)\n    return weights @ v, weights", names=r"√d"),
            wrong("the other convention: True = keep", "def attention(q, k, v, key_padding_mask=None):\n"
                  "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                  "    if key_padding_mask is not None:\n"
                  "        scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float('-inf'))\n"
                  "    weights = scores.softmax(dim=-1)\n    return weights @ v, weights", names=r"True = PADDING"),
            wrong("weights zeroed after the softmax", "def attention(q, k, v, key_padding_mask=None):\n"
                  "    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)\n"
                  "    if key_padding_mask is not None:\n"
                  "        weights = weights.masked_fill(key_padding_mask[:, None, None, :], 0.0)\n"
                  "    return weights @ v, weights", names=r"not the weights"),
            wrong("padded scores set to 0, not -inf", "def attention(q, k, v, key_padding_mask=None):\n"
                  "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                  "    if key_padding_mask is not None:\n"
                  "        scores = scores.masked_fill(key_padding_mask[:, None, None, :], 0.0)\n"
                  "    weights = scores.softmax(dim=-1)\n    return weights @ v, weights", names=r"float\('-inf'\)"),
            subtle("scaled by the width of the values", "def attention(q, k, v, key_padding_mask=None):\n"
                   "    scores = q @ k.transpose(-2, -1) / math.sqrt(v.shape[-1])\n"
                   "    if key_padding_mask is not None:\n"
                   "        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float('-inf'))\n"
                   "    weights = scores.softmax(dim=-1)\n    return weights @ v, weights"),
            subtle("divided by d, not sqrt(d)", "def attention(q, k, v, key_padding_mask=None):\n"
                   "    scores = q @ k.transpose(-2, -1) / q.shape[-1]\n"
                   "    if key_padding_mask is not None:\n"
                   "        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float('-inf'))\n"
                   "    weights = scores.softmax(dim=-1)\n    return weights @ v, weights"),
            subtle("the mask given axes in the wrong places", "def attention(q, k, v, key_padding_mask=None):\n"
                   "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                   "    if key_padding_mask is not None:\n"
                   "        scores = scores.masked_fill(key_padding_mask[None, :, None, :], float('-inf'))\n"
                   "    weights = scores.softmax(dim=-1)\n    return weights @ v, weights"),
            subtle("the weights average the keys, not the values", "def attention(q, k, v, key_padding_mask=None):\n"
                   "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                   "    if key_padding_mask is not None:\n"
                   "        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float('-inf'))\n"
                   "    weights = scores.softmax(dim=-1)\n    return weights @ k, weights"),
        ],
        right=[
            right("einsum and torch.where", "def attention(q, k, v, key_padding_mask=None):\n"
                  "    scores = torch.einsum('bhqd,bhkd->bhqk', q, k) * q.shape[-1] ** -0.5\n"
                  "    if key_padding_mask is not None:\n"
                  "        scores = torch.where(key_padding_mask.view(k.shape[0], 1, 1, -1), "
                  "torch.tensor(float('-inf')), scores)\n"
                  "    weights = torch.softmax(scores, -1)\n    return torch.einsum('bhqk,bhkd->bhqd', weights, v), weights"),
            right("q scaled first, the lowest float in place", "def attention(q, k, v, key_padding_mask=None):\n"
                  "    scores = torch.matmul(q / math.sqrt(q.size(-1)), k.mT)\n"
                  "    if key_padding_mask is not None:\n"
                  "        scores.masked_fill_(key_padding_mask.unsqueeze(1).unsqueeze(2), torch.finfo(scores.dtype).min)\n"
                  "    weights = F.softmax(scores, dim=3)\n    return torch.matmul(weights, v), weights"),
        ]),
    "nb06_convert_mask": Exercise(
        wrong=[
            wrong("hf mask passed through as the padding mask", "def convert_mask(mask, source, target):\n"
                  "    names = ('hf', 'padding', 'sdpa')\n    if source not in names or target not in names:\n"
                  "        raise ValueError(f'conventions are {names}')\n"
                  "    if source == 'sdpa':\n        mask = mask[:, 0, 0, :]\n    keep = mask.bool()\n"
                  "    if target == 'hf':\n        return keep.long()\n    if target == 'padding':\n        return keep\n"
                  "    return keep[:, None, None, :]", names=r"True = padding"),
            wrong("SDPA mask without the head and query axes", "def convert_mask(mask, source, target):\n"
                  "    names = ('hf', 'padding', 'sdpa')\n    if source not in names or target not in names:\n"
                  "        raise ValueError(f'conventions are {names}')\n"
                  "    keep = mask != 0 if source == 'hf' else ~mask if source == 'padding' else mask.reshape(len(mask), -1)\n"
                  "    if target == 'hf':\n        return keep.long()\n    if target == 'padding':\n        return ~keep\n"
                  "    return keep", names=r"None, None"),
            wrong("SDPA mask True = padding", "def convert_mask(mask, source, target):\n"
                  "    names = ('hf', 'padding', 'sdpa')\n    if source not in names or target not in names:\n"
                  "        raise ValueError(f'conventions are {names}')\n"
                  "    padding = mask == 0 if source == 'hf' else mask if source == 'padding' else mask[:, 0, 0, :]\n"
                  "    if target == 'hf':\n        return (~padding).long()\n    if target == 'padding':\n        return padding\n"
                  "    return padding[:, None, None, :]", names=r"ATTEND"),
            wrong("hf target left as bool", "def convert_mask(mask, source, target):\n"
                  "    names = ('hf', 'padding', 'sdpa')\n    if source not in names or target not in names:\n"
                  "        raise ValueError(f'conventions are {names}')\n"
                  "    keep = mask != 0 if source == 'hf' else ~mask if source == 'padding' else mask[:, 0, 0, :]\n"
                  "    if target == 'hf':\n        return keep\n    if target == 'padding':\n        return ~keep\n"
                  "    return keep[:, None, None, :]", names=r"torch\.long"),
            wrong("arithmetic on the hf mask: fails for bool masks", "def convert_mask(mask, source, target):\n"
                  "    names = ('hf', 'padding', 'sdpa')\n    if source not in names or target not in names:\n"
                  "        raise ValueError(f'conventions are {names}')\n"
                  "    padding = (1 - mask).bool() if source == 'hf' else mask if source == 'padding' else ~mask[:, 0, 0, :]\n"
                  "    if target == 'hf':\n        return (~padding).long()\n    if target == 'padding':\n        return padding\n"
                  "    return ~padding[:, None, None, :]", names=r"with a bool tensor is not supported|long, bool or float"),
            wrong("unknown names fall through to SDPA", "def convert_mask(mask, source, target):\n"
                  "    keep = mask != 0 if source == 'hf' else ~mask if source == 'padding' else mask[:, 0, 0, :]\n"
                  "    if target == 'hf':\n        return keep.long()\n    if target == 'padding':\n        return ~keep\n"
                  "    return keep[:, None, None, :]", names=r"ValueError"),
            wrong("ValueError that does not list the conventions", "def convert_mask(mask, source, target):\n"
                  "    if source not in ('hf', 'padding', 'sdpa') or target not in ('hf', 'padding', 'sdpa'):\n"
                  "        raise ValueError('unknown mask convention')\n"
                  "    keep = mask != 0 if source == 'hf' else ~mask if source == 'padding' else mask[:, 0, 0, :]\n"
                  "    if target == 'hf':\n        return keep.long()\n    if target == 'padding':\n        return ~keep\n"
                  "    return keep[:, None, None, :]", names=r"does not mention"),
            subtle("an SDPA source mask kept 4-D", "def convert_mask(mask, source, target):\n"
                   "    names = ('hf', 'padding', 'sdpa')\n    if source not in names or target not in names:\n"
                   "        raise ValueError(f'conventions are {names}')\n"
                   "    keep = mask != 0 if source == 'hf' else ~mask if source == 'padding' else mask\n"
                   "    if target == 'hf':\n        return keep.long()\n    if target == 'padding':\n        return ~keep\n"
                   "    return keep if source == 'sdpa' else keep[:, None, None, :]"),
            subtle("only the target name validated", "def convert_mask(mask, source, target):\n"
                   "    names = ('hf', 'padding', 'sdpa')\n    if target not in names:\n"
                   "        raise ValueError(f'conventions are {names}')\n"
                   "    keep = mask != 0 if source == 'hf' else ~mask if source == 'padding' else mask[:, 0, 0, :]\n"
                   "    if target == 'hf':\n        return keep.long()\n    if target == 'padding':\n        return ~keep\n"
                   "    return keep[:, None, None, :]"),
        ],
        right=[
            right("through the padding convention, with view and ne", "def convert_mask(mask, source, target):\n"
                  "    if {source, target} - {'hf', 'padding', 'sdpa'}:\n"
                  "        raise ValueError('mask conventions: hf, padding, sdpa')\n"
                  "    if source == 'hf':\n        pad = mask.eq(0)\n    elif source == 'sdpa':\n"
                  "        pad = mask.view(mask.shape[0], -1).logical_not()\n    else:\n        pad = mask.clone()\n"
                  "    if target == 'hf':\n        return pad.logical_not().to(torch.int64)\n"
                  "    if target == 'sdpa':\n        return pad.logical_not().view(pad.shape[0], 1, 1, -1)\n    return pad"),
            right("a table of lambdas", "def convert_mask(mask, source, target):\n"
                  "    to_keep = {'hf': lambda m: m.to(torch.bool), 'padding': lambda m: ~m, 'sdpa': lambda m: m.squeeze(2).squeeze(1)}\n"
                  "    from_keep = {'hf': lambda k: k.long(), 'padding': lambda k: ~k, 'sdpa': lambda k: k.unsqueeze(1).unsqueeze(1)}\n"
                  "    if source not in to_keep or target not in from_keep:\n"
                  "        raise ValueError(f'unknown convention; use one of {sorted(to_keep)}')\n"
                  "    return from_keep[target](to_keep[source](mask))"),
        ]),
    "nb06_split_merge_heads": Exercise(
        wrong=[
            wrong("reshaped straight to (B, H, L, d)", "def split_heads(x, n_heads):\n    b, length, width = x.shape\n"
                  "    if width % n_heads:\n        raise ValueError('width not divisible by n_heads')\n"
                  "    return x.reshape(b, n_heads, length, width // n_heads)\n\n\n"
                  "def merge_heads(x):\n    b, h, length, d = x.shape\n    return x.reshape(b, length, h * d)",
                  names=r"THEN transpose"),
            wrong("features interleaved across the heads", "def split_heads(x, n_heads):\n    b, length, width = x.shape\n"
                  "    if width % n_heads:\n        raise ValueError('width not divisible by n_heads')\n"
                  "    return x.reshape(b, length, width // n_heads, n_heads).permute(0, 3, 1, 2)\n\n\n"
                  "def merge_heads(x):\n    b, h, length, d = x.shape\n    return x.permute(0, 2, 3, 1).reshape(b, length, h * d)",
                  names=r"head h holds features"),
            wrong("heads after the positions", "def split_heads(x, n_heads):\n    b, length, width = x.shape\n"
                  "    if width % n_heads:\n        raise ValueError('width not divisible by n_heads')\n"
                  "    return x.reshape(b, length, n_heads, width // n_heads)\n\n\n"
                  "def merge_heads(x):\n    b, length, h, d = x.shape\n    return x.reshape(b, length, h * d)",
                  names=r"heads before positions"),
            wrong("merge_heads without the transpose", "def split_heads(x, n_heads):\n    b, length, width = x.shape\n"
                  "    if width % n_heads:\n        raise ValueError('width not divisible by n_heads')\n"
                  "    return x.reshape(b, length, n_heads, width // n_heads).transpose(1, 2)\n\n\n"
                  "def merge_heads(x):\n    b, h, length, d = x.shape\n    return x.reshape(b, length, h * d)",
                  names=r"transpose back"),
            wrong("no check: reshape raises a RuntimeError", "def split_heads(x, n_heads):\n    b, length, width = x.shape\n"
                  "    return x.reshape(b, length, n_heads, width // n_heads).transpose(1, 2)\n\n\n"
                  "def merge_heads(x):\n    b, h, length, d = x.shape\n    return x.transpose(1, 2).reshape(b, length, h * d)",
                  names=r"expected ValueError"),
            wrong("a ValueError that does not say divisible", "def split_heads(x, n_heads):\n    b, length, width = x.shape\n"
                  "    if width % n_heads:\n        raise ValueError(f'bad number of heads: {n_heads}')\n"
                  "    return x.reshape(b, length, n_heads, width // n_heads).transpose(1, 2)\n\n\n"
                  "def merge_heads(x):\n    b, h, length, d = x.shape\n    return x.transpose(1, 2).reshape(b, length, h * d)",
                  names=r"does not mention 'divisible'"),
            subtle("merge_heads assumes the width of the input", "def split_heads(x, n_heads):\n    b, length, width = x.shape\n"
                   "    if width % n_heads:\n        raise ValueError('width not divisible by n_heads')\n"
                   "    return x.reshape(b, length, n_heads, width // n_heads).transpose(1, 2)\n\n\n"
                   "def merge_heads(x):\n    b, h, length, d = x.shape\n    return x.transpose(1, 2).reshape(b, length, 4 * d)"),
        ],
        right=[
            right("unflatten and permute, flatten back", "def split_heads(x, n_heads):\n    if x.shape[-1] % n_heads != 0:\n"
                  "        raise ValueError(f'{x.shape[-1]} is not divisible by {n_heads}')\n"
                  "    return x.unflatten(-1, (n_heads, -1)).permute(0, 2, 1, 3)\n\n\n"
                  "def merge_heads(x):\n    return x.permute(0, 2, 1, 3).flatten(2)"),
            right("chunk and stack, unbind and cat", "def split_heads(x, n_heads):\n    if x.shape[2] % n_heads:\n"
                  "        raise ValueError('the width must be divisible by the number of heads')\n"
                  "    return torch.stack(x.chunk(n_heads, dim=-1), dim=1)\n\n\n"
                  "def merge_heads(x):\n    return torch.cat(x.unbind(dim=1), dim=-1)"),
        ]),
    "nb06_cross_attention_block": Exercise(
        wrong=[
            wrong("post-norm: the sum normalised", _block(
                "        x = self.norm_attn(x + self.attn(x, context, key_padding_mask))\n"
                "        return self.norm_ffn(x + self.ffn(x))\n"), names=r"pre-norm"),
            wrong("the residual adds the normalised x", _block(
                "        h = self.norm_attn(x)\n        x = h + self.attn(h, context, key_padding_mask)\n"
                "        h = self.norm_ffn(x)\n        return h + self.ffn(h)\n"), names=r"un-normalised"),
            wrong("no residuals", _block(
                "        x = self.attn(self.norm_attn(x), context, key_padding_mask)\n"
                "        return self.ffn(self.norm_ffn(x))\n"), names=r"x \+ attn"),
            wrong("the padding mask not passed to the attention", _block(
                "        x = x + self.attn(self.norm_attn(x), context)\n        return x + self.ffn(self.norm_ffn(x))\n"),
                names=r"key_padding_mask"),
            wrong("ReLU in the feed-forward network", _block(
                "        x = x + self.attn(self.norm_attn(x), context, key_padding_mask)\n"
                "        return x + self.ffn(self.norm_ffn(x))\n",
                _BLOCK_INIT.replace("nn.GELU()", "nn.ReLU()")), names=r"GELU"),
            wrong("sub-modules named differently", _block(
                "        x = x + self.cross(self.ln1(x), context, key_padding_mask)\n"
                "        return x + self.mlp(self.ln2(x))\n",
                _BLOCK_INIT.replace("norm_attn", "ln1").replace("norm_ffn", "ln2").replace("self.attn", "self.cross")
                .replace("self.ffn", "self.mlp")), names=r"names"),
            subtle("the FFN reads the block's input, in parallel with the attention", _block(
                "        return x + self.attn(self.norm_attn(x), context, key_padding_mask) + self.ffn(self.norm_ffn(x))\n")),
            subtle("the residuals added in place to the caller's x", _block(
                "        x += self.attn(self.norm_attn(x), context, key_padding_mask)\n"
                "        x += self.ffn(self.norm_ffn(x))\n        return x\n")),
            subtle("one LayerNorm shared by both sub-layers", _block(
                "        x = x + self.attn(self.norm_attn(x), context, key_padding_mask)\n"
                "        return x + self.ffn(self.norm_attn(x))\n")),
        ],
        right=[
            right("functional layer norm and the FFN's layers by hand", _block(
                "        h = F.layer_norm(x, (x.shape[-1],), self.norm_attn.weight, self.norm_attn.bias, self.norm_attn.eps)\n"
                "        x = torch.add(x, self.attn(h, context, key_padding_mask=key_padding_mask))\n"
                "        h = self.norm_ffn(x)\n        return x + self.ffn[2](F.gelu(self.ffn[0](h)))\n")),
            right("sub-modules built in another order, in-place on a copy", _block(
                "        out = x.clone()\n        out += self.attn(self.norm_attn(x), context, key_padding_mask)\n"
                "        return out.add_(self.ffn(self.norm_ffn(out.clone())))\n",
                "class CrossAttentionBlock(nn.Module):\n    def __init__(self, d_model, d_context, n_heads):\n"
                "        super().__init__()\n        hidden = 4 * d_model\n"
                "        self.ffn = nn.Sequential(*[nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model)])\n"
                "        self.norm_ffn = nn.LayerNorm(d_model)\n"
                "        self.attn = fusion.MultiHeadAttention(d_query=d_model, d_context=d_context, d_model=d_model, "
                "n_heads=n_heads)\n        self.norm_attn = nn.LayerNorm(d_model)\n\n")),
        ]),
}
