"""Wrong and right answers to the graded exercises, one module per notebook (nbNN.py defines MUTANTS:
{answer grade_id: Exercise}); tests/mutation.py judges them, tests/test_mutations.py requires the verdicts.

A notebook's module is found by its number: add tests/mutants/nb05.py with MUTANTS for notebook 05.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from mmcourse import classroom

_REPO = Path(__file__).resolve().parents[2]


def _collect() -> dict[str, dict]:
    found = {}
    for name in classroom.discover_assignments(_REPO / "solutions"):
        module = f"tests.mutants.nb{name[:2]}"
        if any(m.name == f"nb{name[:2]}" for m in pkgutil.iter_modules(__path__)):
            found[name] = importlib.import_module(module).MUTANTS
    return found


MUTANTS = _collect()
