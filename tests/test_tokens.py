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


def test_check_conditioning_names_each_problem_and_its_fix():
    from mmcourse.tokens import check_conditioning

    good = Tokens(torch.randn(2, 3, 8), torch.tensor([[False, False, True], [False, True, True]]))
    check_conditioning(good, 8, "MelDecoder")  # no error
    with pytest.raises(TypeError, match=r"Tokens\(v\[:, None\]"):
        check_conditioning(torch.randn(2, 8), 8, "MelDecoder")
    with pytest.raises(ValueError, match=r"built for d_cond = 8.*nn.Linear\(5, 8\).*MelDecoder\(d_cond=5"):
        check_conditioning(Tokens(torch.randn(2, 3, 5), torch.zeros(2, 3, dtype=torch.bool)), 8, "MelDecoder")
    with pytest.raises(TypeError, match="not token ids"):
        check_conditioning(Tokens(torch.ones(2, 3, 8, dtype=torch.long), torch.zeros(2, 3, dtype=torch.bool)), 8, "X")
    with pytest.raises(ValueError, match="no tokens"):
        check_conditioning(Tokens(torch.randn(2, 0, 8), torch.zeros(2, 0, dtype=torch.bool)), 8, "X")
    with pytest.raises(ValueError, match=r"rows \[1\] are all padding.*attention_mask == 0"):
        check_conditioning(Tokens(torch.randn(2, 3, 8), torch.tensor([[False] * 3, [True] * 3])), 8, "X")
