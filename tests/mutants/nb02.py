"""Notebook 02 · text encoding: wrong and right answers to its four exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb02_make_attention_mask": Exercise(
        wrong=[
            wrong("bool, not long", "def make_attention_mask(input_ids, pad_token_id):\n"
                  "    return input_ids != pad_token_id", names=r"\.long\(\)"),
            wrong("float, not long", "def make_attention_mask(input_ids, pad_token_id):\n"
                  "    return (input_ids != pad_token_id).float()", names=r"integers"),
            wrong("the pad id assumed to be 0", "def make_attention_mask(input_ids, pad_token_id):\n"
                  "    return (input_ids != 0).long()", names=r"pad_token_id"),
            wrong("the other convention: 1 = padding", "def make_attention_mask(input_ids, pad_token_id):\n"
                  "    return (input_ids == pad_token_id).long()", names=r"NOT the pad id"),
            subtle("positions, not values: assumes right padding", "def make_attention_mask(input_ids, pad_token_id):\n"
                   "    n_real = (input_ids != pad_token_id).sum(dim=1, keepdim=True)\n"
                   "    return (torch.arange(input_ids.shape[1])[None, :] < n_real).long()"),
            subtle("int32, not int64", "def make_attention_mask(input_ids, pad_token_id):\n"
                   "    return (input_ids != pad_token_id).int()"),
        ],
        right=[
            right("torch.where", "def make_attention_mask(input_ids, pad_token_id):\n"
                  "    return torch.where(input_ids == pad_token_id, 0, 1)"),
            right("one minus the pad positions", "def make_attention_mask(input_ids, pad_token_id):\n"
                  "    return 1 - input_ids.eq(pad_token_id).to(torch.int64)"),
            right("ones, padding filled with 0", "def make_attention_mask(input_ids, pad_token_id):\n"
                  "    mask = torch.ones_like(input_ids, dtype=torch.long)\n"
                  "    mask[input_ids == pad_token_id] = 0\n    return mask"),
        ]),
    "nb02_additive_attention_bias": Exercise(
        wrong=[
            wrong("-inf for padding", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    keep = attention_mask.bool()[:, None, None, :]\n"
                  "    return torch.zeros(keep.shape, dtype=dtype).masked_fill(~keep, float('-inf'))",
                  names=r"not -inf"),
            wrong("-1e9 for padding", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    keep = attention_mask.bool()[:, None, None, :]\n"
                  "    return torch.zeros(keep.shape, dtype=dtype).masked_fill(~keep, -1e9)", names=r"not -1e9"),
            wrong("the other convention: the real tokens get the bias", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    keep = attention_mask.bool()[:, None, None, :]\n"
                  "    return torch.zeros(keep.shape, dtype=dtype).masked_fill(keep, torch.finfo(dtype).min)",
                  names=r"0 for real tokens"),
            wrong("broadcast over keys, not queries: (B, 1, L, 1)", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    keep = attention_mask.bool()[:, None, :, None]\n"
                  "    return torch.zeros(keep.shape, dtype=dtype).masked_fill(~keep, torch.finfo(dtype).min)",
                  names=r"\(B, 1, 1, L\)"),
            wrong("the dtype ignored: always float32", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    keep = attention_mask.bool()[:, None, None, :]\n"
                  "    return torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)",
                  names=r"float16"),
            subtle("(1 - mask) * min: breaks on a bool mask", "def additive_attention_bias(attention_mask, dtype):\n"
                   "    return (1 - attention_mask[:, None, None, :]).to(dtype) * torch.finfo(dtype).min"),
        ],
        right=[
            right("torch.where on the bool mask", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    lowest = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=attention_mask.device)\n"
                  "    zero = torch.zeros((), dtype=dtype, device=attention_mask.device)\n"
                  "    return torch.where(attention_mask.bool(), zero, lowest).unsqueeze(1).unsqueeze(2)"),
            right("(1 - mask) in the target dtype, times min", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    inverted = 1.0 - attention_mask.to(dtype)\n"
                  "    return (inverted * torch.finfo(dtype).min).view(attention_mask.shape[0], 1, 1, -1)"),
            right("full of min, real tokens set to 0 in place", "def additive_attention_bias(attention_mask, dtype):\n"
                  "    b, l = attention_mask.shape\n"
                  "    bias = torch.full((b, 1, 1, l), torch.finfo(dtype).min, dtype=dtype, device=attention_mask.device)\n"
                  "    bias[attention_mask.bool()[:, None, None, :]] = 0\n    return bias"),
        ]),
    "nb02_mean_pool": Exercise(
        wrong=[
            wrong("plain mean: the padding averaged too", "def mean_pool(hidden, attention_mask):\n"
                  "    return hidden.mean(dim=1)", names=r"averaged the padding too"),
            wrong("divided by L, not by the real tokens", "def mean_pool(hidden, attention_mask):\n"
                  "    m = attention_mask.to(hidden.dtype).unsqueeze(-1)\n"
                  "    return (hidden * m).sum(dim=1) / hidden.shape[1]", names=r"divided by L"),
            wrong("the wrong axis: over features", "def mean_pool(hidden, attention_mask):\n"
                  "    m = attention_mask.to(hidden.dtype).unsqueeze(-1)\n"
                  "    return (hidden * m).mean(dim=-1)", names=r"dim=1"),
            subtle("count without keepdim: broadcast over features", "def mean_pool(hidden, attention_mask):\n"
                   "    m = attention_mask.to(hidden.dtype)\n"
                   "    return (hidden * m.unsqueeze(-1)).sum(dim=1) / m.sum(dim=1)"),
            subtle("padding zeroed in place in the caller's states", "def mean_pool(hidden, attention_mask):\n"
                   "    hidden[~attention_mask.bool()] = 0\n"
                   "    return hidden.sum(dim=1) / attention_mask.sum(dim=1, keepdim=True).to(hidden.dtype)"),
        ],
        right=[
            right("einsum", "def mean_pool(hidden, attention_mask):\n    m = attention_mask.to(hidden.dtype)\n"
                  "    return torch.einsum('bld,bl->bd', hidden, m) / m.sum(dim=1, keepdim=True)"),
            right("row by row, real tokens selected", "def mean_pool(hidden, attention_mask):\n"
                  "    return torch.stack([h[m.bool()].mean(dim=0) for h, m in zip(hidden, attention_mask)])"),
            right("masked_fill, then a batched product for nothing", "def mean_pool(hidden, attention_mask):\n"
                  "    real = attention_mask.bool()\n"
                  "    total = hidden.masked_fill(~real[..., None], 0.0).sum(dim=1)\n"
                  "    return total / real.sum(dim=1, keepdim=True)"),
        ]),
    "nb02_cosine_similarity_matrix": Exercise(
        wrong=[
            wrong("a raw dot product", "def cosine_similarity_matrix(a, b):\n    return a @ b.T", names=r"normalise"),
            wrong("normalised along the wrong axis", "def cosine_similarity_matrix(a, b):\n"
                  "    return F.normalize(a, dim=0) @ F.normalize(b, dim=0).T", names=r"dim=-1"),
            wrong("only a normalised", "def cosine_similarity_matrix(a, b):\n"
                  "    return F.normalize(a, dim=-1) @ b.T", names=r"raw dot product"),
            subtle("one global norm for all vectors", "def cosine_similarity_matrix(a, b):\n"
                   "    return a @ b.T / (a.norm() * b.norm())"),
            subtle("pairwise F.cosine_similarity of rows i with rows i", "def cosine_similarity_matrix(a, b):\n"
                   "    n = min(len(a), len(b))\n"
                   "    return F.cosine_similarity(a[:n], b[:n], dim=-1)[:, None].expand(len(a), len(b))"),
        ],
        right=[
            right("F.cosine_similarity with broadcasting", "def cosine_similarity_matrix(a, b):\n"
                  "    return F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)"),
            right("dot products over an outer product of norms", "def cosine_similarity_matrix(a, b):\n"
                  "    return (a @ b.T) / torch.outer(a.norm(dim=1), b.norm(dim=1))"),
            right("einsum of unit rows", "def cosine_similarity_matrix(a, b):\n"
                  "    ua, ub = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)\n"
                  "    return torch.einsum('nd,md->nm', ua, ub)"),
        ]),
}
