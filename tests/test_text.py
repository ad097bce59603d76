import pytest
import torch

from mmcourse import text


def test_tiny_vocabulary_is_fixed_and_sorted_within_groups():
    vocab = text.tiny_vocabulary()
    assert vocab[:5] == text.SPECIAL_TOKENS
    assert len(vocab) == len(set(vocab))
    pieces = [v for v in vocab if v.startswith("##")]
    assert pieces == sorted(pieces)


def test_tiny_tokenizer_spells_unknown_words_and_adds_specials():
    tok = text.tiny_tokenizer()
    ids = tok("where is the magenta shape")["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert "[UNK]" not in tokens
    assert tokens[4:11] == ["m", "##a", "##g", "##e", "##n", "##t", "##a"]
    assert tok.convert_tokens_to_ids("red") == text.tiny_vocabulary().index("red")


def test_masked_mean_pool_ignores_padding():
    torch.manual_seed(0)
    hidden = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = text.masked_mean_pool(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0, :3].mean(0))
    assert torch.allclose(pooled[1], hidden[1].mean(0))
    hidden2 = hidden.clone()
    hidden2[0, 3:] = 1e6  # garbage in the padding
    assert torch.allclose(text.masked_mean_pool(hidden2, mask), pooled)


def test_masked_mean_pool_errors():
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        text.masked_mean_pool(torch.zeros(2, 5, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="no real token"):
        text.masked_mean_pool(torch.zeros(1, 2, 3), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(B, L, D\)"):
        text.masked_mean_pool(torch.zeros(2, 5), torch.ones(2, 5))
