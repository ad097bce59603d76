"""The question bank (mmcourse/drill/questions.json): its topics, its schema, loading, and study sheets.

The bank is data, one entry per question:

    {"id": "vit-tokens", "topic": "vit", "question": "...", "answer": "... 197 tokens ...",
     "question_zh": "...", "answer_zh": "... 197 个 token ...",   the same in Chinese (the blog's questions verbatim),
                                                                  with the same numbers, written as digits
     "checks": [{"claim": "197", "expr": "vit_tokens(224, 16)"}],
     "numeric": {"claim": "197", "tolerance": 0},      optional: the drill asks for this number
     "notebooks": ["03"]}                               optional: where the course builds it

A question about something the course does not build (video LLMs, codecs, Thinker–Talker, DPO, …) says so:

     "built": false,                                    the course does not implement this subject
     "reference": "Qwen2.5-Omni Technical Report (Xu et al., 2025), arXiv:2503.20215"
                                                        the paper to read, with its arXiv id

and its answers say it plainly: the English one "The course does not build this" (NOT_BUILT), the Chinese one
"本课程没有实现" (NOT_BUILT_ZH), each naming the reference's arXiv id(s). Study sheets and `mmcourse quiz` show the
reference under the answer.
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

TOPICS_ZH = {  # the same topics in Chinese, for `mmcourse quiz --lang zh` and the bilingual sheets
    "blog": "原博客的面试题",
    "vit": "图像：ViT 的 patch 与位置编码",
    "masks": "注意力掩码与 padding 掩码",
    "whisper": "音频：Whisper 的前端",
    "tokenisation": "离散的图像与音频 token",
    "contrastive": "共享空间：CLIP、SigLIP、模态鸿沟、ImageBind",
    "objectives": "预训练目标：ITC、ITM、ITG",
    "fusion": "融合：早期、后期、张量融合、交叉注意力",
    "connectors": "接入 LLM：投影层、Q-Former、Flamingo 的门控、拼接",
    "resolution": "高分辨率：切片、打包、pixel shuffle、剪枝、KV cache",
    "positions": "位置编码：RoPE、2-D RoPE、M-RoPE、插值",
    "video": "视频：抽帧、每秒 token 数、池化",
    "omni": "音频 LLM 与全模态模型：池化、codec、Thinker–Talker、TMRoPE",
    "training": "训练阶段：冻结哪些部分",
    "capstone": "capstone：在 SmolLM2-135M 上复现 LLaVA",
    "decoding": "解码策略",
    "generation": "图像与音频解码器",
    "evaluation": "评测：Recall@K、BLEU、CIDEr、CLIPScore、WER",
    "hallucination": "幻觉及其度量",
    "robustness": "模态缺失与模态不平衡",
}


ENTRY_KEYS = {"id", "topic", "question", "answer", "question_zh", "answer_zh", "checks"}
OPTIONAL_KEYS = {"numeric", "notebooks", "built", "reference"}
NOT_BUILT = "The course does not build this"  # in the English answer of every entry with "built": false
NOT_BUILT_ZH = "本课程没有实现"  # in its Chinese answer
_ARXIV_ID = re.compile(r"arXiv:\d{4}\.\d{4,5}")
LANGUAGES = ("en", "zh")
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
        for key in ("question_zh", "answer_zh"):
            if not (isinstance(entry[key], str) and _CJK.search(entry[key])):
                problems.append(f"{where}: {key} must be Chinese text (the {key[:-3]} as a Chinese-speaking engineer "
                                f"would say it, numbers as digits)")
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
        problems.extend(f"{where}: {problem}" for problem in _built_problems(entry))
    if problems:
        raise ValueError("questions.json has problems:\n  " + "\n  ".join(problems))


def _built_problems(entry: dict) -> list[str]:
    """What is wrong with an entry's "built" / "reference" pair (see the module docstring)."""
    if "built" not in entry:
        return ['"reference" belongs to an entry with "built": false'] if "reference" in entry else []
    if entry["built"] is not False:
        return ['"built" is either false (with a "reference") or left out (the course builds it); got '
                f'{entry["built"]!r}']
    reference = entry.get("reference")
    if not (isinstance(reference, str) and _ARXIV_ID.search(reference)):
        return ['an entry with "built": false needs "reference": the paper to read with its arXiv id, '
                'e.g. "Qwen2.5-Omni Technical Report (Xu et al., 2025), arXiv:2503.20215"']
    problems = []
    ids = _ARXIV_ID.findall(reference)
    for key, sentence in (("answer", NOT_BUILT), ("answer_zh", NOT_BUILT_ZH)):
        if sentence.lower() not in entry[key].lower():
            problems.append(f"{key} must say plainly that the course does not build this: {sentence!r}")
        missing = [i for i in ids if i not in entry[key]]
        if missing:
            problems.append(f"{key} must name the paper to read: {', '.join(missing)}")
    return problems


def is_built(entry: dict) -> bool:
    """Does the course build what the entry asks about? (False for entries marked "built": false.)"""
    return entry.get("built", True) is not False


def reference_line(entry: dict, lang: str = "en") -> str:
    """'Not built in the course; read: <reference>' (or its Chinese), '' for entries the course builds."""
    _check_language(lang)
    if is_built(entry):
        return ""
    return (f"{NOT_BUILT_ZH}；参考：{entry['reference']}" if lang == "zh"
            else f"Not built in the course; read: {entry['reference']}")


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


# ---------------------------------------------------------------- languages and rendering


def topic_title(slug: str, lang: str = "en") -> str:
    """A topic's title in English ("en") or Chinese ("zh")."""
    _check_language(lang)
    return (TOPICS_ZH if lang == "zh" else TOPICS)[slug]


def localized(entry: dict, key: str, lang: str = "en") -> str:
    """An entry's "question" or "answer" in English ("en") or Chinese ("zh": its question_zh / answer_zh)."""
    _check_language(lang)
    return entry[key + "_zh"] if lang == "zh" else entry[key]


def _check_language(lang: str, allowed: tuple[str, ...] = LANGUAGES) -> None:
    if lang not in allowed:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(allowed)}")


def _format_value(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.6g}"


def checks_markdown(entry: dict, lang: str = "en") -> str:
    """A Markdown table of the entry's checks, recomputed now: number | computed by | value (headers in `lang`)."""
    _check_language(lang)
    rows = verify(entry)
    if not rows:
        return "*(答案里没有需要核对的数字)*" if lang == "zh" else "*(this answer states no number that needs a check)*"
    head = "| 答案中的数字 | 计算方式 | 值 | 成立 |" if lang == "zh" else "| number in the answer | computed by | value | holds |"
    lines = [head, "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | `{r['expr']}` | {_format_value(r['value'])} | {'✓' if r['ok'] else '✗'} |")
    return "\n".join(lines)


def as_markdown(entries: list[dict] | None = None, *, topic: str | None = None, ids: list[str] | None = None,
                answers: bool = True, checks: bool = False, lang: str = "both") -> str:
    """Questions (and answers, and recomputed checks) as Markdown, grouped by topic; lang "en", "zh", or "both"
    (English first, the Chinese under it)."""
    _check_language(lang, (*LANGUAGES, "both"))
    langs = LANGUAGES if lang == "both" else (lang,)
    entries = questions(topic=topic, ids=ids) if entries is None else entries
    parts, current = [], None
    for q in entries:
        if q["topic"] != current:
            current = q["topic"]
            parts.append("### " + " · ".join(topic_title(current, one) for one in langs))
        head = "  \n".join(f"**{localized(q, 'question', one)}**" if one == langs[0] else localized(q, "question", one)
                           for one in langs)
        parts.append(f"{head} <small>`{q['id']}`</small>")
        if answers:
            parts.extend("> " + localized(q, "answer", one) for one in langs)
            if not is_built(q):
                parts.append("  \n".join(f"*{reference_line(q, one)}*" for one in langs))
            if checks and q["checks"]:
                parts.append(checks_markdown(q, "zh" if lang == "zh" else "en"))
    return "\n\n".join(parts)
