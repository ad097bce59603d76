"""A small, explicit training loop: device, autocast, progress, evaluation.

    history = fit(model, loss_fn, train_batches, steps=300, lr=3e-3, eval_fn=evaluate)

`loss_fn(model, batch) -> scalar loss` keeps the loop ignorant of what a batch holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import torch

from mmcourse import runtime


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
