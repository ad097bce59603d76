"""The interview drill: a question bank whose every number is computed by the package, and `mmcourse quiz`.

    from mmcourse import drill
    bank = drill.load_bank()                          # the questions of mmcourse/drill/questions.json
    drill.verify(bank[0])                             # recompute every number its answer states
    print(drill.as_markdown(topic="contrastive"))     # a study sheet for one topic
    $ mmcourse quiz --n 10 --topic vit --seed 1       # a drill in the terminal, score at the end
    $ mmcourse quiz --lang zh                         # the same in Chinese (default: MMCOURSE_LANG, then the locale)

From the bottom up, one idea per module:

    facts.py         FACTS: the functions a check may call, each computing a number with mmcourse's own code
    answers.py       numbers in answers: find them, evaluate the checks that claim them, say which are uncovered
    bank.py          the bank: topics (in English and Chinese), schema validation, loading, selecting, study sheets
    drill.py         the terminal drill behind `mmcourse quiz`, its messages in English and Chinese
    __main__.py      `python -m mmcourse.drill`: the same drill
    questions.json   the bank itself (data)

The self-check quiz of notebook 13 is NOT here: its answer key lives only in the notebook's hidden
tests, so that the released course does not carry it.
"""

from mmcourse.drill.answers import (claim_holds, evaluate, numbers_in, parse_number, uncovered_numbers,
                                    verify)
from mmcourse.drill.bank import (BANK_PATH, LANGUAGES, NOT_BUILT, NOT_BUILT_ZH, TOPICS, TOPICS_ZH, as_markdown,
                                 checks_markdown, is_built, load_bank, localized, questions, reference_line,
                                 topic_title, validate_bank)
from mmcourse.drill.drill import add_quiz, choose_questions, default_language, main, run_quiz
from mmcourse.drill.facts import FACTS, SAFE_NAMES

__all__ = ["FACTS", "SAFE_NAMES", "parse_number", "numbers_in", "uncovered_numbers", "evaluate", "claim_holds",
           "verify", "BANK_PATH", "TOPICS", "TOPICS_ZH", "LANGUAGES", "NOT_BUILT", "NOT_BUILT_ZH", "topic_title",
           "localized", "is_built", "reference_line", "validate_bank",
           "load_bank", "questions", "checks_markdown", "as_markdown", "add_quiz", "choose_questions",
           "default_language", "run_quiz", "main"]
