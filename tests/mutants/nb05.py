"""Notebook 05 · a shared embedding space: wrong and right answers to its two exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb05_contrastive_loss": Exercise(
        wrong=[
            wrong("not normalised: the lengths leak into the logits", "def contrastive_loss(a, b, logit_scale):\n"
                  "    logits = logit_scale * a @ b.T\n    targets = torch.arange(a.shape[0])\n"
                  "    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2",
                  names=r"normalise inside"),
            wrong("one direction only: image→text", "def contrastive_loss(a, b, logit_scale):\n"
                  "    logits = logit_scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T\n"
                  "    return F.cross_entropy(logits, torch.arange(a.shape[0]))", names=r"columns"),
            wrong("the two directions summed, not averaged", "def contrastive_loss(a, b, logit_scale):\n"
                  "    logits = logit_scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T\n"
                  "    targets = torch.arange(a.shape[0])\n"
                  "    return F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)",
                  names=r"not their sum"),
            wrong("cross-entropy summed over the batch", "def contrastive_loss(a, b, logit_scale):\n"
                  "    logits = logit_scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T\n"
                  "    targets = torch.arange(a.shape[0])\n"
                  "    return (F.cross_entropy(logits, targets, reduction='sum')\n"
                  "            + F.cross_entropy(logits.T, targets, reduction='sum')) / 2", names=r"not a sum"),
            wrong("one loss per pair: a (B,) tensor", "def contrastive_loss(a, b, logit_scale):\n"
                  "    logits = logit_scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T\n"
                  "    targets = torch.arange(a.shape[0])\n"
                  "    return (F.cross_entropy(logits, targets, reduction='none')\n"
                  "            + F.cross_entropy(logits.T, targets, reduction='none')) / 2", names=r"one number"),
            subtle("divided by the scale (a temperature taken for the scale)", "def contrastive_loss(a, b, logit_scale):\n"
                   "    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / logit_scale\n"
                   "    targets = torch.arange(a.shape[0])\n"
                   "    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2"),
            subtle("normalised along the batch axis", "def contrastive_loss(a, b, logit_scale):\n"
                   "    logits = logit_scale * F.normalize(a, dim=0) @ F.normalize(b, dim=0).T\n"
                   "    targets = torch.arange(a.shape[0])\n"
                   "    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2"),
            subtle("the scale turned into a float: no gradient reaches it", "def contrastive_loss(a, b, logit_scale):\n"
                   "    logits = float(logit_scale) * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T\n"
                   "    targets = torch.arange(a.shape[0])\n"
                   "    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2"),
            subtle("inputs normalised in place", "def contrastive_loss(a, b, logit_scale):\n"
                   "    with torch.no_grad():\n        a /= a.norm(dim=-1, keepdim=True)\n        b /= b.norm(dim=-1, keepdim=True)\n"
                   "    logits = logit_scale * a @ b.T\n    targets = torch.arange(a.shape[0])\n"
                   "    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2"),
        ],
        right=[
            right("log_softmax and the diagonal", "def contrastive_loss(a, b, logit_scale):\n"
                  "    a = a / a.norm(dim=1, keepdim=True)\n    b = b / b.norm(dim=1, keepdim=True)\n"
                  "    logits = torch.einsum('id,jd->ij', a, b) * logit_scale\n"
                  "    return -(logits.log_softmax(dim=1).diagonal().mean() + logits.log_softmax(dim=0).diagonal().mean()) / 2"),
            right("in float64, the second direction as b @ a.T", "def contrastive_loss(a, b, logit_scale):\n"
                  "    a, b = F.normalize(a.double(), p=2, dim=1), F.normalize(b.double(), p=2, dim=1)\n"
                  "    targets = torch.arange(len(a))\n"
                  "    loss_ab = F.cross_entropy(logit_scale * (a @ b.T), targets)\n"
                  "    loss_ba = F.cross_entropy(logit_scale * (b @ a.T), targets)\n"
                  "    return torch.stack([loss_ab, loss_ba]).mean()"),
        ]),
    "nb05_recall_at_k": Exercise(
        wrong=[
            wrong("topk: ties decided in the match's favour", "def recall_at_k(similarity, k):\n"
                  "    target = torch.arange(similarity.shape[0])[:, None]\n"
                  "    rows = (similarity.topk(k, dim=1).indices == target).any(dim=1)\n"
                  "    cols = (similarity.T.topk(k, dim=1).indices == target).any(dim=1)\n"
                  "    return rows.float().mean().item(), cols.float().mean().item()", names=r"[Tt]ies"),
            wrong("rank counts only the strictly larger entries", "def recall_at_k(similarity, k):\n"
                  "    d = similarity.diagonal()\n    rank_rows = (similarity > d[:, None]).sum(dim=1) + 1\n"
                  "    rank_cols = (similarity > d[None, :]).sum(dim=0) + 1\n"
                  "    return (rank_rows <= k).float().mean().item(), (rank_cols <= k).float().mean().item()",
                  names=r"[Tt]ies"),
            wrong("text→image measured on the rows again", "def recall_at_k(similarity, k):\n"
                  "    d = similarity.diagonal()\n    rank_rows = (similarity >= d[:, None]).sum(dim=1)\n"
                  "    return (rank_rows <= k).float().mean().item(), (rank_rows <= k).float().mean().item()",
                  names=r"column"),
            wrong("the pair in the wrong order", "def recall_at_k(similarity, k):\n"
                  "    d = similarity.diagonal()\n    rank_rows = (similarity >= d[:, None]).sum(dim=1)\n"
                  "    rank_cols = (similarity >= d[None, :]).sum(dim=0)\n"
                  "    return (rank_cols <= k).float().mean().item(), (rank_rows <= k).float().mean().item()",
                  names=r"ROWS"),
            wrong("tensors returned, not Python floats", "def recall_at_k(similarity, k):\n"
                  "    d = similarity.diagonal()\n    rank_rows = (similarity >= d[:, None]).sum(dim=1)\n"
                  "    rank_cols = (similarity >= d[None, :]).sum(dim=0)\n"
                  "    return (rank_rows <= k).float().mean(), (rank_cols <= k).float().mean()", names=r"Python floats"),
            subtle("off by one: rank < K", "def recall_at_k(similarity, k):\n"
                   "    d = similarity.diagonal()\n    rank_rows = (similarity >= d[:, None]).sum(dim=1)\n"
                   "    rank_cols = (similarity >= d[None, :]).sum(dim=0)\n"
                   "    return (rank_rows < k).float().mean().item(), (rank_cols < k).float().mean().item()"),
            subtle("K ignored: always Recall@1", "def recall_at_k(similarity, k):\n"
                   "    d = similarity.diagonal()\n    rank_rows = (similarity >= d[:, None]).sum(dim=1)\n"
                   "    rank_cols = (similarity >= d[None, :]).sum(dim=0)\n"
                   "    return (rank_rows <= 1).float().mean().item(), (rank_cols <= 1).float().mean().item()"),
            subtle("the count of hits, not the fraction", "def recall_at_k(similarity, k):\n"
                   "    d = similarity.diagonal()\n    rank_rows = (similarity >= d[:, None]).sum(dim=1)\n"
                   "    rank_cols = (similarity >= d[None, :]).sum(dim=0)\n"
                   "    return float((rank_rows <= k).sum()), float((rank_cols <= k).sum())"),
        ],
        right=[
            right("Python loops over lists", "def recall_at_k(similarity, k):\n    s = similarity.tolist()\n    n = len(s)\n"
                  "    rows = sum(sum(x >= s[i][i] for x in s[i]) <= k for i in range(n)) / n\n"
                  "    cols = sum(sum(s[r][j] >= s[j][j] for r in range(n)) <= k for j in range(n)) / n\n"
                  "    return float(rows), float(cols)"),
            right("one helper for rows, applied to the transpose", "def recall_at_k(similarity, k):\n"
                  "    def rows(s):\n        rank = torch.count_nonzero(s - s.diagonal().unsqueeze(1) >= 0, dim=1)\n"
                  "        return float((rank <= k).double().mean())\n"
                  "    return rows(similarity), rows(similarity.T)"),
        ]),
}
