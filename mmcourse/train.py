"""A small, explicit training loop (device, autocast, progress, evaluation), and what multimodal training adds.

    history = fit(model, loss_fn, train_batches, steps=300, lr=3e-3, eval_fn=evaluate)
    inputs = modality_dropout({"text": t, "audio": a}, p=0.5, generator=g)   # some modalities masked, per sample
    loss.backward(); grad_norms({"text": model.text_branch, "audio": model.audio_branch})   # {"text": 0.4, ...}

`loss_fn(model, batch) -> scalar loss` keeps the loop ignorant of what a batch holds. A modality that a sample
lacks is a Tokens whose padding_mask is True everywhere in that sample's row: fusion that pools or attends over
real tokens only then ignores it, exactly as it ignores padding; no zeros are fed in its place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn as nn

from mmcourse import runtime
from mmcourse.tokens import Tokens, check_modalities, is_present


def to_device(batch, device):
    """Move every tensor in a (nested) dict/list/tuple batch to `device`; leave other values alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def random_batches(tensors: dict[str, torch.Tensor], batch_size: int, seed: int = 0) -> Iterator[dict]:
    """Endless random mini-batches (sampled with a seeded generator) from equally long tensors."""
    sizes = {k: v.shape[0] for k, v in tensors.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"all tensors need the same first dimension, got {sizes}")
    n = next(iter(sizes.values()))
    generator = torch.Generator().manual_seed(seed)
    while True:
        index = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        yield {k: v[index] for k, v in tensors.items()}


def fit(model: torch.nn.Module, loss_fn: Callable, batches: Iterable, steps: int, lr: float = 1e-3,
        weight_decay: float = 0.01, device: torch.device | None = None, eval_fn: Callable | None = None,
        eval_every: int = 50, log: Callable[[str], None] | None = print) -> list[dict]:
    """Train `model` for `steps` AdamW steps with a one-cycle learning rate; return the history.

    Every `eval_every` steps (and at the end) `eval_fn(model)` is called in eval mode under
    torch.inference_mode and its dict of metrics is logged.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = device or runtime.get_device()
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    history, start, iterator = [], time.perf_counter(), iter(batches)
    for step in range(1, steps + 1):
        batch = to_device(next(iterator), device)
        with runtime.autocast(device):
            loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % eval_every == 0 or step == steps:
            record = {"step": step, "loss": loss.item(), "seconds": round(time.perf_counter() - start, 1)}
            if eval_fn is not None:
                model.eval()
                with torch.inference_mode():
                    record.update(eval_fn(model))
                model.train()
            history.append(record)
            if log:
                log("  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
    model.eval()
    return history


# ---------------------------------------------------------------- training with missing modalities


def modality_dropout(inputs: dict[str, Tokens], p: float, generator: torch.Generator | None = None) -> dict[str, Tokens]:
    """Drop whole modalities per sample during training, never all of a sample's modalities.

    inputs {name: Tokens (B, L_m, D_m)} → the same dict with new padding masks: for each sample, each
    modality is dropped with probability p (all its tokens marked as padding); a sample that would lose
    every modality it has keeps one of them, chosen at random. States are not touched and nothing is
    rescaled (unlike nn.Dropout): the point is to train on the subsets of modalities met at test time.
    Because of the "keep one" rule, the actual drop rate is a little below p (p − p²/2 for two modalities).
    Random numbers come from `generator` (CPU) if given, so a seeded generator makes it reproducible.
    """
    batch = check_modalities(inputs)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    names = list(inputs)
    present = torch.stack([is_present(inputs[m]).cpu() for m in names], dim=1)  # (B, M)
    drop = (torch.rand(batch, len(names), generator=generator) < p) & present  # (B, M)
    emptied = present.any(dim=1) & ~(present & ~drop).any(dim=1)  # (B,) would lose everything it has
    scores = torch.rand(batch, len(names), generator=generator).masked_fill(~present, -1.0)
    keep = scores.argmax(dim=1)  # (B,) a random present modality
    drop[emptied, keep[emptied]] = False
    return {m: Tokens(inputs[m].states, inputs[m].padding_mask | drop[:, j, None].to(inputs[m].padding_mask.device))
            for j, m in enumerate(names)}


# ---------------------------------------------------------------- per-modality gradients


def grad_norms(groups: dict[str, nn.Module | Iterable[torch.Tensor]]) -> dict[str, float]:
    """After loss.backward(): the L2 norm of each group's gradients, as if they were one long vector.

    groups {name: a module or its parameters} → {name: ‖∇‖₂}. A parameter without a gradient (unused in
    this step, or frozen) counts as zero. Call it between backward() and optimizer.step(): zero_grad
    (set_to_none) wipes the gradients.
    """
    if not isinstance(groups, dict) or not groups:
        raise ValueError("groups must be a non-empty dict {name: module or parameters}")
    norms = {}
    for name, group in groups.items():
        params = list(group.parameters()) if isinstance(group, nn.Module) else list(group)
        if not params:
            raise ValueError(f"group {name!r} has no parameters")
        squares = [p.grad.detach().float().pow(2).sum() for p in params if p.grad is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms
