"""Notebook 01 · what is a multimodal LLM: wrong and right answers to its five exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb01_count_text_tokens": Exercise(
        wrong=[
            wrong("the padded length counted", "def count_text_tokens(tokenizer, texts):\n"
                  "    encoded = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    return [encoded['input_ids'].shape[1]] * len(texts)", names=r"padding"),
            wrong("special tokens left out", "def count_text_tokens(tokenizer, texts):\n"
                  "    encoded = tokenizer(list(texts), padding=True, add_special_tokens=False, return_tensors='pt')\n"
                  "    return [int(n) for n in encoded['attention_mask'].sum(dim=1)]", names=r"special tokens"),
            wrong("words counted, not word pieces", "def count_text_tokens(tokenizer, texts):\n"
                  "    return [len(t.split()) + 2 for t in texts]", names=r"word pieces"),
            wrong("a tensor returned, not a list of ints", "def count_text_tokens(tokenizer, texts):\n"
                  "    encoded = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    return encoded['attention_mask'].sum(dim=1)", names=r"tensor"),
            subtle("[SEP] forgotten: one token short", "def count_text_tokens(tokenizer, texts):\n"
                   "    encoded = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                   "    return [int(n) - 1 for n in encoded['attention_mask'].sum(dim=1)]"),
        ],
        right=[
            right("each text alone, its length", "def count_text_tokens(tokenizer, texts):\n"
                  "    return [len(tokenizer(t)['input_ids']) for t in texts]"),
            right("ids that are not the pad id", "def count_text_tokens(tokenizer, texts):\n"
                  "    ids = tokenizer(list(texts), padding=True, return_tensors='pt')['input_ids']\n"
                  "    return (ids != tokenizer.pad_token_id).sum(dim=1).tolist()"),
            right("word pieces plus two specials", "def count_text_tokens(tokenizer, texts):\n"
                  "    return [len(tokenizer.tokenize(t)) + 2 for t in texts]"),
        ]),
    "nb01_vit_token_count": Exercise(
        wrong=[
            wrong("[CLS] forgotten", "def vit_token_count(image_size, patch_size, cls_token=True):\n"
                  "    if image_size % patch_size:\n        raise ValueError('not a multiple of the patch size')\n"
                  "    return (image_size // patch_size) ** 2", names=r"class token"),
            wrong("no error for a partial patch", "def vit_token_count(image_size, patch_size, cls_token=True):\n"
                  "    return (image_size // patch_size) ** 2 + (1 if cls_token else 0)", names=r"raised nothing"),
            wrong("an error that does not say 'multiple'", "def vit_token_count(image_size, patch_size, cls_token=True):\n"
                  "    if image_size % patch_size:\n        raise ValueError(f'bad patch size {patch_size}')\n"
                  "    return (image_size // patch_size) ** 2 + (1 if cls_token else 0)", names=r"multiple"),
            wrong("patches per side, not squared", "def vit_token_count(image_size, patch_size, cls_token=True):\n"
                  "    if image_size % patch_size:\n        raise ValueError('not a multiple of the patch size')\n"
                  "    return image_size // patch_size * 2 + (1 if cls_token else 0)", names=r"14 × 14"),
            subtle("cls_token ignored", "def vit_token_count(image_size, patch_size, cls_token=True):\n"
                   "    if image_size % patch_size:\n        raise ValueError('not a multiple of the patch size')\n"
                   "    return (image_size // patch_size) ** 2 + 1"),
        ],
        right=[
            right("divmod", "def vit_token_count(image_size, patch_size, cls_token=True):\n"
                  "    side, rest = divmod(image_size, patch_size)\n"
                  "    if rest != 0:\n        raise ValueError(f'{image_size} px is no multiple of {patch_size} px patches')\n"
                  "    return side * side + int(cls_token)"),
            right("float division, checked", "def vit_token_count(image_size, patch_size, cls_token=True):\n"
                  "    side = image_size / patch_size\n    if side != int(side):\n"
                  "        raise ValueError('the image size must be a MULTIPLE of the patch size')\n"
                  "    return int(side) ** 2 + (cls_token is True)"),
        ]),
    "nb01_whisper_token_count": Exercise(
        wrong=[
            wrong("no stride-2 halving", "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                  "    frames = int(seconds * sample_rate) // hop_length\n    return frames, frames", names=r"halves"),
            wrong("floats, not ints", "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                  "    frames = seconds * sample_rate / hop_length\n    return frames, (frames - 1) // 2 + 1",
                  names=r"as Python ints"),
            wrong("the pair in the wrong order", "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                  "    frames = int(seconds * sample_rate) // hop_length\n    return (frames - 1) // 2 + 1, frames",
                  names=r"3000 frames"),
            subtle("states = frames // 2 (wrong for odd counts)",
                   "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                   "    frames = int(seconds * sample_rate) // hop_length\n    return frames, frames // 2"),
            subtle("hop and rate hard-coded", "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                   "    frames = int(seconds * 100)\n    return frames, (frames - 1) // 2 + 1"),
            subtle("seconds truncated to an int", "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                   "    frames = int(seconds) * sample_rate // hop_length\n    return frames, (frames - 1) // 2 + 1"),
        ],
        right=[
            right("ceil of half", "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                  "    import math\n    frames = round(seconds * sample_rate) // hop_length\n    return frames, math.ceil(frames / 2)"),
            right("mmcourse's frames_to_states", "def whisper_token_count(seconds, sample_rate=16000, hop_length=160):\n"
                  "    frames = int(seconds * sample_rate // hop_length)\n    return (frames, frames_to_states(frames))"),
        ]),
    "nb01_parameters_per_part": Exercise(
        wrong=[
            wrong("frozen parameters counted too", "def parameters_per_part(model):\n"
                  "    def count(module):\n        return sum(p.numel() for p in module.parameters())\n"
                  "    parts = {'text encoder': count(model.text_encoder), 'image encoder': count(model.image_encoder),\n"
                  "             'audio encoder': count(model.audio_encoder)}\n"
                  "    parts['fusion'] = count(model) - sum(parts.values())\n    return parts", names=r"requires_grad"),
            wrong("fusion without the key projection", "def parameters_per_part(model):\n"
                  "    def count(module):\n        return sum(p.numel() for p in module.parameters() if p.requires_grad)\n"
                  "    return {'text encoder': count(model.text_encoder), 'image encoder': count(model.image_encoder),\n"
                  "            'audio encoder': count(model.audio_encoder), 'fusion': count(model.query)}",
                  names=r"model\.query and model\.key"),
            wrong("weights only, no biases", "def parameters_per_part(model):\n"
                  "    def count(module):\n"
                  "        return sum(p.numel() for p in module.parameters() if p.requires_grad and p.dim() > 1)\n"
                  "    return {'text encoder': count(model.text_encoder), 'image encoder': count(model.image_encoder),\n"
                  "            'audio encoder': count(model.audio_encoder), 'fusion': count(model.query) + count(model.key)}",
                  names=r"exactly one part"),
            wrong("other key names", "def parameters_per_part(model):\n"
                  "    def count(module):\n        return sum(p.numel() for p in module.parameters() if p.requires_grad)\n"
                  "    return {'text_encoder': count(model.text_encoder), 'image_encoder': count(model.image_encoder),\n"
                  "            'audio_encoder': count(model.audio_encoder), 'fusion': count(model.query) + count(model.key)}",
                  names=r"the keys"),
            subtle("requires_grad ignored for the encoders only", "def parameters_per_part(model):\n"
                   "    def count(module):\n        return sum(p.numel() for p in module.parameters())\n"
                   "    parts = {'text encoder': count(model.text_encoder), 'image encoder': count(model.image_encoder),\n"
                   "             'audio encoder': sum(p.numel() for p in model.audio_encoder.parameters() if p.requires_grad)}\n"
                   "    parts['fusion'] = count(model.query) + count(model.key)\n    return parts"),
        ],
        right=[
            right("query and key counted directly", "def parameters_per_part(model):\n"
                  "    def count(*modules):\n"
                  "        return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)\n"
                  "    return {'text encoder': count(model.text_encoder), 'image encoder': count(model.image_encoder),\n"
                  "            'audio encoder': count(model.audio_encoder), 'fusion': count(model.query, model.key)}"),
            right("named_parameters grouped by prefix", "def parameters_per_part(model):\n"
                  "    parts = dict.fromkeys(['text encoder', 'image encoder', 'audio encoder', 'fusion'], 0)\n"
                  "    for name, p in model.named_parameters():\n        if not p.requires_grad:\n            continue\n"
                  "        top = name.split('.')[0].replace('_', ' ')\n"
                  "        parts[top if top in parts else 'fusion'] += p.numel()\n    return parts"),
        ]),
    "nb01_quadrant_mass": Exercise(
        wrong=[
            wrong("column-major patches", "def quadrant_mass(weights, grid):\n"
                  "    w = weights.reshape(weights.shape[0], 2, grid // 2, 2, grid // 2).transpose(1, 3)\n"
                  "    return w.sum(dim=(2, 4)).reshape(weights.shape[0], 4)", names=r"row-major"),
            wrong("quadrants in the order TL, BL, TR, BR", "def quadrant_mass(weights, grid):\n"
                  "    w = weights.reshape(weights.shape[0], 2, grid // 2, 2, grid // 2).sum(dim=(2, 4))\n"
                  "    return w.transpose(1, 2).reshape(weights.shape[0], 4)", names=r"top-right"),
            wrong("mean, not total weight", "def quadrant_mass(weights, grid):\n"
                  "    w = weights.reshape(weights.shape[0], 2, grid // 2, 2, grid // 2)\n"
                  "    return w.mean(dim=(2, 4)).reshape(weights.shape[0], 4)", names=r"total"),
            subtle("rows and columns split by parity, not by halves", "def quadrant_mass(weights, grid):\n"
                   "    w = weights.reshape(weights.shape[0], grid // 2, 2, grid // 2, 2)\n"
                   "    return w.sum(dim=(1, 3)).reshape(weights.shape[0], 4)"),
            subtle("the 8×8 grid hard-coded", "def quadrant_mass(weights, grid):\n"
                   "    w = weights.reshape(weights.shape[0], 8, 8)\n"
                   "    return torch.stack([w[:, :4, :4].sum((1, 2)), w[:, :4, 4:].sum((1, 2)),\n"
                   "                        w[:, 4:, :4].sum((1, 2)), w[:, 4:, 4:].sum((1, 2))], dim=1)"),
        ],
        right=[
            right("the assignment matrix", "def quadrant_mass(weights, grid):\n"
                  "    return weights @ quadrant_assignment(grid).to(weights.dtype)"),
            right("four slices of the grid", "def quadrant_mass(weights, grid):\n"
                  "    w, h = weights.view(-1, grid, grid), grid // 2\n"
                  "    return torch.stack([w[:, :h, :h].sum((1, 2)), w[:, :h, h:].sum((1, 2)),\n"
                  "                        w[:, h:, :h].sum((1, 2)), w[:, h:, h:].sum((1, 2))], dim=-1)"),
            right("a quadrant index per patch and index_add", "def quadrant_mass(weights, grid):\n"
                  "    n = torch.arange(grid * grid)\n"
                  "    quadrant = (n // grid >= grid // 2) * 2 + (n % grid >= grid // 2)\n"
                  "    return torch.zeros(weights.shape[0], 4, dtype=weights.dtype).index_add_(1, quadrant, weights)"),
        ]),
}
