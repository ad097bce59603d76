"""The question bank (mmcourse/drill/questions.json): its topics, its schema, loading, and study sheets.

The bank is data, one entry per question:

    {"id": "vit-tokens", "topic": "vit", "question": "...", "answer": "... 197 tokens ...",
     "checks": [{"claim": "197", "expr": "vit_tokens(224, 16)"}],
     "numeric": {"claim": "197", "tolerance": 0},      optional: the drill asks for this number
     "question_zh": "...",                              optional: the blog post's original Chinese
     "notebooks": ["03"]}                               optional: where the course builds it
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mmcourse.drill.answers import parse_number, verify

BANK_PATH = Path(__file__).with_name("questions.json")

TOPICS = {  # slug → title, in the order the notebook and the drill present them
    "blog": "The blog post's questions",
    "vit": "Images: ViT patches and position embeddings",
    "masks": "Attention and padding masks",
    "whisper": "Audio: Whisper's front end",
    "tokenisation": "Discrete image and audio tokens",
    "contrastive": "Shared spaces: CLIP, SigLIP, the modality gap, ImageBind",
    "objectives": "Pretraining objectives: ITC, ITM, ITG",
    "fusion": "Fusion: early, late, tensor, cross-attention",
    "connectors": "Into the LLM: projector, Q-Former, Flamingo's gate, splicing",
    "resolution": "High resolution: tiles, packing, pixel shuffle, pruning, KV cache",
    "positions": "Positions: RoPE, 2-D RoPE, M-RoPE, interpolation",
    "video": "Video: frame sampling, tokens per second, pooling",
    "omni": "Audio LLMs and omni models: pooling, codecs, Thinker–Talker, TMRoPE",
    "training": "Training stages: what is frozen",
    "capstone": "The capstone: LLaVA's recipe on SmolLM2-135M",
    "decoding": "Decoding strategies",
    "generation": "Image and audio decoders",
    "evaluation": "Evaluation: Recall@K, BLEU, CIDEr, CLIPScore, WER",
    "hallucination": "Hallucination and its measures",
    "robustness": "Missing modalities and modality imbalance",
}


ENTRY_KEYS = {"id", "topic", "question", "answer", "checks"}
OPTIONAL_KEYS = {"question_zh", "answer_zh", "numeric", "notebooks"}
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def validate_bank(bank: list[dict]) -> None:
    """Raise ValueError listing every schema problem of the bank (keys, types, ids, topics, checks)."""
    problems = []
    if not isinstance(bank, list) or not bank:
        raise ValueError("the bank must be a non-empty JSON list of questions")
    seen = set()
    for n, entry in enumerate(bank):
        where = f"entry {n} ({entry.get('id', '?') if isinstance(entry, dict) else '?'})"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        missing, extra = ENTRY_KEYS - set(entry), set(entry) - ENTRY_KEYS - OPTIONAL_KEYS
        if missing:
            problems.append(f"{where}: missing keys {sorted(missing)}")
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)} (allowed: {sorted(ENTRY_KEYS | OPTIONAL_KEYS)})")
        if missing:
            continue
        if not isinstance(entry["id"], str) or not _ID.match(entry["id"]):
            problems.append(f"{where}: id must be lowercase words joined by '-', got {entry['id']!r}")
        elif entry["id"] in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(entry["id"])
        if entry["topic"] not in TOPICS:
            problems.append(f"{where}: unknown topic {entry['topic']!r}; use one of {list(TOPICS)}")
        for key in ("question", "answer"):
            if not isinstance(entry[key], str) or len(entry[key].strip()) < 10:
                problems.append(f"{where}: {key} must be a sentence")
        if "question_zh" in entry and not (isinstance(entry["question_zh"], str) and _CJK.search(entry["question_zh"])):
            problems.append(f"{where}: question_zh must be the original Chinese text")
        checks = entry["checks"]
        if not isinstance(checks, list) or not all(isinstance(c, dict) and set(c) == {"claim", "expr"}
                                                   and isinstance(c["claim"], str) and isinstance(c["expr"], str)
                                                   for c in checks):
            problems.append(f"{where}: checks must be a list of {{'claim': str, 'expr': str}}")
            continue
        for c in checks:
            if parse_number(c["claim"]) is None:
                problems.append(f"{where}: claim {c['claim']!r} is not a number as written in the answer")
        if "numeric" in entry:
            numeric = entry["numeric"]
            if not (isinstance(numeric, dict) and set(numeric) == {"claim", "tolerance"}
                    and isinstance(numeric["tolerance"], (int, float)) and numeric["tolerance"] >= 0):
                problems.append(f"{where}: numeric must be {{'claim': str, 'tolerance': number ≥ 0}}")
            elif numeric["claim"] not in {c["claim"] for c in checks}:
                problems.append(f"{where}: numeric claim {numeric['claim']!r} must be one of the checks' claims")
        if "notebooks" in entry and not (isinstance(entry["notebooks"], list)
                                         and all(isinstance(nb, str) and re.match(r"^\d\d$", nb)
                                                 for nb in entry["notebooks"])):
            problems.append(f"{where}: notebooks must be a list of two-digit numbers as strings, e.g. ['03']")
    if problems:
        raise ValueError("questions.json has problems:\n  " + "\n  ".join(problems))


def load_bank(path: str | Path | None = None) -> list[dict]:
    """The question bank (a list of dicts, in file order), validated."""
    bank = json.loads(Path(path or BANK_PATH).read_text(encoding="utf-8"))
    validate_bank(bank)
    return bank


def questions(topic: str | None = None, ids: list[str] | None = None, bank: list[dict] | None = None) -> list[dict]:
    """The bank's questions, optionally of one topic or with the given ids (in that order)."""
    bank = load_bank() if bank is None else bank
    if topic is not None and topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; choose one of {', '.join(TOPICS)}")
    if ids is not None:
        by_id = {q["id"]: q for q in bank}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ValueError(f"no questions with ids {unknown}; see [q['id'] for q in drill.load_bank()]")
        return [by_id[i] for i in ids]
    return [q for q in bank if topic is None or q["topic"] == topic]


# ---------------------------------------------------------------- rendering


def _format_value(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.6g}"


def checks_markdown(entry: dict) -> str:
    """A Markdown table of the entry's checks, recomputed now: number | computed by | value."""
    rows = verify(entry)
    if not rows:
        return "*(this answer states no number that needs a check)*"
    lines = ["| number in the answer | computed by | value | holds |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | `{r['expr']}` | {_format_value(r['value'])} | {'✓' if r['ok'] else '✗'} |")
    return "\n".join(lines)


def as_markdown(entries: list[dict] | None = None, *, topic: str | None = None, ids: list[str] | None = None,
                answers: bool = True, checks: bool = False) -> str:
    """Questions (and answers, and recomputed checks) as Markdown, grouped by topic."""
    entries = questions(topic=topic, ids=ids) if entries is None else entries
    parts, current = [], None
    for q in entries:
        if q["topic"] != current:
            current = q["topic"]
            parts.append(f"### {TOPICS[current]}")
        head = f"**{q['question']}**" + (f"  \n{q['question_zh']}" if "question_zh" in q else "")
        parts.append(f"{head} <small>`{q['id']}`</small>")
        if answers:
            parts.append("> " + q["answer"])
            if checks and q["checks"]:
                parts.append(checks_markdown(q))
    return "\n\n".join(parts)
