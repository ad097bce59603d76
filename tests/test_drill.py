"""`mmcourse quiz`: random order (seedable), --n, --topic, answers from stdin, model answers, score at the end; in
English or Chinese (--lang, MMCOURSE_LANG, the locale)."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys

import pytest

from mmcourse import drill

BANK = drill.load_bank()


def run_drill(monkeypatch, capsys, argv, lines):
    """Run the drill in-process with `lines` as its input; → (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code = drill.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def right_answers(chosen):
    """Input that answers every question right: the number for numeric ones, 'y' after the open ones."""
    lines = []
    for q in chosen:
        lines += [q["numeric"]["claim"]] if "numeric" in q else ["my answer", "y"]
    return lines


def wrong_answers(chosen):
    lines = []
    for q in chosen:
        lines += ["-1"] if "numeric" in q else ["no idea", "n"]
    return lines


def test_all_right_scores_full_marks(monkeypatch, capsys):
    chosen = drill.choose_questions(BANK, 6, ["vit", "whisper", "fusion"], seed=4)
    assert any("numeric" in q for q in chosen) and any("numeric" not in q for q in chosen)
    code, out, _ = run_drill(monkeypatch, capsys, ["--n", "6", "--topic", "vit", "--topic", "whisper",
                                              "--topic", "fusion", "--seed", "4"], right_answers(chosen))
    assert code == 0
    for number, q in enumerate(chosen, 1):
        assert f"[{number}/6]" in out and q["answer"].split()[0] in out
    n_numeric = sum("numeric" in q for q in chosen)
    n_open = 6 - n_numeric
    assert f"score: 6/6  (numbers checked: {n_numeric}/{n_numeric}, self-graded: {n_open}/{n_open})" in out
    assert "to revisit" not in out


def test_all_wrong_scores_zero_and_lists_what_to_revisit(monkeypatch, capsys):
    chosen = drill.choose_questions(BANK, 4, ["connectors"], seed=1)
    argv = ["--n", "4", "--topic", "connectors", "--seed", "1"]
    code, out, _ = run_drill(monkeypatch, capsys, argv, wrong_answers(chosen))
    assert code == 0
    assert "score: 0/4" in out
    assert "to revisit: " + ", ".join(q["id"] for q in chosen) in out
    if any("numeric" in q for q in chosen):
        assert "not quite: the answer is" in out


def test_numeric_answers_accept_thousands_separators(monkeypatch, capsys):
    q = next(q for q in BANK if q["id"] == "token-budget")
    assert drill.drill._numeric_correct("2,020", q) and drill.drill._numeric_correct(" 2020 ", q)
    assert not drill.drill._numeric_correct("2021", q) and not drill.drill._numeric_correct("about 2000", q)


def test_order_is_random_and_seedable():
    first = [q["id"] for q in drill.choose_questions(BANK, 0, seed=7)]
    again = [q["id"] for q in drill.choose_questions(BANK, 0, seed=7)]
    other = [q["id"] for q in drill.choose_questions(BANK, 0, seed=8)]
    assert first == again and first != other
    assert sorted(first) == sorted(q["id"] for q in BANK)  # n = 0: every question once
    assert len(drill.choose_questions(BANK, 5, seed=1)) == 5


def test_topic_filter(monkeypatch, capsys):
    code, out, _ = run_drill(monkeypatch, capsys, ["--topic", "masks", "--n", "0", "--seed", "0"], ["", "n"] * 3)
    assert code == 0
    headers = [line for line in out.splitlines() if line.startswith("[")]
    assert len(headers) == 3 and all(drill.TOPICS["masks"] in h for h in headers)


def test_bad_arguments_exit_2_with_a_reason(monkeypatch, capsys):
    code, _, err = run_drill(monkeypatch, capsys, ["--topic", "audio"], [])
    assert code == 2 and "unknown topic audio" in err and "whisper" in err
    code, _, err = run_drill(monkeypatch, capsys, ["--n", "-1"], [])
    assert code == 2 and "n must be 0" in err


def test_input_that_ends_early_still_scores(monkeypatch, capsys):
    chosen = drill.choose_questions(BANK, 3, seed=5)
    code, out, _ = run_drill(monkeypatch, capsys, ["--n", "3", "--seed", "5"], right_answers(chosen[:1]))
    assert code == 0
    assert "input ended after 1 of 3 questions" in out and "score: 1/1" in out


def test_topics_and_sheet(monkeypatch, capsys):
    code, out, _ = run_drill(monkeypatch, capsys, ["--topics"], [])
    assert code == 0 and all(slug in out for slug in drill.TOPICS)
    code, out, _ = run_drill(monkeypatch, capsys, ["--sheet", "--topic", "training", "--n", "0"], [])
    assert code == 0
    for q in drill.questions(topic="training"):
        assert f"[{q['id']}] {q['question']}" in out


def test_add_quiz_plugs_into_a_cli_parser():
    parser = argparse.ArgumentParser(prog="mmcourse")
    drill.add_quiz(parser.add_subparsers())
    args = parser.parse_args(["quiz", "--n", "2", "--seed", "3", "--topic", "vit"])
    assert args.run is drill.run_quiz and (args.n, args.seed, args.topic) == (2, 3, ["vit"])


def test_as_a_command_with_piped_input(tmp_path):
    chosen = drill.choose_questions(BANK, 2, seed=11)
    answers = "".join(line + "\n" for line in right_answers(chosen))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "mmcourse.drill", "--n", "2", "--seed", "11"], input=answers,
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "score: 2/2" in done.stdout and "[2/2]" in done.stdout


# ---------------------------------------------------------------- in Chinese: --lang zh, MMCOURSE_LANG, the locale


def test_chinese_drill_asks_scores_and_lists_in_chinese(monkeypatch, capsys):
    chosen = drill.choose_questions(BANK, 6, ["vit", "whisper", "fusion"], seed=4)
    lines = []
    for q in chosen:  # numbers as typed by a Chinese keyboard: full-width digits are fine too
        lines += [q["numeric"]["claim"]] if "numeric" in q else ["我的回答", "是"]
    code, out, _ = run_drill(monkeypatch, capsys, ["--n", "6", "--topic", "vit", "--topic", "whisper", "--topic",
                                                   "fusion", "--seed", "4", "--lang", "zh"], lines)
    assert code == 0
    n_numeric = sum("numeric" in q for q in chosen)
    assert "mmcourse quiz：共 6 题（seed 4）" in out and "你的答案> " in out and "参考答案：" in out
    for number, q in enumerate(chosen, 1):
        assert f"[{number}/6] {drill.TOPICS_ZH[q['topic']]}" in out
        assert q["question_zh"] in out and q["answer_zh"] in out and q["answer"] not in out
    assert f"得分：6/6（数值题 {n_numeric}/{n_numeric}，自评题 {6 - n_numeric}/{6 - n_numeric}）" in out
    assert "需要复习" not in out and "score:" not in out


def test_chinese_drill_wrong_answers(monkeypatch, capsys):
    chosen = drill.choose_questions(BANK, 4, ["resolution"], seed=2)
    assert all("numeric" in q for q in chosen[:2])
    code, out, _ = run_drill(monkeypatch, capsys, ["--n", "4", "--topic", "resolution", "--seed", "2", "--lang", "zh"],
                             ["-1" if "numeric" in q else "不知道\n否" for q in chosen])
    assert code == 0 and "得分：0/4" in out and "不太对，答案是 " + chosen[0]["numeric"]["claim"] in out
    assert "需要复习：" + ", ".join(q["id"] for q in chosen) in out


def test_numeric_answers_are_checked_the_same_way_in_chinese():
    q = next(q for q in BANK if q["id"] == "token-budget")
    assert drill.drill._numeric_correct("２０２０", q) and drill.drill._numeric_correct("2，020", q)
    assert not drill.drill._numeric_correct("2020 个", q) and not drill.drill._numeric_correct("两千零二十", q)


def test_chinese_sheet_topics_and_early_end(monkeypatch, capsys):
    code, out, _ = run_drill(monkeypatch, capsys, ["--sheet", "--topic", "omni", "--n", "0", "--lang", "zh"], [])
    assert code == 0
    for q in drill.questions(topic="omni"):
        assert f"[{q['id']}] {q['question_zh']}" in out and q["answer_zh"] in out and q["answer"] not in out
    code, out, _ = run_drill(monkeypatch, capsys, ["--topics", "--lang", "zh"], [])
    assert code == 0 and all(title in out for title in drill.TOPICS_ZH.values())
    chosen = drill.choose_questions(BANK, 3, seed=5)
    code, out, _ = run_drill(monkeypatch, capsys, ["--n", "3", "--seed", "5", "--lang", "zh"], right_answers(chosen[:1]))
    assert "（输入在第 1 题后结束，共 3 题）" in out and "得分：1/1" in out


def test_default_language_follows_mmcourse_lang_then_the_locale(monkeypatch, capsys):
    assert drill.default_language({}) == "en"
    assert drill.default_language({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert drill.default_language({"LANG": "zh_TW.UTF-8", "LC_ALL": "en_US.UTF-8"}) == "en"  # LC_ALL wins
    assert drill.default_language({"LANG": "en_GB.UTF-8", "LC_ALL": "zh_CN.UTF-8"}) == "zh"
    assert drill.default_language({"LANG": "C.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}) == "zh"
    assert drill.default_language({"LANG": "zh_CN.UTF-8", "MMCOURSE_LANG": "en"}) == "en"
    assert drill.default_language({"LANG": "en_US.UTF-8", "MMCOURSE_LANG": "ZH"}) == "zh"
    with pytest.raises(ValueError, match="MMCOURSE_LANG='fr'.*en, zh"):
        drill.default_language({"MMCOURSE_LANG": "fr"})
    # through the command: the environment picks the language, --lang overrides it, a bad setting exits 2
    for var in ("LC_ALL", "LC_MESSAGES", "MMCOURSE_LANG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    code, out, _ = run_drill(monkeypatch, capsys, ["--topics"], [])
    assert code == 0 and drill.TOPICS_ZH["vit"] in out
    code, out, _ = run_drill(monkeypatch, capsys, ["--topics", "--lang", "en"], [])
    assert drill.TOPICS["vit"] in out and drill.TOPICS_ZH["vit"] not in out
    monkeypatch.setenv("MMCOURSE_LANG", "fr")
    code, _, err = run_drill(monkeypatch, capsys, ["--topics"], [])
    assert code == 2 and "MMCOURSE_LANG" in err
    code, _, err = run_drill(monkeypatch, capsys, ["--topics", "--lang", "en"], [])
    assert code == 0  # --lang wins over a bad environment
    with pytest.raises(SystemExit):
        drill.main(["--lang", "fr"])


def test_chinese_drill_as_a_command(tmp_path):
    chosen = drill.choose_questions(BANK, 2, seed=11)
    answers = "".join(line + "\n" for line in right_answers(chosen))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", LANG="zh_CN.UTF-8", PYTHONIOENCODING="utf-8")
    env.pop("MMCOURSE_LANG", None), env.pop("LC_ALL", None), env.pop("LC_MESSAGES", None)
    done = subprocess.run([sys.executable, "-m", "mmcourse.drill", "--n", "2", "--seed", "11"], input=answers,
                          capture_output=True, text=True, encoding="utf-8", env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "得分：2/2" in done.stdout and chosen[0]["question_zh"] in done.stdout


def test_not_built_questions_show_their_reference_in_the_quiz_and_the_sheet(monkeypatch, capsys):
    """A question about something the course does not build (`"built": false`) names the paper to read, under the
    model answer of the drill and on the study sheet, in the drill's language."""
    q = next(q for q in BANK if q["id"] == "dpo-loss-numeric")
    assert not drill.is_built(q) and drill.is_built(next(q for q in BANK if q["id"] == "vit-tokens"))
    ids = [e["id"] for e in drill.choose_questions(BANK, 0, ["hallucination"], seed=3)]
    chosen = [next(e for e in BANK if e["id"] == i) for i in ids]
    code, out, _ = run_drill(monkeypatch, capsys, ["--n", "0", "--topic", "hallucination", "--seed", "3"],
                             right_answers(chosen))
    assert code == 0 and f"(Not built in the course; read: {q['reference']})" in out
    code, out, _ = run_drill(monkeypatch, capsys, ["--n", "0", "--topic", "hallucination", "--seed", "3", "--lang", "zh"],
                             right_answers(chosen))
    assert code == 0 and f"(本课程没有实现；参考：{q['reference']})" in out and "Not built" not in out
    code, out, _ = run_drill(monkeypatch, capsys, ["--sheet", "--topic", "hallucination", "--n", "0"], [])
    assert f"Not built in the course; read: {q['reference']}" in out
    built = [e for e in drill.questions(topic="hallucination") if drill.is_built(e)]
    assert built and out.count("Not built in the course") == len(drill.questions(topic="hallucination")) - len(built)
