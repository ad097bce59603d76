"""The drill in the terminal: `mmcourse quiz` (or `python -m mmcourse.drill`) asks the bank's questions in random
order, checks numeric answers, lets the learner grade the others, and prints the score.
"""

from __future__ import annotations

import argparse
import random
import sys
import textwrap
from collections import Counter

from mmcourse.drill.answers import parse_number
from mmcourse.drill.bank import TOPICS, load_bank



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=10, help="how many questions (default 10; 0 = all that match)")
    parser.add_argument("--topic", action="append", metavar="TOPIC",
                        help="only questions of this topic (repeatable); --topics lists them")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random order (default: new each run)")
    parser.add_argument("--topics", action="store_true", help="list the topics with their number of questions and exit")
    parser.add_argument("--sheet", action="store_true",
                        help="print the chosen questions with their answers (a study sheet) instead of asking")


def add_quiz(subparsers) -> None:
    """Declare `mmcourse quiz` (call from mmcourse.classroom.cli.build_parser)."""
    parser = subparsers.add_parser(
        "quiz", help="drill interview questions on multimodal LLMs, in random order, score at the end",
        description="Ask questions from the course's interview bank in random order. Type your answer (an empty "
                    "line shows the model answer at once); numeric questions are checked, for the others say "
                    "whether your answer covered the model answer. Prints the score at the end.")
    add_arguments(parser)
    parser.set_defaults(run=run_quiz)


def _wrap(text: str, indent: str = "  ") -> str:
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
    try:
        value = float(reply.replace(",", "").replace("−", "-"))
    except ValueError:
        return False
    return abs(value - parse_number(entry["numeric"]["claim"])) <= entry["numeric"]["tolerance"]


def ask(entry: dict, number: int, total: int) -> bool:
    """Ask one question on stdin/stdout, show the model answer; → whether it was answered right."""
    numeric = "numeric" in entry
    print(f"[{number}/{total}] {TOPICS[entry['topic']]}")
    print(_wrap(entry["question"] + (" (answer with a number)" if numeric else ""), indent=""))
    reply = _ask("your answer> ")
    if numeric:
        correct = _numeric_correct(reply, entry)
        print(("correct: " if correct else "not quite: the answer is ") + entry["numeric"]["claim"])
    print("model answer:")
    print(_wrap(entry["answer"]))
    if "notebooks" in entry:
        print(f"  (notebook{'s' if len(entry['notebooks']) > 1 else ''} {', '.join(entry['notebooks'])})")
    if not numeric:
        correct = _ask("did your answer cover it? [y/n]> ").lower() in ("y", "yes")
    print()
    return correct


def run_quiz(args: argparse.Namespace) -> int:
    """Ask the chosen questions, then print the score. Exit 0 (also when the input ends early)."""
    bank = load_bank()
    if args.topics:
        counts = Counter(q["topic"] for q in bank)
        for slug, title in TOPICS.items():
            print(f"{slug:14s} {counts[slug]:3d}  {title}")
        return 0
    try:
        chosen = choose_questions(bank, args.n, args.topic, args.seed)
    except ValueError as err:
        print(f"mmcourse quiz: {err}", file=sys.stderr)
        return 2
    if args.sheet:
        for q in chosen:
            print(f"[{q['id']}] {q['question']}\n{_wrap(q['answer'])}\n")
        return 0
    print(f"mmcourse quiz: {len(chosen)} questions" + (f" (seed {args.seed})" if args.seed is not None else ""))
    print("Answer in your own words and press Enter (an empty line shows the model answer).\n")
    results = []  # (entry, correct)
    try:
        for number, q in enumerate(chosen, 1):
            results.append((q, ask(q, number, len(chosen))))
    except EOFError:
        print(f"\n(input ended after {len(results)} of {len(chosen)} questions)")
    numeric = [correct for q, correct in results if "numeric" in q]
    graded = [correct for q, correct in results if "numeric" not in q]
    print(f"score: {sum(numeric) + sum(graded)}/{len(results)}  (numbers checked: {sum(numeric)}/{len(numeric)}, "
          f"self-graded: {sum(graded)}/{len(graded)})")
    missed = [q["id"] for q, correct in results if not correct]
    if missed:
        print("to revisit: " + ", ".join(missed))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m mmcourse.drill [options]`: the same drill as `mmcourse quiz`."""
    parser = argparse.ArgumentParser(prog="mmcourse quiz", description="Drill the course's interview questions.")
    add_arguments(parser)
    return run_quiz(parser.parse_args(argv))
