"""The drill in the terminal: `mmcourse quiz` (or `python -m mmcourse.drill`) asks the bank's questions in random
order, checks numeric answers, lets the learner grade the others, and prints the score — in English or Chinese
(`--lang zh`; the default follows MMCOURSE_LANG, then the locale: LC_ALL, LC_MESSAGES, LANG starting with "zh").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import textwrap
from collections import Counter

from mmcourse.drill.answers import parse_number
from mmcourse.drill.bank import LANGUAGES, TOPICS, is_built, load_bank, localized, reference_line, topic_title

# What the drill says, in each language (the bank's own text comes from questions.json).
MESSAGES = {
    "en": {
        "numeric_hint": " (answer with a number)", "prompt": "your answer> ", "correct": "correct: ",
        "wrong": "not quite: the answer is ", "model_answer": "model answer:", "notebook": "notebook", "notebooks": "notebooks",
        "covered": "did your answer cover it? [y/n]> ", "header": "mmcourse quiz: {n} questions", "seed": " (seed {seed})",
        "intro": "Answer in your own words and press Enter (an empty line shows the model answer).\n",
        "ended": "\n(input ended after {done} of {total} questions)",
        "score": "score: {right}/{done}  (numbers checked: {numeric_right}/{numeric}, self-graded: {open_right}/{open})",
        "revisit": "to revisit: ",
    },
    "zh": {
        "numeric_hint": "（请用数字回答）", "prompt": "你的答案> ", "correct": "正确：", "wrong": "不太对，答案是 ",
        "model_answer": "参考答案：", "notebook": "notebook", "notebooks": "notebook",
        "covered": "你的回答覆盖了要点吗？[y/n，是/否]> ", "header": "mmcourse quiz：共 {n} 题", "seed": "（seed {seed}）",
        "intro": "用自己的话回答，按回车提交（直接回车会立刻显示参考答案）。\n",
        "ended": "\n（输入在第 {done} 题后结束，共 {total} 题）",
        "score": "得分：{right}/{done}（数值题 {numeric_right}/{numeric}，自评题 {open_right}/{open}）",
        "revisit": "需要复习：",
    },
}
YES = {"y", "yes", "是", "对", "是的", "嗯", "覆盖了"}
LANG_ENV = "MMCOURSE_LANG"


def default_language(environ: dict | None = None) -> str:
    """The drill's language: MMCOURSE_LANG if set, else "zh" when the locale (LC_ALL, LC_MESSAGES, LANG, the first
    one set, as POSIX orders them) starts with "zh", else "en"."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(LANG_ENV, "").strip().lower()
    if chosen:
        _check_lang_setting(chosen)
        return chosen
    locale = next((environ[k] for k in ("LC_ALL", "LC_MESSAGES", "LANG") if environ.get(k)), "")
    return "zh" if locale.lower().startswith("zh") else "en"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=10, help="how many questions (default 10; 0 = all that match)")
    parser.add_argument("--topic", action="append", metavar="TOPIC",
                        help="only questions of this topic (repeatable); --topics lists them")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random order (default: new each run)")
    parser.add_argument("--topics", action="store_true", help="list the topics with their number of questions and exit")
    parser.add_argument("--sheet", action="store_true",
                        help="print the chosen questions with their answers (a study sheet) instead of asking")
    parser.add_argument("--lang", choices=LANGUAGES, default=None,
                        help=f"language of questions, answers and messages: en or zh (中文); default: ${LANG_ENV}, "
                             "else zh when the locale (LC_ALL / LANG) is Chinese, else en")


def add_quiz(subparsers) -> None:
    """Declare `mmcourse quiz` (call from mmcourse.classroom.cli.build_parser)."""
    parser = subparsers.add_parser(
        "quiz", help="drill interview questions on multimodal LLMs, in random order, score at the end",
        description="Ask questions from the course's interview bank in random order. Type your answer (an empty "
                    "line shows the model answer at once); numeric questions are checked, for the others say "
                    "whether your answer covered the model answer. Prints the score at the end. "
                    "--lang zh asks in Chinese.")
    add_arguments(parser)
    parser.set_defaults(run=run_quiz)


def _wrap(text: str, lang: str, indent: str = "  ") -> str:
    """English is wrapped at 88 columns; Chinese, which has no spaces to break at, is left to the terminal."""
    if lang == "zh":
        return indent + text
    return textwrap.fill(text, width=88, initial_indent=indent, subsequent_indent=indent)


def _ask(prompt: str) -> str:
    """One line from stdin (EOFError when the input has ended). Piped input is echoed, so a transcript reads well."""
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        print()
        raise EOFError
    if not sys.stdin.isatty():
        print(line.rstrip("\n"))
    return line.strip()


def choose_questions(bank: list[dict], n: int = 10, topics: list[str] | None = None,
                     seed: int | None = None) -> list[dict]:
    """n questions (0 = all) of the given topics, in a random order that `seed` makes repeatable."""
    if n < 0:
        raise ValueError(f"n must be 0 (all) or more, got {n}")
    chosen = bank
    if topics:
        wanted = [t.lower() for t in topics]
        unknown = [t for t in wanted if t not in TOPICS]
        if unknown:
            raise ValueError(f"unknown topic {', '.join(unknown)}; choose from: {', '.join(TOPICS)}")
        chosen = [q for q in bank if q["topic"] in wanted]
    order = random.Random(seed).sample(chosen, len(chosen))
    return order if n == 0 else order[:n]


def _numeric_correct(reply: str, entry: dict) -> bool:
    """The reply as a number (thousands separators, a Unicode minus, full-width digits and commas allowed)."""
    try:
        value = float(reply.replace(",", "").replace("，", "").replace("−", "-"))
    except ValueError:
        return False
    return abs(value - parse_number(entry["numeric"]["claim"])) <= entry["numeric"]["tolerance"]


def ask(entry: dict, number: int, total: int, lang: str = "en") -> bool:
    """Ask one question on stdin/stdout, show the model answer; → whether it was answered right."""
    say = MESSAGES[lang]
    numeric = "numeric" in entry
    print(f"[{number}/{total}] {topic_title(entry['topic'], lang)}")
    print(_wrap(localized(entry, "question", lang) + (say["numeric_hint"] if numeric else ""), lang, indent=""))
    reply = _ask(say["prompt"])
    if numeric:
        correct = _numeric_correct(reply, entry)
        print((say["correct"] if correct else say["wrong"]) + entry["numeric"]["claim"])
    print(say["model_answer"])
    print(_wrap(localized(entry, "answer", lang), lang))
    if "notebooks" in entry:
        print(f"  ({say['notebooks' if len(entry['notebooks']) > 1 else 'notebook']} {', '.join(entry['notebooks'])})")
    if not is_built(entry):
        print(f"  ({reference_line(entry, lang)})")
    if not numeric:
        correct = _ask(say["covered"]).lower() in YES
    print()
    return correct


def run_quiz(args: argparse.Namespace) -> int:
    """Ask the chosen questions, then print the score. Exit 0 (also when the input ends early)."""
    try:
        lang = args.lang or default_language()
    except ValueError as err:
        print(f"mmcourse quiz: {err}", file=sys.stderr)
        return 2
    say = MESSAGES[lang]
    bank = load_bank()
    if args.topics:
        counts = Counter(q["topic"] for q in bank)
        for slug in TOPICS:
            print(f"{slug:14s} {counts[slug]:3d}  {topic_title(slug, lang)}")
        return 0
    try:
        chosen = choose_questions(bank, args.n, args.topic, args.seed)
    except ValueError as err:
        print(f"mmcourse quiz: {err}", file=sys.stderr)
        return 2
    if args.sheet:
        for q in chosen:
            reference = "" if is_built(q) else f"  ({reference_line(q, lang)})\n"
            print(f"[{q['id']}] {localized(q, 'question', lang)}\n{_wrap(localized(q, 'answer', lang), lang)}\n{reference}")
        return 0
    print(say["header"].format(n=len(chosen)) + (say["seed"].format(seed=args.seed) if args.seed is not None else ""))
    print(say["intro"])
    results = []  # (entry, correct)
    try:
        for number, q in enumerate(chosen, 1):
            results.append((q, ask(q, number, len(chosen), lang)))
    except EOFError:
        print(say["ended"].format(done=len(results), total=len(chosen)))
    numeric = [correct for q, correct in results if "numeric" in q]
    graded = [correct for q, correct in results if "numeric" not in q]
    print(say["score"].format(right=sum(numeric) + sum(graded), done=len(results), numeric_right=sum(numeric),
                              numeric=len(numeric), open_right=sum(graded), open=len(graded)))
    missed = [q["id"] for q, correct in results if not correct]
    if missed:
        print(say["revisit"] + ", ".join(missed))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m mmcourse.drill [options]`: the same drill as `mmcourse quiz`."""
    parser = argparse.ArgumentParser(prog="mmcourse quiz", description="Drill the course's interview questions.")
    add_arguments(parser)
    return run_quiz(parser.parse_args(argv))


def _check_lang_setting(value: str) -> None:
    if value not in LANGUAGES:
        raise ValueError(f"{LANG_ENV}={value!r} is not a language of the drill; set it to one of "
                         f"{', '.join(LANGUAGES)} (or unset it to follow the locale)")
