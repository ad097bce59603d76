"""Notebook 14 · a vision LLM (LLaVA): wrong and right answers to its five exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb14_expand": Exercise(
        wrong=[
            wrong("only the first placeholder expanded",
                  "def expand_placeholders(ids, image_id, n):\n    if image_id not in ids:\n        return list(ids)\n"
                  "    i = ids.index(image_id)\n    return ids[:i] + [image_id] * n + ids[i + 1:]", names=r"every occurrence"),
            wrong("ids modified in place",
                  "def expand_placeholders(ids, image_id, n):\n    i = 0\n    while i < len(ids):\n"
                  "        if ids[i] == image_id:\n            ids[i:i + 1] = [image_id] * n\n            i += n\n"
                  "        else:\n            i += 1\n    return ids", names=r"original ids"),
            wrong("one copy too many: the placeholder kept beside n copies",
                  "def expand_placeholders(ids, image_id, n):\n    out = []\n    for t in ids:\n"
                  "        out += [t] * (n + 1) if t == image_id else [t]\n    return out", names=r"n copies"),
            wrong("the image positions appended at the end",
                  "def expand_placeholders(ids, image_id, n):\n    text = [t for t in ids if t != image_id]\n"
                  "    return text + [image_id] * (n * (len(ids) - len(text)))", names=r"in its place"),
        ],
        right=[
            right("a nested comprehension", "def expand_placeholders(ids, image_id, n):\n"
                  "    return [t for token in ids for t in ([token] * n if token == image_id else [token])]"),
            right("itertools.chain", "def expand_placeholders(ids, image_id, n):\n    import itertools\n"
                  "    return list(itertools.chain.from_iterable(itertools.repeat(t, n if t == image_id else 1) for t in ids))"),
        ]),
    "nb14_embeds": Exercise(
        wrong=[
            wrong("the placeholder id looked up in the embedding matrix",
                  "def inputs_embeds(input_ids, image_id, image_states, embedding):\n    words = embedding(input_ids)\n"
                  "    return torch.where((input_ids == image_id)[..., None], words, words)", names=r"index out of range"),
            wrong("the image states written in detached",
                  "def inputs_embeds(input_ids, image_id, image_states, embedding):\n    is_image = input_ids == image_id\n"
                  "    words = embedding(input_ids.masked_fill(is_image, 0))\n"
                  "    words[is_image] = image_states.reshape(-1, words.shape[-1]).detach()\n    return words", names=r"gradient"),
            wrong("the image tokens in reverse order",
                  "def inputs_embeds(input_ids, image_id, image_states, embedding):\n    is_image = input_ids == image_id\n"
                  "    words = embedding(input_ids.masked_fill(is_image, 0))\n"
                  "    return words.masked_scatter(is_image[..., None], image_states.flip(1))", names=r"in order"),
            wrong("the image positions left as word embeddings of id 0",
                  "def inputs_embeds(input_ids, image_id, image_states, embedding):\n"
                  "    return embedding(input_ids.masked_fill(input_ids == image_id, 0))", names=r"image positions"),
            subtle("every row gets the first row's image",
                   "def inputs_embeds(input_ids, image_id, image_states, embedding):\n    is_image = input_ids == image_id\n"
                   "    words = embedding(input_ids.masked_fill(is_image, 0))\n"
                   "    first = image_states[:1].expand_as(image_states)\n"
                   "    return words.masked_scatter(is_image[..., None], first.contiguous())"),
        ],
        right=[
            right("torch.where with a gather by running count",
                  "def inputs_embeds(input_ids, image_id, image_states, embedding):\n    is_image = input_ids == image_id\n"
                  "    words = embedding(torch.where(is_image, torch.zeros_like(input_ids), input_ids))\n"
                  "    k = (is_image.long().cumsum(1) - 1).clamp(min=0)\n"
                  "    picked = torch.gather(image_states, 1, k[..., None].expand(-1, -1, image_states.shape[-1]))\n"
                  "    return torch.where(is_image[..., None], picked.to(words.dtype), words)"),
            right("a loop over rows on a clone",
                  "def inputs_embeds(input_ids, image_id, image_states, embedding):\n    is_image = input_ids == image_id\n"
                  "    out = embedding(input_ids.masked_fill(is_image, 0)).clone()\n"
                  "    for b in range(input_ids.shape[0]):\n        out[b, is_image[b]] = image_states[b]\n    return out"),
        ]),
    "nb14_labels": Exercise(
        wrong=[
            wrong("the header labelled too",
                  "def assistant_labels(input_ids, header_ids, end_id):\n    labels, inside, h = [-100] * len(input_ids), False, len(header_ids)\n"
                  "    for i, t in enumerate(input_ids):\n        if input_ids[i:i + h] == list(header_ids):\n            inside = True\n"
                  "        if inside:\n            labels[i] = t\n            inside = t != end_id\n    return labels",
                  names=r"header"),
            wrong("the end mark not labelled",
                  "def assistant_labels(input_ids, header_ids, end_id):\n    labels, inside, h, i = [-100] * len(input_ids), False, len(header_ids), 0\n"
                  "    while i < len(input_ids):\n        if not inside and input_ids[i:i + h] == list(header_ids):\n"
                  "            inside, i = True, i + h\n            continue\n        if inside:\n"
                  "            inside = input_ids[i] != end_id\n            labels[i] = input_ids[i] if inside else -100\n"
                  "        i += 1\n    return labels", names=r"end mark"),
            wrong("only the last assistant turn",
                  "def assistant_labels(input_ids, header_ids, end_id):\n    h, start = len(header_ids), None\n"
                  "    for i in range(len(input_ids)):\n        if input_ids[i:i + h] == list(header_ids):\n            start = i + h\n"
                  "    labels = [-100] * len(input_ids)\n    if start is None:\n        return labels\n"
                  "    for i in range(start, len(input_ids)):\n        labels[i] = input_ids[i]\n"
                  "        if input_ids[i] == end_id:\n            break\n    return labels", names=r"every assistant turn"),
            wrong("no stop after the end mark",
                  "def assistant_labels(input_ids, header_ids, end_id):\n    h = len(header_ids)\n"
                  "    starts = [i + h for i in range(len(input_ids)) if input_ids[i:i + h] == list(header_ids)]\n"
                  "    labels = [-100] * len(input_ids)\n    for i in range(starts[0] if starts else len(input_ids), len(input_ids)):\n"
                  "        labels[i] = input_ids[i]\n    for s in starts:\n        for j in range(s - h, s):\n            labels[j] = -100\n"
                  "    return labels", names=r"stop after its end mark"),
            subtle("the header's first id taken for the whole header",
                   "def assistant_labels(input_ids, header_ids, end_id):\n    labels, inside, i = [-100] * len(input_ids), False, 0\n"
                   "    while i < len(input_ids):\n        if not inside and input_ids[i] == header_ids[0]:\n"
                   "            inside, i = True, i + len(header_ids)\n            continue\n        if inside:\n"
                   "            labels[i] = input_ids[i]\n            inside = input_ids[i] != end_id\n        i += 1\n    return labels"),
        ],
        right=[
            right("find each header, then the next end mark",
                  "def assistant_labels(input_ids, header_ids, end_id):\n    ids, h = list(input_ids), len(header_ids)\n"
                  "    labels = [-100] * len(ids)\n    i = 0\n    while i + h <= len(ids):\n"
                  "        if ids[i:i + h] == list(header_ids):\n            j = i + h\n"
                  "            while j < len(ids):\n                labels[j] = ids[j]\n                j += 1\n"
                  "                if ids[j - 1] == end_id:\n                    break\n            i = j\n        else:\n"
                  "            i += 1\n    return labels"),
            right("a tensor mask, back to a list",
                  "def assistant_labels(input_ids, header_ids, end_id):\n    ids, h = torch.tensor(input_ids, dtype=torch.long), len(header_ids)\n"
                  "    keep = torch.zeros(len(input_ids), dtype=torch.bool)\n    inside, skip = False, 0\n"
                  "    for i in range(len(input_ids)):\n        if skip:\n            skip -= 1\n            continue\n"
                  "        if not inside and input_ids[i:i + h] == list(header_ids):\n            inside, skip = True, h - 1\n            continue\n"
                  "        if inside:\n            keep[i] = True\n            inside = input_ids[i] != end_id\n"
                  "    return torch.where(keep, ids, torch.full_like(ids, -100)).tolist()"),
        ]),
    "nb14_shuffle": Exercise(
        wrong=[
            wrong("a plain reshape: f² consecutive patches of one row",
                  "def pixel_shuffle(x, factor):\n    b, n, d = x.shape\n    return x.reshape(b, n // factor ** 2, d * factor ** 2)",
                  names=r"block of neighbours"),
            wrong("each block read column by column",
                  "def pixel_shuffle(x, factor):\n    b, n, d = x.shape\n    s = int(round(n ** 0.5))\n"
                  "    x = x.reshape(b, s // factor, factor, s // factor, factor, d).permute(0, 1, 3, 4, 2, 5)\n"
                  "    return x.reshape(b, n // factor ** 2, factor * factor * d)", names=r"block of neighbours"),
            wrong("the blocks in column-major order",
                  "def pixel_shuffle(x, factor):\n    b, n, d = x.shape\n    s = int(round(n ** 0.5))\n"
                  "    x = x.reshape(b, s // factor, factor, s // factor, factor, d).permute(0, 3, 1, 2, 4, 5)\n"
                  "    return x.reshape(b, n // factor ** 2, factor * factor * d)", names=r"left to right"),
            subtle("channel-first within a block (pixel_unshuffle's order, not reordered)",
                   "def pixel_shuffle(x, factor):\n    b, n, d = x.shape\n    s = int(round(n ** 0.5))\n"
                   "    img = x.transpose(1, 2).reshape(b, d, s, s)\n"
                   "    return F.pixel_unshuffle(img, factor).flatten(2).transpose(1, 2)"),
        ],
        right=[
            right("pixel_unshuffle, then position-major",
                  "def pixel_shuffle(x, factor):\n    b, n, d = x.shape\n    s = int(round(n ** 0.5))\n"
                  "    y = F.pixel_unshuffle(x.transpose(1, 2).reshape(b, d, s, s), factor)\n"
                  "    return y.reshape(b, d, factor * factor, -1).permute(0, 3, 2, 1).reshape(b, -1, factor * factor * d)"),
            right("unfold over the grid",
                  "def pixel_shuffle(x, factor):\n    b, n, d = x.shape\n    s = int(round(n ** 0.5))\n"
                  "    g = x.reshape(b, s, s, d).unfold(1, factor, factor).unfold(2, factor, factor)\n"
                  "    return g.permute(0, 1, 2, 4, 5, 3).reshape(b, -1, factor * factor * d)"),
        ]),
    "nb14_stage": Exercise(
        wrong=[
            wrong("LoRA trained in stage 1 too",
                  "def set_stage(model, stage):\n    for name, p in model.named_parameters():\n"
                  "        p.requires_grad_(name.split('.')[0] in ('image_projector', 'audio_projector') or 'lora_' in name)\n"
                  "    return sum(p.numel() for p in model.parameters() if p.requires_grad)", names=r"stage 1 trains parameters of the LLM"),
            wrong("the whole LLM unfrozen in stage 2",
                  "def set_stage(model, stage):\n    for name, p in model.named_parameters():\n"
                  "        p.requires_grad_(name.split('.')[0] in ('image_projector', 'audio_projector') or stage == 2)\n"
                  "    return sum(p.numel() for p in model.parameters() if p.requires_grad)", names=r"own weights"),
            wrong("the count of tensors, not of numbers",
                  "def set_stage(model, stage):\n    for name, p in model.named_parameters():\n"
                  "        p.requires_grad_(name.split('.')[0] in ('image_projector', 'audio_projector') or (stage == 2 and 'lora_' in name))\n"
                  "    return sum(1 for p in model.parameters() if p.requires_grad)", names=r"extra parameters"),
            wrong("the count as a tensor",
                  "def set_stage(model, stage):\n    for name, p in model.named_parameters():\n"
                  "        p.requires_grad_(name.split('.')[0] in ('image_projector', 'audio_projector') or (stage == 2 and 'lora_' in name))\n"
                  "    return torch.tensor([p.numel() for p in model.parameters() if p.requires_grad]).sum()", names=r"int"),
            wrong("the vision tower trained again (stage 0 trained it; it stays frozen)",
                  "def set_stage(model, stage):\n    for name, p in model.named_parameters():\n"
                  "        p.requires_grad_(name.split('.')[0] in ('vision', 'image_projector', 'audio_projector') or (stage == 2 and 'lora_' in name))\n"
                  "    return sum(p.numel() for p in model.parameters() if p.requires_grad)", names=r"vision tower"),
            subtle("the audio projector forgotten",
                   "def set_stage(model, stage):\n    for name, p in model.named_parameters():\n"
                   "        p.requires_grad_(name.split('.')[0] in ('image_projector',) or (stage == 2 and 'lora_' in name))\n"
                   "    return sum(p.numel() for p in model.parameters() if p.requires_grad)"),
            subtle("only sets the parts it trains (LoRA left on after stage 2)",
                   "def set_stage(model, stage):\n    for part in (model.image_projector, model.audio_projector):\n"
                   "        part.requires_grad_(True)\n    for name, p in model.llm.named_parameters():\n"
                   "        if stage == 2 and 'lora_' in name:\n            p.requires_grad_(True)\n        elif 'lora_' not in name:\n"
                   "            p.requires_grad_(False)\n    return sum(p.numel() for p in model.parameters() if p.requires_grad)"),
        ],
        right=[
            right("module by module", "def set_stage(model, stage):\n    model.requires_grad_(False)\n"
                  "    for part in (model.image_projector, model.audio_projector):\n        part.requires_grad_(True)\n"
                  "    if stage == 2:\n        for name, p in model.llm.named_parameters():\n            if 'lora_' in name:\n"
                  "                p.requires_grad_(True)\n    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))"),
            right("a set of trainable ids", "def set_stage(model, stage):\n"
                  "    keep = {id(p) for m in (model.image_projector, model.audio_projector) for p in m.parameters()}\n"
                  "    if stage == 2:\n        keep |= {id(p) for n, p in model.named_parameters() if 'lora_' in n}\n    total = 0\n"
                  "    for p in model.parameters():\n        p.requires_grad = id(p) in keep\n        total += p.numel() if id(p) in keep else 0\n"
                  "    return total"),
        ]),
}
