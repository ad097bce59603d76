import pytest
import torch

from mmcourse.tokens import Tokens


def test_tokens_validate_and_convert():
    t = Tokens(torch.zeros(2, 3, 4), torch.tensor([[False, False, True], [False, False, False]]))
    assert t.attention_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match=r"\(B, L, D\)"):
        Tokens(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        Tokens(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="attention_mask == 0"):
        Tokens(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.long))
