import torch

from mmcourse import tiers
from mmcourse.models.tiny_qa import TinyMultimodalQA, quadrant_assignment


def test_quadrant_assignment():
    q = quadrant_assignment(4)
    assert q.shape == (16, 4) and torch.equal(q.sum(1), torch.ones(16))
    assert q[0].argmax() == 0 and q[3].argmax() == 1 and q[12].argmax() == 2 and q[15].argmax() == 3


def test_pipeline_shapes_and_padding_invariance():
    text, tok = tiers.load_text_encoder()
    image, _ = tiers.load_image_encoder()
    audio, _ = tiers.load_audio_encoder(seconds=3)
    model = TinyMultimodalQA(text, image, audio).eval()
    enc = tok(["where is the red shape", "where is the blue shape please now"], padding=True, return_tensors="pt")
    pixels = torch.randn(2, 3, 64, 64)
    feats = torch.randn(2, 80, 300)
    n = torch.tensor([20000, 30000])
    with torch.inference_mode():
        logits, weights = model(pixels, enc["input_ids"], enc["attention_mask"], feats, n)
        assert logits.shape == (2, 4) and weights.shape == (2, 64)
        assert torch.allclose(logits.exp().sum(-1), torch.ones(2), atol=1e-4)
        one = tok(["where is the red shape"], return_tensors="pt")
        alone, _ = model(pixels[:1], one["input_ids"], one["attention_mask"], feats[:1], n[:1])
    assert torch.allclose(alone, logits[:1], atol=1e-5), "text padding must not change the answer"
