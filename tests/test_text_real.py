"""Real weights prove the plumbing: all-MiniLM-L6-v2 (the packaged tier) through mmcourse.encoding.text.

MiniLM is a mean-pooling sentence encoder, so TextEncoder + masked_mean_pool + cosine similarity
must rank paraphrases above unrelated sentences and reproduce sentence-transformers' embeddings.
"""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from mmcourse import tiers
from mmcourse.encoding import text
from tests.conftest import require_extra

# (anchor, paraphrase, unrelated)
TRIPLES = [
    ("A man is playing the guitar.", "Someone plays a guitar.", "The stock market fell sharply today."),
    ("The cat is sleeping on the sofa.", "A cat naps on the couch.", "He repaired the engine of the truck."),
    ("How do I reset my password?", "What are the steps to change my password?", "The museum opens at nine."),
    ("It is raining heavily outside.", "There is a heavy downpour outdoors.", "She bought three apples."),
    ("The children are playing football in the park.", "Kids play soccer in a park.",
     "The recipe needs two cups of flour."),
    ("The train to Paris leaves at noon.", "The Paris train departs at 12 o'clock.",
     "My laptop battery died this morning."),
]
LONG_TEXT = " ".join(["the quick brown fox jumps over the lazy dog"] * 45)  # 405 words: longer than 256 tokens


@pytest.fixture(scope="module")
def minilm():
    require_extra(tiers.tier_status()["packaged"] == "available", "the packaged tier (MiniLM)")
    return text.TextEncoder.from_tier("packaged")


@pytest.fixture(scope="module")
def sentence_transformer():
    require_extra(tiers.tier_status()["packaged"] == "available", "the packaged tier (MiniLM)")
    require_extra(importlib.util.find_spec("sentence_transformers") is not None, "sentence-transformers")
    from sentence_transformers import SentenceTransformer

    from mmcourse import packaged

    return SentenceTransformer(str(packaged.minilm_path()), device="cpu")


def sentence_vectors(encoder, texts, pooling="mean"):
    with torch.no_grad():
        return F.normalize(encoder.embed(texts, pooling=pooling), dim=-1)  # (B, 384), unit length


def test_minilm_ranks_paraphrases_above_unrelated_sentences(minilm):
    assert minilm.width == 384 and not minilm.model.training
    for anchor, paraphrase, unrelated in TRIPLES:
        a, p, u = sentence_vectors(minilm, [anchor, paraphrase, unrelated])
        close, far = float(a @ p), float(a @ u)
        assert close > far + 0.3, f"{anchor!r}: paraphrase {close:.2f}, unrelated {far:.2f}"
        assert close > 0.5, f"{anchor!r} ~ {paraphrase!r} only {close:.2f}"


def test_minilm_embeddings_equal_sentence_transformers(minilm, sentence_transformer):
    sentences = [s for triple in TRIPLES for s in triple]  # 18 sentences of different lengths in one batch
    ours = sentence_vectors(minilm, sentences)
    theirs = sentence_transformer.encode(sentences, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(ours, theirs.cpu(), atol=1e-5, rtol=0)


def test_minilm_long_text_rule_matches_sentence_transformers(minilm, sentence_transformer):
    """sentence-transformers cuts MiniLM at 256 tokens; TextEncoder raises unless given max_length."""
    with pytest.raises(ValueError, match="at most 512.*max_length"):
        minilm([LONG_TEXT * 2])
    assert sentence_transformer.max_seq_length == 256
    cut = text.TextEncoder(minilm.model, minilm.tokenizer, max_length=256)
    ours = sentence_vectors(cut, [LONG_TEXT, "A short one."])
    theirs = sentence_transformer.encode([LONG_TEXT, "A short one."], convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(ours, theirs.cpu(), atol=1e-5, rtol=0)


def test_bert_ids_0_to_9_are_pad_and_unused(minilm):
    """Bug 2 of the blog post: hand-typed ids [0..9] are no words at all in BERT's uncased vocabulary."""
    tokens = minilm.tokenizer.convert_ids_to_tokens(list(range(10)))
    assert tokens == ["[PAD]"] + [f"[unused{i}]" for i in range(9)]
    assert (minilm.tokenizer.cls_token_id, minilm.tokenizer.sep_token_id) == (101, 102)
