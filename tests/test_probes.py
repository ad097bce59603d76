"""The hard parts in code: data.misalign_pairs, train.modality_dropout and grad_norms, tokens.is_present, probes."""

import pytest
import torch
import torch.nn as nn

from mmcourse import data, probes, train
from mmcourse.tokens import is_present
from mmcourse.tokens import Tokens


def tokens(batch: int, length: int, width: int = 4, seed: int = 0, padded_from: int | None = None) -> Tokens:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    if padded_from is not None:
        mask[:, padded_from:] = True
    return Tokens(torch.randn(batch, length, width, generator=g), mask)


# ---------------------------------------------------------------- misalign_pairs


@pytest.mark.parametrize("n, fraction", [(2, 1.0), (10, 0.0), (800, 0.25), (1000, 0.1), (33, 0.5), (7, 1.0)])
def test_misalign_pairs_breaks_exactly_round_fraction_n_pairs(n, fraction):
    partner = data.misalign_pairs(n, fraction, seed=3)
    assert partner.shape == (n,) and partner.dtype == torch.long
    assert int((partner != torch.arange(n)).sum()) == round(fraction * n)
    assert bool(((partner >= 0) & (partner < n)).all())


def test_misalign_pairs_is_deterministic_and_seeded():
    a, b = data.misalign_pairs(500, 0.4, seed=1), data.misalign_pairs(500, 0.4, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, data.misalign_pairs(500, 0.4, seed=2))


def test_misalign_pairs_spreads_the_wrong_partners():
    partner = data.misalign_pairs(2000, 1.0, seed=5)
    assert int(torch.bincount(partner, minlength=2000).max()) < 10  # uniform over the others, not a few favourites


@pytest.mark.parametrize("n, fraction, match", [(10, 1.5, "fraction"), (10, -0.1, "fraction"), (1, 0.5, "n must")])
def test_misalign_pairs_rejects_bad_arguments(n, fraction, match):
    with pytest.raises(ValueError, match=match):
        data.misalign_pairs(n, fraction)


# ---------------------------------------------------------------- modality_dropout


def test_is_present_is_false_only_for_rows_that_are_all_padding():
    t = tokens(3, 4)
    t.padding_mask[1] = True
    t.padding_mask[2, 2:] = True
    assert is_present(t).tolist() == [True, False, True]


def test_modality_dropout_never_drops_every_modality_and_keeps_states():
    inputs = {"text": tokens(2000, 5, seed=1, padded_from=4), "audio": tokens(2000, 7, seed=2)}
    before = {m: t.padding_mask.clone() for m, t in inputs.items()}
    out = train.modality_dropout(inputs, 0.9, generator=torch.Generator().manual_seed(0))
    dropped = torch.stack([out[m].padding_mask.all(dim=1) for m in ("text", "audio")], dim=1)
    assert not bool(dropped.all(dim=1).any())
    assert bool(dropped.any())
    for m in inputs:
        assert out[m].states is inputs[m].states  # masked, not zeroed or rescaled
        assert torch.equal(inputs[m].padding_mask, before[m])  # the input is not modified
        assert bool((out[m].padding_mask | ~before[m]).all())  # padding stays padding


def test_modality_dropout_rate_is_p_minus_p_squared_over_two_for_two_modalities():
    inputs = {"a": tokens(20000, 2), "b": tokens(20000, 3)}
    out = train.modality_dropout(inputs, 0.3, generator=torch.Generator().manual_seed(1))
    rate = torch.stack([out[m].padding_mask.all(dim=1) for m in out]).float().mean().item()
    assert abs(rate - (0.3 - 0.3 ** 2 / 2)) < 0.01


def test_modality_dropout_with_p_1_keeps_one_random_modality_per_sample():
    inputs = {m: tokens(3000, 3, seed=i) for i, m in enumerate("abc")}
    out = train.modality_dropout(inputs, 1.0, generator=torch.Generator().manual_seed(2))
    kept = torch.stack([is_present(out[m]) for m in "abc"], dim=1)
    assert bool((kept.sum(dim=1) == 1).all())
    assert bool((kept.float().mean(dim=0) > 0.3).all())  # uniformly chosen, not always the first


def test_modality_dropout_with_p_0_changes_nothing_and_is_reproducible():
    inputs = {"text": tokens(50, 4, padded_from=3), "audio": tokens(50, 6)}
    out = train.modality_dropout(inputs, 0.0)
    assert all(torch.equal(out[m].padding_mask, inputs[m].padding_mask) for m in inputs)
    a = train.modality_dropout(inputs, 0.5, generator=torch.Generator().manual_seed(7))
    b = train.modality_dropout(inputs, 0.5, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(a[m].padding_mask, b[m].padding_mask) for m in inputs)


def test_modality_dropout_keeps_the_only_modality_a_sample_still_has():
    text, audio = tokens(500, 4), tokens(500, 6)
    text.padding_mask[:250] = True  # the first half has no text at all
    out = train.modality_dropout({"text": text, "audio": audio}, 1.0, generator=torch.Generator().manual_seed(3))
    assert bool(is_present(out["audio"])[:250].all())  # their audio is never dropped
    present = torch.stack([is_present(out[m]) for m in ("text", "audio")], dim=1)
    assert bool((present.sum(dim=1) == 1).all())


def test_modality_dropout_rejects_bad_inputs():
    with pytest.raises(ValueError, match="probability"):
        train.modality_dropout({"a": tokens(2, 3)}, 1.5)
    with pytest.raises(ValueError, match="batch sizes"):
        train.modality_dropout({"a": tokens(2, 3), "b": tokens(3, 3)}, 0.5)
    with pytest.raises(TypeError, match="Tokens"):
        train.modality_dropout({"a": torch.zeros(2, 3, 4)}, 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        train.modality_dropout({}, 0.5)


# ---------------------------------------------------------------- grad_norms


def test_grad_norms_is_one_norm_over_all_parameters_of_a_group():
    torch.manual_seed(0)
    a, b, unused = nn.Linear(3, 2), nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)), nn.Linear(2, 2)
    ((a(torch.randn(6, 3)) + 3 * b(torch.randn(6, 4))) ** 2).mean().backward()
    norms = train.grad_norms({"a": a, "b": list(b.parameters()), "unused": unused})
    for name, module in (("a", a), ("b", b)):
        expected = torch.cat([p.grad.flatten() for p in module.parameters()]).norm().item()
        assert norms[name] == pytest.approx(expected, rel=1e-6)
        assert type(norms[name]) is float
    assert norms["unused"] == 0.0


def test_grad_norms_rejects_an_empty_group():
    with pytest.raises(ValueError, match="no parameters"):
        train.grad_norms({"nothing": nn.ReLU()})


# ---------------------------------------------------------------- attribution


def test_patch_attribution_sums_gradient_times_input_per_patch_in_row_major_order():
    g = torch.Generator().manual_seed(0)
    grad, x = torch.randn(2, 3, 12, 12, generator=g), torch.randn(2, 3, 12, 12, generator=g)
    out = probes.patch_attribution(grad, x, 4, baseline=-0.5)
    assert out.shape == (2, 9)
    product = grad * (x + 0.5)
    for n in range(9):
        row, col = divmod(n, 3)
        expected = product[:, :, 4 * row:4 * row + 4, 4 * col:4 * col + 4].sum(dim=(1, 2, 3))
        torch.testing.assert_close(out[:, n], expected, rtol=1e-5, atol=1e-5)


def test_attribution_of_a_linear_score_adds_up_to_the_score_difference():
    """Completeness: for s(x) = Σ w·x, Σ grad · (x − b) = s(x) − s(b) exactly (Sundararajan et al., 2017)."""
    g = torch.Generator().manual_seed(1)
    w_image, w_audio = torch.randn(1, 3, 16, 16, generator=g), torch.randn(1, 80, 30, generator=g)
    image = torch.randn(1, 3, 16, 16, generator=g, requires_grad=True)
    features = torch.randn(1, 80, 30, generator=g, requires_grad=True)
    score = (w_image * image).sum() + (w_audio * features).sum()
    grad_image, grad_features = torch.autograd.grad(score, [image, features])
    per_patch = probes.patch_attribution(grad_image, image.detach(), 8, baseline=0.3)
    per_frame = probes.frame_attribution(grad_features, features.detach(), baseline=-1.0)
    assert per_patch.shape == (1, 4) and per_frame.shape == (1, 30)
    baseline_score = (w_image * 0.3).sum() + (w_audio * -1.0).sum()
    torch.testing.assert_close(per_patch.sum() + per_frame.sum(), score.detach() - baseline_score, rtol=1e-4, atol=1e-3)


def test_attribution_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        probes.patch_attribution(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16), 8)
    with pytest.raises(ValueError, match="n_mels"):
        probes.frame_attribution(torch.zeros(80, 30), torch.zeros(80, 30))


# ---------------------------------------------------------------- linear probe


def test_linear_probe_matches_plain_least_squares_without_ridge():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 12, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(12, 4, generator=g, dtype=torch.float64) + torch.randn(400, 4, generator=g,
                                                                                  dtype=torch.float64)).argmax(dim=1)
    ones = torch.ones(400, 1, dtype=torch.float64)
    w = torch.linalg.lstsq(torch.cat([x[:300], ones[:300]], 1), nn.functional.one_hot(y[:300], 4).double()).solution
    expected = ((torch.cat([x[300:], ones[300:]], 1) @ w).argmax(1) == y[300:]).double().mean().item()
    assert probes.linear_probe_accuracy(x[:300], y[:300], x[300:], y[300:], ridge=0.0) == pytest.approx(expected)
    assert 0.5 < expected < 1.0  # a problem that is neither trivial nor hopeless


def test_linear_probe_separates_clusters_and_is_at_chance_on_noise():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (600,), generator=g)
    clusters = 100 + 3 * nn.functional.one_hot(labels, 4).float() + 0.3 * torch.randn(600, 4, generator=g)
    assert probes.linear_probe_accuracy(clusters[:400], labels[:400], clusters[400:], labels[400:]) == 1.0
    noise = torch.randn(600, 8, generator=g)
    assert probes.linear_probe_accuracy(noise[:400], labels[:400], noise[400:], labels[400:]) < 0.4


def test_linear_probe_rejects_bad_inputs():
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    with pytest.raises(TypeError, match="class ids"):
        probes.linear_probe_accuracy(x, y.float(), x, y)
    with pytest.raises(ValueError, match="one label per row"):
        probes.linear_probe_accuracy(x, y[:5], x, y)
    with pytest.raises(ValueError, match="same layer"):
        probes.linear_probe_accuracy(x, y, torch.randn(10, 4), y)
