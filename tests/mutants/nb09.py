"""Notebook 09 · decoding to images: wrong and right answers to its four exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

_UNPATCHIFY = ("def unpatchify(patches, patch_size, image_size):\n    b, n, features = patches.shape\n"
               "    g, p = image_size // patch_size, patch_size\n    c = features // (p * p)\n")
_MSE = "def per_image_mse(generated, target):\n"
_SAME_SHAPE = ("    if generated.shape != target.shape:\n"
               "        raise ValueError(f'shapes differ: {tuple(generated.shape)} and {tuple(target.shape)}')\n")
_ACC = "def attribute_accuracy(logits, labels):\n"
_CORRECT = "    correct = {name: scores.argmax(dim=-1) == labels[name] for name, scores in logits.items()}\n"

MUTANTS = {
    "nb09_unpatchify": Exercise(
        wrong=[
            wrong("grid rows and columns swapped", _UNPATCHIFY +
                  "    x = patches.reshape(b, g, g, c, p, p).permute(0, 3, 2, 4, 1, 5)\n"
                  "    return x.reshape(b, c, image_size, image_size)", names=r"swap grid rows and columns"),
            wrong("channel last inside a patch", _UNPATCHIFY +
                  "    x = patches.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)\n"
                  "    return x.reshape(b, c, image_size, image_size)", names=r"channel, pixel row, pixel column"),
            wrong("reshaped with no permute", _UNPATCHIFY +
                  "    return patches.reshape(b, c, image_size, image_size)", names=r"permute"),
            wrong("grid and pixel axes not interleaved", _UNPATCHIFY +
                  "    x = patches.reshape(b, g, g, c, p, p).permute(0, 3, 1, 2, 4, 5)\n"
                  "    return x.reshape(b, c, image_size, image_size)", names=r"\(B, C, g, P, g, P\)"),
            subtle("the patch size 4 hard-coded in the channel count", _UNPATCHIFY.replace("features // (p * p)", "features // p // 4") +
                   "    x = patches.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)\n"
                   "    return x.reshape(b, c, image_size, image_size)"),
            subtle("three channels assumed", _UNPATCHIFY.replace("features // (p * p)", "3") +
                   "    x = patches.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)\n"
                   "    return x.reshape(b, c, image_size, image_size)"),
        ],
        right=[
            right("F.fold", "def unpatchify(patches, patch_size, image_size):\n"
                  "    return F.fold(patches.transpose(1, 2), output_size=(image_size, image_size), "
                  "kernel_size=patch_size, stride=patch_size)"),
            right("a loop pasting patches into an empty image", _UNPATCHIFY +
                  "    out = patches.new_empty(b, c, image_size, image_size)\n    for i in range(n):\n"
                  "        r, col = divmod(i, g)\n"
                  "        out[:, :, r * p:(r + 1) * p, col * p:(col + 1) * p] = patches[:, i].reshape(b, c, p, p)\n"
                  "    return out"),
            right("unflatten, permute, flatten", "def unpatchify(patches, patch_size, image_size):\n"
                  "    g = image_size // patch_size\n"
                  "    x = patches.unflatten(1, (g, g)).unflatten(-1, (-1, patch_size, patch_size))\n"
                  "    return x.permute(0, 3, 1, 4, 2, 5).flatten(4, 5).flatten(2, 3)"),
        ]),
    "nb09_average_per_caption": Exercise(
        wrong=[
            wrong("image i left out of its own average", "def average_per_caption(images, captions):\n"
                  "    out = torch.empty_like(images)\n    for i, caption in enumerate(captions):\n"
                  "        rows = [j for j, c in enumerate(captions) if c == caption and j != i]\n"
                  "        out[i] = images[rows].mean(dim=0)\n    return out", names=r"its own average"),
            wrong("one average per distinct caption", "def average_per_caption(images, captions):\n"
                  "    order = list(dict.fromkeys(captions))\n"
                  "    return torch.stack([images[[i for i, c in enumerate(captions) if c == u]].mean(dim=0) for u in order])",
                  names=r"one averaged image per input image"),
            wrong("the mean of all images", "def average_per_caption(images, captions):\n"
                  "    return images.mean(dim=0, keepdim=True).expand_as(images).clone()", names=r"share caption 'a'"),
            subtle("sums, not means", "def average_per_caption(images, captions):\n"
                   "    out = torch.empty_like(images)\n    for caption in set(captions):\n"
                   "        rows = [i for i, c in enumerate(captions) if c == caption]\n"
                   "        out[rows] = images[rows].sum(dim=0)\n    return out"),
            subtle("averages written into the input", "def average_per_caption(images, captions):\n"
                   "    for caption in set(captions):\n        rows = [i for i, c in enumerate(captions) if c == caption]\n"
                   "        images[rows] = images[rows].mean(dim=0)\n    return images"),
            subtle("averaged over the channels too", "def average_per_caption(images, captions):\n"
                   "    out = torch.empty_like(images)\n    for caption in set(captions):\n"
                   "        rows = [i for i, c in enumerate(captions) if c == caption]\n"
                   "        out[rows] = images[rows].mean(dim=(0, 1), keepdim=True)\n    return out"),
            subtle("captions grouped by their first word only", "def average_per_caption(images, captions):\n"
                   "    out = torch.empty_like(images)\n    keys = [c.split()[0] for c in captions]\n"
                   "    for key in set(keys):\n        rows = [i for i, k in enumerate(keys) if k == key]\n"
                   "        out[rows] = images[rows].mean(dim=0)\n    return out"),
        ],
        right=[
            right("a same-caption matrix times the images", "def average_per_caption(images, captions):\n"
                  "    same = torch.tensor([[a == b for b in captions] for a in captions], dtype=images.dtype)\n"
                  "    same = same / same.sum(dim=1, keepdim=True)\n"
                  "    return (same @ images.flatten(1)).view_as(images)"),
            right("index_add_ and bincount", "def average_per_caption(images, captions):\n"
                  "    ids = {c: n for n, c in enumerate(dict.fromkeys(captions))}\n"
                  "    index = torch.tensor([ids[c] for c in captions])\n"
                  "    sums = images.new_zeros(len(ids), *images.shape[1:]).index_add_(0, index, images)\n"
                  "    counts = torch.bincount(index, minlength=len(ids)).to(images.dtype)\n"
                  "    return (sums / counts.view(-1, 1, 1, 1))[index]"),
            right("a dict of lists, then stack", "def average_per_caption(images, captions):\n    groups = {}\n"
                  "    for image, caption in zip(images, captions):\n        groups.setdefault(caption, []).append(image)\n"
                  "    means = {c: torch.stack(g).mean(0) for c, g in groups.items()}\n"
                  "    return torch.stack([means[c] for c in captions])"),
        ]),
    "nb09_per_image_mse": Exercise(
        wrong=[
            wrong("one number for the whole batch", _MSE + _SAME_SHAPE + "    return ((generated - target) ** 2).mean()",
                  names=r"one number per image"),
            wrong("averaged over the batch, not the pixels", _MSE + _SAME_SHAPE +
                  "    return ((generated - target) ** 2).mean(dim=0)", names=r"one number per image"),
            wrong("summed, not averaged", _MSE + _SAME_SHAPE + "    return ((generated - target) ** 2).sum(dim=(1, 2, 3))",
                  names=r"average over dims \(1, 2, 3\)"),
            wrong("the channels kept", _MSE + _SAME_SHAPE + "    return ((generated - target) ** 2).mean(dim=(2, 3))",
                  names=r"average over dims \(1, 2, 3\)"),
            wrong("no shape check: the (3, S, S) target broadcasts", _MSE +
                  "    return ((generated - target) ** 2).mean(dim=(1, 2, 3))", names=r"generated\.shape"),
            subtle("only the batch sizes compared", _MSE +
                   "    if len(generated) != len(target):\n        raise ValueError('batch sizes differ')\n"
                   "    return ((generated - target) ** 2).mean(dim=(1, 2, 3))"),
            subtle("only the number of dimensions compared", _MSE +
                   "    if generated.dim() != target.dim():\n        raise ValueError('dimensions differ')\n"
                   "    return ((generated - target) ** 2).mean(dim=(1, 2, 3))"),
            subtle("absolute error", _MSE + _SAME_SHAPE + "    return (generated - target).abs().mean(dim=(1, 2, 3))"),
            subtle("root mean squared error", _MSE + _SAME_SHAPE +
                   "    return ((generated - target) ** 2).mean(dim=(1, 2, 3)).sqrt()"),
        ],
        right=[
            right("F.mse_loss without reduction", _MSE +
                  "    if tuple(generated.shape) != tuple(target.shape):\n        raise ValueError('the shapes must match')\n"
                  "    return F.mse_loss(generated, target, reduction='none').flatten(1).mean(dim=1)"),
            right("a flattened dot product", _MSE +
                  "    if generated.size() != target.size():\n"
                  "        raise ValueError(f'{generated.size()} vs {target.size()}')\n"
                  "    d = (generated - target).reshape(generated.shape[0], -1)\n"
                  "    return torch.einsum('bi,bi->b', d, d) / d.shape[1]"),
        ]),
    "nb09_attribute_accuracy": Exercise(
        wrong=[
            wrong("joint: colour OR shape right", _ACC + _CORRECT +
                  "    result = {name: c.float().mean().item() for name, c in correct.items()}\n"
                  "    result['joint'] = (correct['colors'] | correct['shapes']).float().mean().item()\n    return result",
                  names=r"colour AND shape"),
            wrong("joint as the product of the two accuracies", _ACC + _CORRECT +
                  "    result = {name: c.float().mean().item() for name, c in correct.items()}\n"
                  "    result['joint'] = result['colors'] * result['shapes']\n    return result", names=r"colour AND shape"),
            wrong("joint as the mean of the two accuracies", _ACC + _CORRECT +
                  "    result = {name: c.float().mean().item() for name, c in correct.items()}\n"
                  "    result['joint'] = (result['colors'] + result['shapes']) / 2\n    return result",
                  names=r"colour AND shape"),
            wrong("tensors returned, not floats", _ACC + _CORRECT +
                  "    result = {name: c.float().mean() for name, c in correct.items()}\n"
                  "    result['joint'] = (correct['colors'] & correct['shapes']).float().mean()\n    return result",
                  names=r"Python floats"),
            wrong("no joint key", _ACC + _CORRECT + "    return {name: c.float().mean().item() for name, c in correct.items()}",
                  names=r"plus 'joint'"),
            subtle("argmax over the batch axis", _ACC +
                   "    correct = {name: scores.argmax(dim=0) == labels[name] for name, scores in logits.items()}\n"
                   "    result = {name: c.float().mean().item() for name, c in correct.items()}\n"
                   "    result['joint'] = (correct['colors'] & correct['shapes']).float().mean().item()\n    return result"),
            subtle("joint over every scored attribute", _ACC + _CORRECT +
                   "    result = {name: c.float().mean().item() for name, c in correct.items()}\n"
                   "    result['joint'] = torch.stack(list(correct.values())).all(dim=0).float().mean().item()\n"
                   "    return result"),
            subtle("argmin: the smallest logit", _ACC +
                   "    correct = {name: scores.argmin(dim=-1) == labels[name] for name, scores in logits.items()}\n"
                   "    result = {name: c.float().mean().item() for name, c in correct.items()}\n"
                   "    result['joint'] = (correct['colors'] & correct['shapes']).float().mean().item()\n    return result"),
        ],
        right=[
            right("numpy, converted to floats", _ACC +
                  "    hits = {name: np.argmax(scores.numpy(), axis=1) == labels[name].numpy() for name, scores in logits.items()}\n"
                  "    result = {name: float(np.mean(h)) for name, h in hits.items()}\n"
                  "    result['joint'] = float(np.mean(hits['colors'] & hits['shapes']))\n    return result"),
            right("Python counts over the rows", _ACC +
                  "    guesses = {name: scores.max(dim=1).indices.tolist() for name, scores in logits.items()}\n"
                  "    truth = {name: labels[name].tolist() for name in logits}\n    n = len(next(iter(guesses.values())))\n"
                  "    ok = {name: [g == t for g, t in zip(guesses[name], truth[name])] for name in guesses}\n"
                  "    result = {name: sum(v) / n for name, v in ok.items()}\n"
                  "    result['joint'] = sum(a and b for a, b in zip(ok['colors'], ok['shapes'])) / n\n    return result"),
        ]),
}
