"""The CLIP loss, temperature and Recall@K, checked against transformers' CLIPModel."""

import math

import pytest
import torch

from mmcourse.fusion import LogitScale, ProjectionHead, clip_loss, recall_at_k, similarity_matrix


def test_clip_loss_equals_transformers_clip_model():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, max_position_embeddings=16,
                                         bos_token_id=0, eos_token_id=1, pad_token_id=2),
                        vision_config=dict(image_size=16, patch_size=8, hidden_size=16, intermediate_size=32,
                                           num_hidden_layers=1, num_attention_heads=2), projection_dim=8)
    model = CLIPModel(config).eval()
    ids = torch.randint(0, 50, (4, 6))
    out = model(input_ids=ids, pixel_values=torch.randn(4, 3, 16, 16), return_loss=True)
    ours = clip_loss(out.image_embeds, out.text_embeds, model.logit_scale.exp())
    assert torch.allclose(ours, out.loss, atol=1e-5)
    # CLIP initialises log(scale) = 2.6592 ≈ log(1/0.07), rounded to 4 decimals
    assert math.isclose(model.logit_scale.exp().item(), 1 / 0.07, rel_tol=1e-4)


def test_clip_loss_is_symmetric_and_low_for_matching_pairs():
    a = torch.eye(4)
    assert clip_loss(a, a, 100.0) < 1e-3
    b = torch.randn(4, 4)
    assert torch.allclose(clip_loss(a, b, 10.0), clip_loss(b, a, 10.0))
    assert clip_loss(a, a.roll(1, 0), 10.0) > 5


def test_logit_scale_initial_value_and_clamp():
    scale = LogitScale()
    assert math.isclose(scale().item(), 1 / 0.07, rel_tol=1e-6)
    with torch.no_grad():
        scale.log_scale.fill_(10.0)
    assert scale().item() == 100.0
    with pytest.raises(ValueError):
        LogitScale(temperature=0)


def test_projection_head_is_unit_length():
    head = ProjectionHead(6, 4, hidden=8)
    assert torch.allclose(head(torch.randn(3, 6)).norm(dim=-1), torch.ones(3), atol=1e-6)


def test_recall_at_k_both_directions():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.0], [0.0, 0.0, 0.7]])
    # rows: row 1's match (0.5) ranks 2nd; columns: column 0's match (0.9) is the top of its column
    assert recall_at_k(sim, 1) == pytest.approx((2 / 3, 1.0))
    assert recall_at_k(sim, 2) == (1.0, 1.0)
    assert recall_at_k(torch.ones(3, 3), 1) == (0.0, 0.0), "ties count against the match"
    with pytest.raises(ValueError, match="square"):
        recall_at_k(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(torch.eye(3), 4)
    assert torch.allclose(similarity_matrix(torch.eye(2), torch.eye(2)), torch.eye(2))


def test_clip_loss_errors():
    with pytest.raises(ValueError, match="matching pairs"):
        clip_loss(torch.randn(3, 4), torch.randn(2, 4), 1.0)
    with pytest.raises(ValueError, match="shared space"):
        clip_loss(torch.randn(3, 4), torch.randn(3, 5), 1.0)
    with pytest.raises(ValueError, match="pool"):
        clip_loss(torch.randn(3, 2, 4), torch.randn(3, 2, 4), 1.0)


def test_clip_loss_matches_transformers_formula_on_logits():
    # transformers' CLIP computes (CE(logits_per_text) + CE(logits_per_image)) / 2 on scaled cosines
    from transformers.models.clip import modeling_clip

    reference = getattr(modeling_clip, "image_text_contrastive_loss", None) or getattr(modeling_clip, "clip_loss")
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    logits = 20.0 * similarity_matrix(a, b)
    assert torch.allclose(clip_loss(a, b, 20.0), reference(logits.T), atol=1e-6)
    assert math.isclose(clip_loss(torch.ones(6, 4), torch.ones(6, 4), 1.0).item(), math.log(6), rel_tol=1e-6)


def test_clip_loss_rejects_a_log_scale():
    with pytest.raises(ValueError, match="not the logarithm"):
        clip_loss(torch.randn(3, 4), torch.randn(3, 4), torch.tensor(-1.0))
    g = torch.Generator().manual_seed(0)
    scale = LogitScale()
    loss = clip_loss(torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), scale())
    loss.backward()
    grad = scale.log_scale.grad
    assert grad is not None and torch.isfinite(grad) and grad.item() != 0.0, "the loss must reach the learnable temperature"


def test_logit_scale_gradient_stops_at_the_clamp():
    scale = LogitScale()
    scale().backward()
    assert math.isclose(scale.log_scale.grad.item(), 1 / 0.07, rel_tol=1e-5), "d exp(t) / dt = exp(t)"
    assert math.isclose(scale.temperature, 0.07, rel_tol=1e-6)
    clamped = LogitScale(temperature=1e-3)
    clamped().backward()
    assert clamped().item() == 100.0 and clamped.log_scale.grad.item() == 0.0
    with pytest.raises(ValueError, match="max_scale"):
        LogitScale(max_scale=0)


def test_projection_head_checks_its_input_width():
    head = ProjectionHead(6, 4)
    assert head(torch.zeros(2, 6)).shape == (2, 4)
    with pytest.raises(ValueError, match="pool the tokens"):
        head(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="ProjectionHead\\(5"):
        head(torch.randn(2, 5))
    with pytest.raises(ValueError, match="d_out"):
        ProjectionHead(6, 0)


def test_similarity_matrix_shapes_and_errors():
    sim = similarity_matrix(torch.randn(3, 4), torch.randn(5, 4))
    assert sim.shape == (3, 5) and bool((sim.abs() <= 1 + 1e-6).all())
    with pytest.raises(ValueError, match="shared space"):
        similarity_matrix(torch.randn(3, 768), torch.randn(3, 384))
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(torch.eye(3), 1.0)


def test_unique_indices_keeps_first_occurrences():
    from mmcourse.fusion import unique_indices

    assert unique_indices(["a", "b", "a", "c", "b"]) == [0, 1, 3]
    assert unique_indices([]) == []


def test_distinct_batches_have_no_duplicate_labels():
    from mmcourse.fusion import distinct_batches

    labels = [i % 5 for i in range(40)]  # 5 distinct labels, 8 copies each
    tensors = {"x": torch.arange(40), "y": torch.arange(40) * 10}
    first = distinct_batches(tensors, labels, 5, seed=3)
    batches = [next(first) for _ in range(20)]
    for batch in batches:
        assert sorted(int(i) % 5 for i in batch["x"]) == [0, 1, 2, 3, 4]
        assert torch.equal(batch["y"], batch["x"] * 10), "rows of all tensors stay aligned"
    assert len({tuple(b["x"].tolist()) for b in batches}) > 1, "batches differ"
    again = distinct_batches(tensors, labels, 5, seed=3)
    assert all(torch.equal(next(again)["x"], b["x"]) for b in batches), "the same seed gives the same batches"
    with pytest.raises(ValueError, match="distinct labels"):
        next(distinct_batches(tensors, labels, 6))
    with pytest.raises(ValueError, match="one row per label"):
        next(distinct_batches({"x": torch.arange(39)}, labels, 5))
