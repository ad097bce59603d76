"""The building blocks of the mutants: wrong and right answers to one exercise, judged by tests/mutation.py.

Each answer cell (by grade_id) gets plausible wrong answers — the blog's own bugs where they apply, off-by-one
shifts, the other mask convention, the wrong axis or scale, in-place mutation of an input, the wrong order, a
missing term — and right answers written differently from the solution (another algorithm or library call, in
place where the task allows it). `warned=True` marks a mistake the instructions warn about: the visible tests
must catch it, and `names` is a regex that the failure message must match (the message names the mistake).
`loses` names the test cell (its grade_id) whose points a wrong answer must lose at grading, where an exercise is
graded in several cells (notebook 13's quiz: the multiple-choice and the numeric answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Variant:
    name: str
    source: str
    warned: bool = False
    names: str = ""
    loses: str = ""


@dataclass
class Exercise:
    wrong: list[Variant] = field(default_factory=list)
    right: list[Variant] = field(default_factory=list)


def wrong(name: str, source: str, names: str = "", loses: str = "") -> Variant:
    """A mistake the instructions warn about: caught by the visible tests, with a message matching `names`."""
    return Variant(name, source, warned=True, names=names, loses=loses)


def subtle(name: str, source: str, loses: str = "") -> Variant:
    """A mistake the instructions do not spell out: the hidden tests must catch it (the visible ones may)."""
    return Variant(name, source, loses=loses)


def right(name: str, source: str) -> Variant:
    return Variant(name, source)
