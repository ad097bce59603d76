"""Notebook 08 · decoding to text: wrong and right answers to its five exercises."""

from tests.mutants.base import Exercise, right, wrong

MUTANTS = {
    "nb08_causal_mask": Exercise(
        wrong=[
            wrong("upper triangle: queries see the future", "def causal_mask(T):\n    return torch.ones(T, T, dtype=torch.bool).triu()",
                  names=r"lower triangle"),
            wrong("float mask instead of bool", "def causal_mask(T):\n    return torch.ones(T, T).tril()", names=r"boolean"),
            wrong("the other convention (True = masked out)",
                  "def causal_mask(T):\n    return ~torch.ones(T, T, dtype=torch.bool).tril()", names=r"lower triangle"),
            wrong("off by one: a token does not see itself",
                  "def causal_mask(T):\n    return torch.ones(T, T, dtype=torch.bool).tril(-1)", names=r"itself included"),
        ],
        right=[
            right("comparison of positions", "def causal_mask(T):\n    i = torch.arange(T)\n    return i[:, None] >= i[None, :]"),
            right("tril of floats, then bool", "def causal_mask(T):\n    return torch.tril(torch.ones(T, T)).bool()"),
        ]),
    "nb08_next_token_labels": Exercise(
        wrong=[
            wrong("no shift: each position labelled with its own token",
                  "def next_token_labels(input_ids, attention_mask, n_prompt):\n"
                  "    labels = input_ids.clone()\n    labels[attention_mask == 0] = -100\n    labels[:, :n_prompt] = -100\n"
                  "    return labels", names=r"shift"),
            wrong("padding not masked",
                  "def next_token_labels(input_ids, attention_mask, n_prompt):\n"
                  "    labels = torch.full_like(input_ids, -100)\n    labels[:, :-1] = input_ids[:, 1:]\n"
                  "    labels[:, :max(n_prompt - 1, 0)] = -100\n    return labels", names=r"padding"),
            wrong("input_ids modified in place",
                  "def next_token_labels(input_ids, attention_mask, n_prompt):\n"
                  "    input_ids[:, :-1] = input_ids[:, 1:].clone()\n    input_ids[:, -1] = -100\n"
                  "    input_ids[attention_mask.roll(-1, dims=1) == 0] = -100\n    input_ids[:, -1] = -100\n"
                  "    input_ids[:, :max(n_prompt - 1, 0)] = -100\n    return input_ids", names=r"copy"),
            wrong("prompt off by one: the first answer token masked too",
                  "def next_token_labels(input_ids, attention_mask, n_prompt):\n"
                  "    labels = torch.full_like(input_ids, -100)\n    target = input_ids[:, 1:].clone()\n"
                  "    target[attention_mask[:, 1:] == 0] = -100\n    target[:, :n_prompt] = -100\n"
                  "    labels[:, :-1] = target\n    return labels", names=r"prompt"),
        ],
        right=[
            right("roll and where", "def next_token_labels(input_ids, attention_mask, n_prompt):\n"
                  "    target = input_ids.roll(-1, dims=1)\n    real = attention_mask.roll(-1, dims=1).bool()\n"
                  "    position = torch.arange(input_ids.shape[1])\n"
                  "    keep = real & (position < input_ids.shape[1] - 1) & (position >= n_prompt - 1)\n"
                  "    return torch.where(keep, target, torch.full_like(target, -100))"),
            right("make_labels, then shift", "def next_token_labels(input_ids, attention_mask, n_prompt):\n"
                  "    labels = torch.full_like(input_ids, -100)\n"
                  "    labels[:, :-1] = make_labels(input_ids, attention_mask, n_prompt=n_prompt)[:, 1:]\n    return labels"),
        ]),
    "nb08_greedy": Exercise(
        wrong=[
            wrong("step called with the last token only",
                  "def greedy(step, prompt_ids, max_new_tokens, eos_id=None):\n    ids = prompt_ids\n"
                  "    done = torch.zeros(ids.shape[0], dtype=torch.bool)\n    for _ in range(max_new_tokens):\n"
                  "        next_id = step(ids[:, -1:]).argmax(dim=-1)\n        if eos_id is not None:\n"
                  "            next_id = torch.where(done, torch.full_like(next_id, eos_id), next_id)\n"
                  "            done = done | (next_id == eos_id)\n        ids = torch.cat([ids, next_id[:, None]], dim=1)\n"
                  "        if eos_id is not None and bool(done.all()):\n            break\n    return ids", names=r"all ids so far"),
            wrong("finished rows keep generating",
                  "def greedy(step, prompt_ids, max_new_tokens, eos_id=None):\n    ids = prompt_ids\n"
                  "    for _ in range(max_new_tokens):\n        next_id = step(ids).argmax(dim=-1)\n"
                  "        ids = torch.cat([ids, next_id[:, None]], dim=1)\n"
                  "        if eos_id is not None and bool((ids == eos_id).any(dim=1).all()):\n            break\n    return ids",
                  names=r"eos again"),
            wrong("stops when the first row is done",
                  "def greedy(step, prompt_ids, max_new_tokens, eos_id=None):\n    ids = prompt_ids\n"
                  "    for _ in range(max_new_tokens):\n        next_id = step(ids).argmax(dim=-1)\n"
                  "        ids = torch.cat([ids, next_id[:, None]], dim=1)\n"
                  "        if eos_id is not None and bool((next_id == eos_id).any()):\n            break\n    return ids",
                  names=r"EVERY row"),
            wrong("prompt dropped from the result",
                  "def greedy(step, prompt_ids, max_new_tokens, eos_id=None):\n    ids, new = prompt_ids, []\n"
                  "    for _ in range(max_new_tokens):\n        next_id = step(ids).argmax(dim=-1)\n"
                  "        ids = torch.cat([ids, next_id[:, None]], dim=1)\n    return ids[:, prompt_ids.shape[1]:]",
                  names=r"keep the prompt"),
        ],
        right=[
            right("a list of columns, concatenated once", "def greedy(step, prompt_ids, max_new_tokens, eos_id=None):\n"
                  "    columns, done = [prompt_ids], torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)\n"
                  "    for _ in range(max_new_tokens):\n        logits = step(torch.cat(columns, dim=1))\n"
                  "        next_id = logits.argmax(dim=-1)\n        if eos_id is not None:\n"
                  "            next_id = next_id.masked_fill(done, eos_id)\n            done |= next_id == eos_id\n"
                  "        columns.append(next_id.unsqueeze(1))\n        if eos_id is not None and done.all():\n            break\n"
                  "    return torch.cat(columns, dim=1)"),
            right("a while loop over a Python list of finished rows", "def greedy(step, prompt_ids, max_new_tokens, eos_id=None):\n"
                  "    ids, finished, n = prompt_ids.clone(), [False] * len(prompt_ids), 0\n"
                  "    while n < max_new_tokens and not (eos_id is not None and all(finished)):\n"
                  "        chosen = step(ids).argmax(-1).tolist()\n"
                  "        chosen = [eos_id if done else c for c, done in zip(chosen, finished)]\n"
                  "        finished = [done or c == eos_id for c, done in zip(chosen, finished)]\n"
                  "        ids = torch.cat([ids, torch.tensor(chosen, device=ids.device).view(-1, 1)], 1)\n        n += 1\n"
                  "    return ids"),
        ]),
    "nb08_top_p_filter": Exercise(
        wrong=[
            wrong("results left in sorted order", "def top_p_filter(logits, top_p):\n"
                  "    sorted_logits, order = logits.sort(dim=-1, descending=True)\n    probs = sorted_logits.softmax(dim=-1)\n"
                  "    before = probs.cumsum(dim=-1) - probs\n    return sorted_logits.masked_fill(before >= top_p, float('-inf'))",
                  names=r"original token order"),
            wrong("off by one: the token that crosses top_p is dropped", "def top_p_filter(logits, top_p):\n"
                  "    sorted_logits, order = logits.sort(dim=-1, descending=True)\n"
                  "    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)\n    drop = cum >= top_p\n"
                  "    drop[..., 0] = False\n    sorted_logits = sorted_logits.masked_fill(drop, float('-inf'))\n"
                  "    return torch.full_like(logits, float('-inf')).scatter(-1, order, sorted_logits)",
                  names=r"second token is needed"),
            wrong("renormalised: kept logits replaced by log-probabilities", "def top_p_filter(logits, top_p):\n"
                  "    sorted_logits, order = logits.sort(dim=-1, descending=True)\n    probs = sorted_logits.softmax(dim=-1)\n"
                  "    before = probs.cumsum(dim=-1) - probs\n    kept = probs.masked_fill(before >= top_p, 0.0)\n"
                  "    kept = (kept / kept.sum(-1, keepdim=True)).log()\n"
                  "    return torch.full_like(logits, float('-inf')).scatter(-1, order, kept)", names=r"renormalise"),
        ],
        right=[
            right("in place, as the prose says", "def top_p_filter(logits, top_p):\n"
                  "    probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True)\n"
                  "    drop_sorted = probs.cumsum(dim=-1) - probs >= top_p\n"
                  "    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)\n"
                  "    logits[drop] = float('-inf')\n    return logits"),
            right("row by row with Python", "def top_p_filter(logits, top_p):\n    out = torch.full_like(logits, float('-inf'))\n"
                  "    for r in range(logits.shape[0]):\n        probs = logits[r].softmax(-1)\n        total = 0.0\n"
                  "        for i in probs.argsort(descending=True).tolist():\n            out[r, i] = logits[r, i]\n"
                  "            total += float(probs[i])\n            if total >= top_p - 1e-7:\n                break\n    return out"),
        ]),
    "nb08_cached_attention": Exercise(
        wrong=[
            wrong("new key put BEFORE the past ones", "def cached_attention(q, k, v, past_k, past_v):\n"
                  "    if past_k is not None:\n        k = torch.cat([k, past_k], dim=2)\n        v = torch.cat([v, past_v], dim=2)\n"
                  "    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)\n    return weights @ v, k, v",
                  names=r"AFTER the past"),
            wrong("scores not scaled by 1/sqrt(d)", "def cached_attention(q, k, v, past_k, past_v):\n"
                  "    if past_k is not None:\n        k = torch.cat([past_k, k], dim=2)\n        v = torch.cat([past_v, v], dim=2)\n"
                  "    weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)\n    return weights @ v, k, v", names=r"sqrt\(d\)"),
            wrong("concatenated along the features, not time", "def cached_attention(q, k, v, past_k, past_v):\n"
                  "    if past_k is not None:\n        k = torch.cat([past_k, k], dim=-1)\n        v = torch.cat([past_v, v], dim=-1)\n"
                  "        return v[..., :q.shape[-1]], k, v\n"
                  "    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)\n    return weights @ v, k, v",
                  names=r"dim=2|time"),
            wrong("cache not returned: only the new token kept", "def cached_attention(q, k, v, past_k, past_v):\n"
                  "    all_k = k if past_k is None else torch.cat([past_k, k], dim=2)\n"
                  "    all_v = v if past_v is None else torch.cat([past_v, v], dim=2)\n"
                  "    weights = (q @ all_k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)\n    return weights @ all_v, k, v",
                  names=r"AFTER the past|time"),
        ],
        right=[
            right("torch's scaled_dot_product_attention", "def cached_attention(q, k, v, past_k, past_v):\n"
                  "    if past_k is not None:\n        k, v = torch.cat((past_k, k), 2), torch.cat((past_v, v), 2)\n"
                  "    return F.scaled_dot_product_attention(q, k, v), k, v"),
            right("einsum, scaled before the product", "def cached_attention(q, k, v, past_k, past_v):\n"
                  "    all_k = k if past_k is None else torch.cat([past_k, k], dim=-2)\n"
                  "    all_v = v if past_v is None else torch.cat([past_v, v], dim=-2)\n"
                  "    scores = torch.einsum('bhqd,bhkd->bhqk', q / q.shape[-1] ** 0.5, all_k)\n"
                  "    return torch.einsum('bhqk,bhkd->bhqd', scores.softmax(-1), all_v), all_k, all_v"),
        ]),
}
