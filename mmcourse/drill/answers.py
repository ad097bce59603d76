"""Numbers in answers: find every number an answer states, and recompute the checks that claim them.

Every number is covered in one of three ways (`uncovered_numbers` finds the rest):
  1. it is the claim of a check, whose `expr` is evaluated against facts.FACTS;
  2. it is a literal input of a check's expression (224 and 16 in `vit_tokens(224, 16)`);
  3. it is whitelisted: the small integers 0, 1 and 2 (mask values, "stage 1", "k + 1"), years in
     citations ("Radford et al., 2021"), arXiv ids ("arXiv:2304.08485"), and digits inside names, which the
     number pattern skips (ViT-B/16, BLIP-2, LLaVA-1.5, Recall@5, log10, fp16, LCS-558K).
A claim matches its value when they agree to the claim's last digit: "14.3" holds for 14.2857.
"""

from __future__ import annotations

import ast
import re

from mmcourse.drill.facts import FACTS, SAFE_NAMES


# A number: not glued to a name (ViT-B/16, BLIP-2, LLaVA-1.5, Recall@5, fp16, 2nd), with an optional
# minus sign, thousands separated by commas, decimals by a point.
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.@])(?<![A-Za-z]-)(?<![A-Z]/)[-−]?\d+(?:,\d{3})*(?:\.\d+)?(?![A-Za-z0-9_])")
# A year in a citation: "Radford et al., 2021", "Griffin and Lim, 1984".
_CITATION = re.compile(r"[A-Z][\w\-]+(?: et al\.| and [A-Z][\w\-]+)?, (19\d\d|20[0-2]\d)\b")
# An arXiv identifier in a reference: "arXiv:2304.08485", "arXiv:1711.00937v2".
_ARXIV = re.compile(r"arXiv:\s?\d{4}\.\d{4,5}(?:v\d+)?")
WHITELIST = (0, 1, 2)  # small integers: mask values, "stage 1", "k + 1", "stride 2"


def parse_number(text: str) -> float | None:
    """'480,000' → 480000.0, '−1' → -1.0; None if `text` is not one number."""
    text = text.strip().replace("−", "-")
    if not re.fullmatch(r"-?\d+(?:,\d{3})*(?:\.\d+)?", text):
        return None
    return float(text.replace(",", ""))


def numbers_in(text: str) -> list[str]:
    """The numbers a text states, as written, without the years of citations and the digits of arXiv ids."""
    years = {m.span(1) for m in _CITATION.finditer(text)}
    ids = [m.span() for m in _ARXIV.finditer(text)]
    return [m.group() for m in _NUMBER.finditer(text) if m.span() not in years
            and not any(start <= m.start() and m.end() <= end for start, end in ids)]


def _literals(expr: str) -> set[float]:
    """The numeric literals of a check expression (the inputs it states)."""
    found = set()
    for node in ast.walk(ast.parse(expr, mode="eval")):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            found.add(float(node.value))
    return found


def uncovered_numbers(entry: dict) -> list[str]:
    """Numbers in the answer that no check claims, no check expression takes as input, and WHITELIST does not allow."""
    claimed = {parse_number(c["claim"]) for c in entry["checks"]}
    inputs = set().union(*(_literals(c["expr"]) for c in entry["checks"])) if entry["checks"] else set()
    missing = []
    for number in numbers_in(entry["answer"]):
        value = parse_number(number)
        if value in claimed or value in inputs or abs(value) in WHITELIST:
            continue
        missing.append(number)
    return missing


def evaluate(expr: str) -> float:
    """Evaluate a check expression; its only names are FACTS and SAFE_NAMES (len, sum, min, max, abs, round,
    exp, log, sqrt)."""
    names = {"__builtins__": {}, **SAFE_NAMES, **FACTS}
    value = eval(compile(expr, "<check>", "eval"), names)  # noqa: S307 - our own file, no builtins
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"check {expr!r} gave {value!r}; a check must compute one number")
    return value


def claim_holds(claim: str, value: float) -> bool:
    """Do `claim` (as written) and `value` agree to the claim's last digit? '14.3' and 14.2857 do."""
    number = parse_number(claim)
    decimals = len(claim.split(".")[1]) if "." in claim else 0
    return abs(value - number) <= 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(number))


def verify(entry: dict) -> list[dict]:
    """Recompute an entry's checks: [{'claim', 'expr', 'value', 'ok'}], 'ok' False where the answer is wrong."""
    rows = []
    for check in entry["checks"]:
        value = evaluate(check["expr"])
        rows.append({"claim": check["claim"], "expr": check["expr"], "value": value,
                     "ok": claim_holds(check["claim"], value)})
    return rows
