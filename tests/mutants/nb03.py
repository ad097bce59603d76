"""Notebook 03 · image encoding: wrong and right answers to its four exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb03_rescale_and_normalize": Exercise(
        wrong=[
            wrong("no ÷255", "def rescale_and_normalize(images, mean, std):\n"
                  "    mean = torch.tensor(mean).view(1, 3, 1, 1)\n    std = torch.tensor(std).view(1, 3, 1, 1)\n"
                  "    return (images.float() - mean) / std", names=r"forgot to divide by 255"),
            wrong("normalised before rescaling", "def rescale_and_normalize(images, mean, std):\n"
                  "    mean = torch.tensor(mean).view(1, 3, 1, 1)\n    std = torch.tensor(std).view(1, 3, 1, 1)\n"
                  "    return (images.float() - mean) / std / 255", names=r"255 → ÷255 → 1\.0"),
            wrong("one mean and std for all channels", "def rescale_and_normalize(images, mean, std):\n"
                  "    return (images.float() / 255 - mean[0]) / std[0]", names=r"each channel has its own mean"),
            wrong("float64, not float32", "def rescale_and_normalize(images, mean, std):\n"
                  "    mean = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)\n"
                  "    std = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)\n"
                  "    return (images.double() / 255 - mean) / std", names=r"\.float\(\)"),
            subtle("multiplied by std instead of divided", "def rescale_and_normalize(images, mean, std):\n"
                   "    mean = torch.tensor(mean).view(1, 3, 1, 1)\n    std = torch.tensor(std).view(1, 3, 1, 1)\n"
                   "    return (images.float() / 255 - mean) * std"),
            subtle("channels taken from the last axis", "def rescale_and_normalize(images, mean, std):\n"
                   "    x = images.float() / 255\n"
                   "    if x.shape[-1] == 3:\n        return (x - torch.tensor(mean)) / torch.tensor(std)\n"
                   "    return (x - sum(mean) / 3) / (sum(std) / 3)"),
        ],
        right=[
            right("(3, 1, 1) broadcasting, method chain", "def rescale_and_normalize(images, mean, std):\n"
                  "    m = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]\n"
                  "    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]\n"
                  "    return images.to(torch.float32).div(255).sub(m).div(s)"),
            right("channel by channel, stacked", "def rescale_and_normalize(images, mean, std):\n"
                  "    x = images.float() / 255.0\n"
                  "    return torch.stack([(x[:, c] - mean[c]) / std[c] for c in range(3)], dim=1)"),
            right("one affine map: x * a + b", "def rescale_and_normalize(images, mean, std):\n"
                  "    a = 1 / (255 * torch.tensor(std, dtype=torch.float64))\n"
                  "    b = -torch.tensor(mean, dtype=torch.float64) / torch.tensor(std, dtype=torch.float64)\n"
                  "    return (images.double() * a.view(1, 3, 1, 1) + b.view(1, 3, 1, 1)).float()"),
        ]),
    "nb03_patchify": Exercise(
        wrong=[
            wrong("column-major grid: patch 1 below patch 0", "def patchify(pixel_values, patch_size):\n"
                  "    b, c, s, _ = pixel_values.shape\n    g = s // patch_size\n"
                  "    x = pixel_values.reshape(b, c, g, patch_size, g, patch_size).permute(0, 4, 2, 1, 3, 5)\n"
                  "    return x.reshape(b, g * g, c * patch_size * patch_size)", names=r"RIGHT of patch 0"),
            wrong("channels last inside a patch", "def patchify(pixel_values, patch_size):\n"
                  "    b, c, s, _ = pixel_values.shape\n    g = s // patch_size\n"
                  "    x = pixel_values.reshape(b, c, g, patch_size, g, patch_size).permute(0, 2, 4, 3, 5, 1)\n"
                  "    return x.reshape(b, g * g, c * patch_size * patch_size)", names=r"channel, row, column"),
            wrong("a plain reshape, no permute", "def patchify(pixel_values, patch_size):\n"
                  "    b, c, s, _ = pixel_values.shape\n"
                  "    return pixel_values.reshape(b, (s // patch_size) ** 2, c * patch_size * patch_size)",
                  names=r"channel, row, column"),
            subtle("three channels assumed", "def patchify(pixel_values, patch_size):\n"
                   "    b, _, s, _ = pixel_values.shape\n    g = s // patch_size\n"
                   "    x = pixel_values.reshape(b, 3, g, patch_size, g, patch_size).permute(0, 2, 4, 1, 3, 5)\n"
                   "    return x.reshape(b, g * g, 3 * patch_size * patch_size)"),
            subtle("pixel columns before rows inside a patch", "def patchify(pixel_values, patch_size):\n"
                   "    b, c, s, _ = pixel_values.shape\n    g = s // patch_size\n"
                   "    x = pixel_values.reshape(b, c, g, patch_size, g, patch_size).permute(0, 2, 4, 1, 5, 3)\n"
                   "    return x.reshape(b, g * g, c * patch_size * patch_size)"),
        ],
        right=[
            right("F.unfold", "def patchify(pixel_values, patch_size):\n"
                  "    return F.unfold(pixel_values, kernel_size=patch_size, stride=patch_size).transpose(1, 2)"),
            right("Tensor.unfold twice", "def patchify(pixel_values, patch_size):\n"
                  "    b, c = pixel_values.shape[:2]\n"
                  "    x = pixel_values.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)\n"
                  "    return x.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * patch_size * patch_size)"),
            right("a loop over the grid", "def patchify(pixel_values, patch_size):\n"
                  "    b, p, s = pixel_values.shape[0], patch_size, pixel_values.shape[-1]\n"
                  "    return torch.stack([pixel_values[:, :, r:r + p, c:c + p].reshape(b, -1)\n"
                  "                        for r in range(0, s, p) for c in range(0, s, p)], dim=1)"),
        ]),
    "nb03_embed_patches": Exercise(
        wrong=[
            wrong("the weight flattened channels last", "def embed_patches(pixel_values, weight, bias):\n"
                  "    d, c, p, _ = weight.shape\n"
                  "    return vision.patchify(pixel_values, p) @ weight.permute(0, 2, 3, 1).reshape(d, -1).T + bias",
                  names=r"weight\.reshape\(D, -1\)"),
            wrong("the bias forgotten", "def embed_patches(pixel_values, weight, bias):\n"
                  "    d, c, p, _ = weight.shape\n"
                  "    return vision.patchify(pixel_values, p) @ weight.reshape(d, -1).T", names=r"bias"),
            wrong("the weight's rows and columns swapped", "def embed_patches(pixel_values, weight, bias):\n"
                  "    d, c, p, _ = weight.shape\n"
                  "    return vision.patchify(pixel_values, p) @ weight.transpose(2, 3).reshape(d, -1).T + bias",
                  names=r"weight\.reshape\(D, -1\)"),
            subtle("patch size 16 hard-coded", "def embed_patches(pixel_values, weight, bias):\n"
                   "    return vision.patchify(pixel_values, 16) @ weight.reshape(weight.shape[0], -1).T + bias"),
            subtle("no transpose of the weight", "def embed_patches(pixel_values, weight, bias):\n"
                   "    d, c, p, _ = weight.shape\n"
                   "    return vision.patchify(pixel_values, p) @ weight.reshape(-1, d) + bias"),
        ],
        right=[
            right("F.linear", "def embed_patches(pixel_values, weight, bias):\n"
                  "    return F.linear(vision.patchify(pixel_values, weight.shape[-1]), weight.flatten(1), bias)"),
            right("einsum on unfolded patches", "def embed_patches(pixel_values, weight, bias):\n"
                  "    p = weight.shape[-1]\n"
                  "    patches = F.unfold(pixel_values, kernel_size=p, stride=p)          # (B, C·P·P, N)\n"
                  "    return torch.einsum('bkn,dk->bnd', patches, weight.flatten(1)) + bias"),
        ]),
    "nb03_add_cls_and_positions": Exercise(
        wrong=[
            wrong("[CLS] put last", "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                  "    cls = cls_token.expand(patch_embeddings.shape[0], -1, -1)\n"
                  "    return torch.cat([patch_embeddings, cls], dim=1) + position_embeddings", names=r"FIRST"),
            wrong("[CLS] without a position", "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                  "    cls = cls_token.expand(patch_embeddings.shape[0], -1, -1)\n"
                  "    return torch.cat([cls, patch_embeddings + position_embeddings[:, 1:]], dim=1)",
                  names=r"position embedding 0"),
            wrong("no [CLS]: 196 tokens", "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                  "    return patch_embeddings + position_embeddings[:, 1:]", names=r"class token"),
            wrong("no position embeddings", "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                  "    return torch.cat([cls_token.expand(patch_embeddings.shape[0], -1, -1), patch_embeddings], dim=1)",
                  names=r"position embedding"),
            subtle("[CLS] not expanded over the batch", "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                   "    return torch.cat([cls_token, patch_embeddings], dim=1) + position_embeddings"),
            subtle("positions added in place to the caller's patches",
                   "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                   "    patch_embeddings += position_embeddings[:, 1:]\n"
                   "    cls = (cls_token + position_embeddings[:, :1]).expand(patch_embeddings.shape[0], -1, -1)\n"
                   "    return torch.cat([cls, patch_embeddings], dim=1)"),
        ],
        right=[
            right("positions split, [CLS] repeated", "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                  "    b = patch_embeddings.shape[0]\n"
                  "    first = (cls_token + position_embeddings[:, :1]).repeat(b, 1, 1)\n"
                  "    return torch.cat((first, patch_embeddings + position_embeddings[:, 1:]), dim=1)"),
            right("a new tensor filled by slices", "def add_cls_and_positions(patch_embeddings, cls_token, position_embeddings):\n"
                  "    b, n, d = patch_embeddings.shape\n"
                  "    out = position_embeddings.expand(b, n + 1, d).clone()\n"
                  "    out[:, 0] += cls_token[:, 0]\n    out[:, 1:] += patch_embeddings\n    return out"),
        ]),
}
