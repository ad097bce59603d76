"""Small helpers shared by the benchmark commands."""

from __future__ import annotations

import platform

import torch


def machine() -> str:
    import os

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, CUDA {'yes' if torch.cuda.is_available() else 'no'}")


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[c for c in columns]] + [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(v.rjust(w) if n and _numeric(v) else v.ljust(w) for v, w in zip(row, widths)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("x%"))
        return True
    except ValueError:
        return False
