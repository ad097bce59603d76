"""Notebook 11 · the hard parts: wrong and right answers to its five exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb11_misalign_pairs": Exercise(
        wrong=[
            wrong("offset drawn from 0 … n − 1: some wrong pairs get their own caption back",
                  "def misalign_pairs(n, fraction, seed=0):\n"
                  "    if not 0.0 <= fraction <= 1.0:\n        raise ValueError(fraction)\n"
                  "    g = torch.Generator().manual_seed(seed)\n    k = round(fraction * n)\n"
                  "    wrong = torch.randperm(n, generator=g)[:k]\n    partner = torch.arange(n)\n"
                  "    partner[wrong] = (wrong + torch.randint(0, n, (k,), generator=g)) % n\n    return partner",
                  names=r"1 … n − 1"),
            wrong("the global random state, not a seeded generator", "def misalign_pairs(n, fraction, seed=0):\n"
                  "    if not 0.0 <= fraction <= 1.0:\n        raise ValueError(fraction)\n    k = round(fraction * n)\n"
                  "    wrong = torch.randperm(n)[:k]\n    partner = torch.arange(n)\n"
                  "    partner[wrong] = (wrong + torch.randint(1, n, (k,))) % n\n    return partner",
                  names=r"torch\.Generator"),
            wrong("no ValueError for a fraction outside [0, 1]", "def misalign_pairs(n, fraction, seed=0):\n"
                  "    g = torch.Generator().manual_seed(seed)\n    k = min(max(round(fraction * n), 0), n)\n"
                  "    wrong = torch.randperm(n, generator=g)[:k]\n    partner = torch.arange(n)\n"
                  "    partner[wrong] = (wrong + torch.randint(1, n, (k,), generator=g)) % n\n    return partner",
                  names=r"ValueError"),
            subtle("k rounded down", "def misalign_pairs(n, fraction, seed=0):\n"
                   "    if not 0.0 <= fraction <= 1.0:\n        raise ValueError(fraction)\n"
                   "    g = torch.Generator().manual_seed(seed)\n    k = int(fraction * n)\n"
                   "    wrong = torch.randperm(n, generator=g)[:k]\n    partner = torch.arange(n)\n"
                   "    partner[wrong] = (wrong + torch.randint(1, n, (k,), generator=g)) % n\n    return partner"),
            subtle("always the next item's caption", "def misalign_pairs(n, fraction, seed=0):\n"
                   "    if not 0.0 <= fraction <= 1.0:\n        raise ValueError(fraction)\n"
                   "    g = torch.Generator().manual_seed(seed)\n    k = round(fraction * n)\n"
                   "    wrong = torch.randperm(n, generator=g)[:k]\n    partner = torch.arange(n)\n"
                   "    partner[wrong] = (wrong + 1) % n\n    return partner"),
            subtle("the wrong pairs' captions shuffled among themselves", "def misalign_pairs(n, fraction, seed=0):\n"
                   "    if not 0.0 <= fraction <= 1.0:\n        raise ValueError(fraction)\n"
                   "    g = torch.Generator().manual_seed(seed)\n    k = round(fraction * n)\n"
                   "    wrong = torch.randperm(n, generator=g)[:k]\n    partner = torch.arange(n)\n"
                   "    partner[wrong] = wrong.roll(1)\n    return partner"),
        ],
        right=[
            right("argsort of uniform numbers, then skip over itself", "def misalign_pairs(n, fraction, seed=0):\n"
                  "    if fraction < 0 or fraction > 1:\n        raise ValueError('fraction must be in [0, 1]')\n"
                  "    g = torch.Generator().manual_seed(seed)\n    k = round(fraction * n)\n"
                  "    chosen = torch.rand(n, generator=g).argsort()[:k]\n"
                  "    other = torch.randint(0, n - 1, (k,), generator=g) if k else torch.zeros(0, dtype=torch.long)\n"
                  "    other = other + (other >= chosen).long()\n"
                  "    return torch.arange(n).index_put((chosen,), other)"),
            right("a Python loop with rejection sampling", "def misalign_pairs(n, fraction, seed=0):\n"
                  "    if not (0 <= fraction <= 1):\n        raise ValueError(f'bad fraction {fraction}')\n"
                  "    g = torch.Generator()\n    g.manual_seed(seed)\n    partner = list(range(n))\n"
                  "    for i in torch.randperm(n, generator=g)[:round(fraction * n)].tolist():\n"
                  "        j = i\n        while j == i:\n            j = int(torch.randint(n, (), generator=g))\n"
                  "        partner[i] = j\n    return torch.tensor(partner, dtype=torch.long)"),
        ]),
    "nb11_grad_norm_per_modality": Exercise(
        wrong=[
            wrong("the sum of the per-parameter norms", "def grad_norm_per_modality(groups):\n"
                  "    return {name: float(sum(p.grad.norm() for p in m.parameters() if p.grad is not None))\n"
                  "            for name, m in groups.items()}", names=r"not the sum of the two norms"),
            wrong("the weights only, biases forgotten", "def grad_norm_per_modality(groups):\n    out = {}\n"
                  "    for name, m in groups.items():\n"
                  "        g = [p.grad.flatten() for k, p in m.named_parameters() if 'weight' in k and p.grad is not None]\n"
                  "        out[name] = float(torch.cat(g).norm()) if g else 0.0\n    return out",
                  names=r"weight AND the bias"),
            wrong("the squared norm: no square root", "def grad_norm_per_modality(groups):\n"
                  "    return {name: float(sum((p.grad ** 2).sum() for p in m.parameters() if p.grad is not None))\n"
                  "            for name, m in groups.items()}", names=r"sqrt\(Σ weight\.grad²"),
            wrong("tensors returned, not floats", "def grad_norm_per_modality(groups):\n"
                  "    return {name: torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]\n"
                  "                            or [torch.zeros(1)]).norm() for name, m in groups.items()}",
                  names=r"Python float"),
            subtle("crashes on a parameter without a gradient", "def grad_norm_per_modality(groups):\n"
                   "    return {name: float(torch.cat([p.grad.flatten() for p in m.parameters()]).norm())\n"
                   "            for name, m in groups.items()}"),
            subtle("the norm of the parameters, not of their gradients", "def grad_norm_per_modality(groups):\n"
                   "    return {name: float(torch.cat([p.detach().flatten() for p in m.parameters()]).norm())\n"
                   "            for name, m in groups.items()}"),
        ],
        right=[
            right("math.sqrt of a Python sum", "def grad_norm_per_modality(groups):\n    result = {}\n"
                  "    for name, module in groups.items():\n"
                  "        total = sum(float((p.grad.double() ** 2).sum()) for p in module.parameters() if p.grad is not None)\n"
                  "        result[name] = math.sqrt(total)\n    return result"),
            right("the norm of the per-parameter norms", "def grad_norm_per_modality(groups):\n"
                  "    out = {}\n    for name, module in groups.items():\n"
                  "        norms = [torch.linalg.vector_norm(p.grad) for p in module.parameters() if p.grad is not None]\n"
                  "        out[name] = torch.linalg.vector_norm(torch.stack(norms)).item() if norms else 0.0\n"
                  "    return out"),
        ]),
    "nb11_modality_dropout": Exercise(
        wrong=[
            wrong("dropped modalities zeroed, not masked", "def modality_dropout(inputs, p, generator=None):\n"
                  "    names = list(inputs)\n    batch = inputs[names[0]].states.shape[0]\n"
                  "    drop = torch.rand(batch, len(names), generator=generator) < p\n    every = drop.all(dim=1)\n"
                  "    keep = torch.randint(0, len(names), (batch,), generator=generator)\n    drop[every, keep[every]] = False\n"
                  "    return {m: Tokens(inputs[m].states * ~drop[:, j, None, None], inputs[m].padding_mask)\n"
                  "            for j, m in enumerate(names)}", names=r"masking it, not by zeroing"),
            wrong("the input's masks modified in place", "def modality_dropout(inputs, p, generator=None):\n"
                  "    names = list(inputs)\n    batch = inputs[names[0]].states.shape[0]\n"
                  "    drop = torch.rand(batch, len(names), generator=generator) < p\n    every = drop.all(dim=1)\n"
                  "    keep = torch.randint(0, len(names), (batch,), generator=generator)\n    drop[every, keep[every]] = False\n"
                  "    for j, m in enumerate(names):\n        inputs[m].padding_mask |= drop[:, j, None]\n"
                  "    return {m: Tokens(inputs[m].states, inputs[m].padding_mask) for m in names}",
                  names=r"changed the input's masks"),
            wrong("a sample may lose every modality", "def modality_dropout(inputs, p, generator=None):\n"
                  "    names = list(inputs)\n    batch = inputs[names[0]].states.shape[0]\n"
                  "    drop = torch.rand(batch, len(names), generator=generator) < p\n"
                  "    return {m: Tokens(inputs[m].states, inputs[m].padding_mask | drop[:, j, None])\n"
                  "            for j, m in enumerate(names)}", names=r"keep one of them"),
            wrong("the old padding forgotten", "def modality_dropout(inputs, p, generator=None):\n"
                  "    names = list(inputs)\n    batch = inputs[names[0]].states.shape[0]\n"
                  "    drop = torch.rand(batch, len(names), generator=generator) < p\n    every = drop.all(dim=1)\n"
                  "    keep = torch.randint(0, len(names), (batch,), generator=generator)\n    drop[every, keep[every]] = False\n"
                  "    return {m: Tokens(inputs[m].states, drop[:, j, None].expand_as(inputs[m].padding_mask).clone())\n"
                  "            for j, m in enumerate(names)}", names=r"padding must stay padding"),
            subtle("always the first modality kept", "def modality_dropout(inputs, p, generator=None):\n"
                   "    names = list(inputs)\n    batch = inputs[names[0]].states.shape[0]\n"
                   "    drop = torch.rand(batch, len(names), generator=generator) < p\n    drop[drop.all(dim=1), 0] = False\n"
                   "    return {m: Tokens(inputs[m].states, inputs[m].padding_mask | drop[:, j, None])\n"
                   "            for j, m in enumerate(names)}"),
            subtle("one draw per sample for all its modalities", "def modality_dropout(inputs, p, generator=None):\n"
                   "    names = list(inputs)\n    batch = inputs[names[0]].states.shape[0]\n"
                   "    drop = (torch.rand(batch, 1, generator=generator) < p).expand(batch, len(names)).clone()\n"
                   "    every = drop.all(dim=1)\n"
                   "    keep = torch.randint(0, len(names), (batch,), generator=generator)\n    drop[every, keep[every]] = False\n"
                   "    return {m: Tokens(inputs[m].states, inputs[m].padding_mask | drop[:, j, None])\n"
                   "            for j, m in enumerate(names)}"),
            subtle("the global random state, generator ignored", "def modality_dropout(inputs, p, generator=None):\n"
                   "    names = list(inputs)\n    batch = inputs[names[0]].states.shape[0]\n"
                   "    drop = torch.rand(batch, len(names)) < p\n    every = drop.all(dim=1)\n"
                   "    keep = torch.randint(0, len(names), (batch,))\n    drop[every, keep[every]] = False\n"
                   "    return {m: Tokens(inputs[m].states, inputs[m].padding_mask | drop[:, j, None])\n"
                   "            for j, m in enumerate(names)}"),
        ],
        right=[
            right("one draw per modality, masked_fill on copies", "def modality_dropout(inputs, p, generator=None):\n"
                  "    names = list(inputs)\n    batch = len(inputs[names[0]].states)\n"
                  "    drop = torch.stack([torch.rand(batch, generator=generator) < p for _ in names], dim=1)\n"
                  "    for i in torch.nonzero(drop.all(dim=1)).flatten().tolist():\n"
                  "        drop[i, int(torch.randint(len(names), (1,), generator=generator))] = False\n"
                  "    out = {}\n    for j, m in enumerate(names):\n        mask = inputs[m].padding_mask.clone()\n"
                  "        mask[drop[:, j]] = True\n        out[m] = Tokens(inputs[m].states, mask)\n    return out"),
            right("torch.where over a keep matrix", "def modality_dropout(inputs, p, generator=None):\n"
                  "    names = list(inputs)\n    b, k = inputs[names[0]].padding_mask.shape[0], len(names)\n"
                  "    keep = torch.rand(b, k, generator=generator) >= p\n"
                  "    rescue = F.one_hot(torch.randint(k, (b,), generator=generator), k).bool()\n"
                  "    keep = torch.where(keep.any(dim=1, keepdim=True), keep, rescue)\n"
                  "    return {m: Tokens(inputs[m].states, torch.where(keep[:, j, None], inputs[m].padding_mask, True))\n"
                  "            for j, m in enumerate(names)}"),
        ]),
    "nb11_patch_attribution": Exercise(
        wrong=[
            wrong("baseline ignored", "from mmcourse.encoding import patchify\n\ndef patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                  "    return patchify(grad * pixel_values, patch_size).sum(dim=-1)", names=r"input − baseline"),
            wrong("patches in column-major order", "def patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                  "    b, c, s, _ = grad.shape\n    g = s // patch_size\n"
                  "    x = (grad * (pixel_values - baseline)).reshape(b, c, g, patch_size, g, patch_size)\n"
                  "    return x.sum(dim=(1, 3, 5)).transpose(1, 2).reshape(b, g * g)", names=r"row-major"),
            wrong("the mean over a patch, not the sum", "from mmcourse.encoding import patchify\n\ndef patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                  "    return patchify(grad * (pixel_values - baseline), patch_size).mean(dim=-1)",
                  names=r"3 channels × 8 × 8"),
            subtle("a flat reshape instead of patches", "def patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                   "    b, c, s, _ = grad.shape\n"
                   "    return (grad * (pixel_values - baseline)).reshape(b, (s // patch_size) ** 2, -1).sum(dim=-1)"),
            subtle("channels kept apart", "def patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                   "    b, c, s, _ = grad.shape\n    g = s // patch_size\n"
                   "    x = (grad * (pixel_values - baseline)).reshape(b, c, g, patch_size, g, patch_size)\n"
                   "    return x.sum(dim=(3, 5)).reshape(b, c * g * g)"),
        ],
        right=[
            right("F.unfold", "def patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                  "    contribution = grad * (pixel_values - baseline)\n"
                  "    return F.unfold(contribution, kernel_size=patch_size, stride=patch_size).sum(dim=1)"),
            right("average pooling times the patch area", "def patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                  "    pooled = F.avg_pool2d((grad * (pixel_values - baseline)).double(), patch_size) * patch_size ** 2\n"
                  "    return pooled.sum(dim=1).flatten(1).float()"),
            right("view and sum", "def patch_attribution(grad, pixel_values, patch_size, baseline=0.0):\n"
                  "    b, c, s, _ = grad.shape\n    g = s // patch_size\n"
                  "    x = (grad * (pixel_values - baseline)).view(b, c, g, patch_size, g, patch_size)\n"
                  "    return x.sum(dim=(1, 3, 5)).reshape(b, -1)"),
        ]),
    "nb11_linear_probe_accuracy": Exercise(
        wrong=[
            wrong("no bias column", "def linear_probe_accuracy(train_x, train_y, test_x, test_y, ridge=1e-3):\n"
                  "    x, xt = train_x.double(), test_x.double()\n"
                  "    y = F.one_hot(train_y, int(max(train_y.max(), test_y.max())) + 1).double()\n"
                  "    w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)\n"
                  "    return float(((xt @ w).argmax(dim=1) == test_y).double().mean())", names=r"bias"),
            wrong("scored on the training data", "def linear_probe_accuracy(train_x, train_y, test_x, test_y, ridge=1e-3):\n"
                  "    x = torch.cat([train_x.double(), torch.ones(len(train_x), 1, dtype=torch.float64)], dim=1)\n"
                  "    y = F.one_hot(train_y, int(max(train_y.max(), test_y.max())) + 1).double()\n"
                  "    w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)\n"
                  "    return float(((x @ w).argmax(dim=1) == train_y).double().mean())", names=r"test split"),
            wrong("a tensor returned, not a float", "def linear_probe_accuracy(train_x, train_y, test_x, test_y, ridge=1e-3):\n"
                  "    x = torch.cat([train_x.double(), torch.ones(len(train_x), 1, dtype=torch.float64)], dim=1)\n"
                  "    xt = torch.cat([test_x.double(), torch.ones(len(test_x), 1, dtype=torch.float64)], dim=1)\n"
                  "    y = F.one_hot(train_y, int(max(train_y.max(), test_y.max())) + 1).double()\n"
                  "    w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)\n"
                  "    return ((xt @ w).argmax(dim=1) == test_y).double().mean()", names=r"Python float"),
            subtle("regression on the class id, not one-hot targets",
                   "def linear_probe_accuracy(train_x, train_y, test_x, test_y, ridge=1e-3):\n"
                   "    x = torch.cat([train_x.double(), torch.ones(len(train_x), 1, dtype=torch.float64)], dim=1)\n"
                   "    xt = torch.cat([test_x.double(), torch.ones(len(test_x), 1, dtype=torch.float64)], dim=1)\n"
                   "    w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ train_y.double())\n"
                   "    return float(((xt @ w).round() == test_y).double().mean())"),
            subtle("fitted on the test split", "def linear_probe_accuracy(train_x, train_y, test_x, test_y, ridge=1e-3):\n"
                   "    xt = torch.cat([test_x.double(), torch.ones(len(test_x), 1, dtype=torch.float64)], dim=1)\n"
                   "    y = F.one_hot(test_y, int(max(train_y.max(), test_y.max())) + 1).double()\n"
                   "    w = torch.linalg.solve(xt.T @ xt + ridge * torch.eye(xt.shape[1], dtype=xt.dtype), xt.T @ y)\n"
                   "    return float(((xt @ w).argmax(dim=1) == test_y).double().mean())"),
        ],
        right=[
            right("least squares on the ridge-augmented system", "def linear_probe_accuracy(train_x, train_y, test_x, test_y, ridge=1e-3):\n"
                  "    x = F.pad(train_x.double(), (0, 1), value=1.0)\n    xt = F.pad(test_x.double(), (0, 1), value=1.0)\n"
                  "    c = 1 + int(torch.cat([train_y, test_y]).max())\n"
                  "    y = torch.zeros(len(train_y), c, dtype=torch.float64).scatter_(1, train_y[:, None].long(), 1.0)\n"
                  "    a = torch.cat([x, ridge ** 0.5 * torch.eye(x.shape[1], dtype=torch.float64)])\n"
                  "    rhs = torch.cat([y, torch.zeros(x.shape[1], c, dtype=torch.float64)])\n"
                  "    w = torch.linalg.lstsq(a, rhs, driver='gelsd').solution\n"
                  "    return (xt @ w).argmax(-1).eq(test_y).double().mean().item()"),
            right("Cholesky", "def linear_probe_accuracy(train_x, train_y, test_x, test_y, ridge=1e-3):\n"
                  "    ones = lambda t: torch.ones(t.shape[0], 1, dtype=torch.float64)\n"
                  "    x = torch.hstack([train_x.double(), ones(train_x)])\n    xt = torch.hstack([test_x.double(), ones(test_x)])\n"
                  "    y = F.one_hot(train_y.long(), num_classes=max(int(train_y.max()), int(test_y.max())) + 1).to(torch.float64)\n"
                  "    gram = x.mT @ x + ridge * torch.eye(x.shape[1], dtype=torch.float64)\n"
                  "    w = torch.cholesky_solve(x.mT @ y, torch.linalg.cholesky(gram))\n"
                  "    return sum(int(a == b) for a, b in zip((xt @ w).argmax(1).tolist(), test_y.tolist())) / len(test_y)"),
        ]),
}
