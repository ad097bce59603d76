"""Evaluation metrics for multimodal models, small and exact (pure Python), as interviews ask about them.

    word_error_rate("the cat sat", "the cat sat down")   # 0.33: one insertion / three reference words
    bleu("a red circle", ["a red circle in the top left"])  # n-gram precision × brevity penalty
    chair(mentioned, present)                             # object hallucination in captions
    clip_score(cosine)                                    # 2.5 · max(cos, 0)
    vqa_accuracy(n_humans)                                # min(n / 3, 1)
    normalised_match("Top left.", "top left")             # exact match after lower-casing, no punctuation
    pope_scores(answers, truths)                          # POPE: accuracy, F1 of "yes", yes-ratio
    unpaired_accuracy(answers, truths)                    # chance of answers that ignore their input

Each is tested in tests/test_questions.py (WER against torchaudio's edit distance); normalised_match, pope_scores
and unpaired_accuracy in tests/test_capstone.py.
"""

from __future__ import annotations

import math
from collections import Counter


def _words(text: str, name: str) -> list[str]:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str of words, got {type(text).__name__}")
    return text.split()


def edit_distance(reference: list, hypothesis: list) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions turning hypothesis into reference."""
    previous = list(range(len(hypothesis) + 1))  # distance from an empty reference prefix
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1,  # reference word deleted
                               current[j - 1] + 1,  # hypothesis word inserted
                               previous[j - 1] + (ref != hyp)))  # substituted (or matched)
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER = (S + D + I) / N over whitespace-separated words; N = words in the reference. Can exceed 1."""
    ref, hyp = _words(reference, "reference"), _words(hypothesis, "hypothesis")
    if not ref:
        raise ValueError("the reference has no words, so WER is undefined (it divides by the reference length)")
    return edit_distance(ref, hyp) / len(ref)


def word_count(text: str) -> int:
    return len(_words(text, "text"))


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def modified_precision(candidate: str, references: list[str], n: int) -> tuple[int, int]:
    """BLEU's clipped n-gram precision as (matches, total): each candidate n-gram counts at most
    as often as it appears in any single reference (Papineni et al., 2002)."""
    cand = _ngrams(_words(candidate, "candidate"), n)
    most = Counter()
    for reference in references:
        for gram, count in _ngrams(_words(reference, "reference"), n).items():
            most[gram] = max(most[gram], count)
    return sum(min(count, most[gram]) for gram, count in cand.items()), sum(cand.values())


def bleu(candidate: str, references: list[str], max_n: int = 4) -> float:
    """Sentence BLEU: geometric mean of the modified 1..max_n-gram precisions × brevity penalty.

    BP = exp(1 − r / c) when the candidate (c words) is shorter than the reference closest in length (r).
    No smoothing: a candidate with no matching max_n-gram scores 0.
    """
    if isinstance(references, str):
        raise TypeError("references must be a list of strings (one or more reference captions)")
    c = word_count(candidate)
    if c == 0 or not references:
        raise ValueError("BLEU needs a non-empty candidate and at least one reference")
    log_sum = 0.0
    for n in range(1, max_n + 1):
        matches, total = modified_precision(candidate, references, n)
        if matches == 0:
            return 0.0
        log_sum += math.log(matches / total) / max_n
    r = min((word_count(ref) for ref in references), key=lambda length: (abs(length - c), length))
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return brevity * math.exp(log_sum)


def clip_score(cosine: float, w: float = 2.5) -> float:
    """CLIPScore = w · max(cos(image, caption), 0) with CLIP embeddings (Hessel et al., 2021)."""
    return w * max(float(cosine), 0.0)


def chair(mentioned: list[set], present: list[set]) -> tuple[float, float]:
    """CHAIR (Rohrbach et al., 2018): (CHAIR_i, CHAIR_s) for captions' mentioned objects vs the images' objects.

    CHAIR_i = hallucinated mentions / all mentions; CHAIR_s = captions with a hallucination / all captions.
    """
    if len(mentioned) != len(present):
        raise ValueError(f"one set of present objects per caption: got {len(mentioned)} captions "
                         f"and {len(present)} images")
    if not mentioned:
        raise ValueError("no captions: CHAIR is undefined")
    hallucinated = [set(m) - set(p) for m, p in zip(mentioned, present)]
    n_mentions = sum(len(set(m)) for m in mentioned)
    if n_mentions == 0:
        raise ValueError("the captions mention no objects, so CHAIR_i is undefined (it divides by the mentions)")
    return sum(map(len, hallucinated)) / n_mentions, sum(1 for h in hallucinated if h) / len(mentioned)


def vqa_accuracy(n_humans: int) -> float:
    """VQA's soft accuracy of an answer that `n_humans` of the ten annotators gave: min(n / 3, 1)."""
    return min(n_humans / 3, 1.0)



def normalise_answer(text: str) -> str:
    """Lower-case, punctuation dropped, whitespace collapsed: "Top  left." → "top left" (VQA's normalisation, short)."""
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower())
    return " ".join(kept.split())


def normalised_match(answer: str, truth: str) -> bool:
    """Exact match of two answers after normalise_answer."""
    return normalise_answer(answer) == normalise_answer(truth)


def unpaired_accuracy(answers: list[str], truths: list[str]) -> float:
    """The chance of answers that ignore their input: how often an answer matches the truth of every *other*
    item, averaged over all n·(n-1) pairs (the exact mean of a random re-pairing, a permutation baseline).

    A blind test compares accuracy with this chance rather than with 1 / (number of answers) where the blind
    input hides more than the answer: a spoken question replaced by silence hides which *kind* of question was
    asked, so a deaf model that answers "yes" scores 0 on "where" questions, and that is its chance.
    """
    if len(answers) != len(truths) or len(answers) < 2:
        raise ValueError(f"unpaired_accuracy needs as many answers as truths (and at least two, to pair each "
                         f"with another), got {len(answers)} and {len(truths)}")
    said, true = [normalise_answer(a) for a in answers], Counter(normalise_answer(t) for t in truths)
    own = sum(s == normalise_answer(t) for s, t in zip(said, truths))
    return (sum(true[s] for s in said) - own) / (len(said) * (len(said) - 1))


def pope_scores(answers: list[str], truths: list[str]) -> dict[str, float]:
    """POPE (Li et al., 2023) on yes/no answers: accuracy, precision, recall and F1 of "yes", and the
    yes-ratio (how often the model says yes; 0.5 on POPE's balanced questions when unbiased).
    An answer counts as yes when its normalised first word is "yes"."""
    if len(answers) != len(truths) or not answers:
        raise ValueError(f"pope_scores needs as many answers as truths (and at least one), got {len(answers)} "
                         f"and {len(truths)}")
    said = [normalise_answer(a).split()[:1] == ["yes"] for a in answers]
    true = [normalise_answer(t) == "yes" for t in truths]
    tp = sum(s and t for s, t in zip(said, true))
    precision = tp / max(sum(said), 1)
    recall = tp / max(sum(true), 1)
    return {"accuracy": sum(s == t for s, t in zip(said, true)) / len(said), "precision": precision,
            "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            "yes_ratio": sum(said) / len(said)}
