import functools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmcourse import data
from mmcourse.encoding.text import tiny_tokenizer


def test_same_seed_same_items_and_random_access():
    a, b = data.MultimodalScenes(20, seed=3, speech="tones"), data.MultimodalScenes(20, seed=3, speech="tones")
    for i in (0, 7, 19):
        x, y = a[i], b[i]
        assert x["caption"] == y["caption"] and torch.equal(x["image"], y["image"])
        assert torch.equal(x["caption_audio"], y["caption_audio"])
    assert a[5]["caption"] == data.MultimodalScenes(20, seed=3, speech="tones")[5]["caption"]
    c = data.MultimodalScenes(20, seed=4, speech="tones")
    assert [a[i]["caption"] for i in range(20)] != [c[i]["caption"] for i in range(20)]


def test_item_contents():
    ds = data.MultimodalScenes(10, seed=0, n_objects=(1, 2), image_size=64, speech="tones")
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8
    assert item["caption_audio"].dtype == torch.float32 and item["caption_audio"].abs().max() <= 1
    assert item["caption"].startswith("a ") and item["question"].startswith("where is the ")
    scene = ds.scene(0)
    assert item["caption"] == scene.caption and item["answer"] == scene.answer
    assert len(item["colors"]) == len(scene.objects)
    with pytest.raises(IndexError):
        ds[10]


def test_pixels_show_the_caption():
    """The colour named in the caption is really drawn in the named quadrant."""
    ds = data.MultimodalScenes(30, seed=1, n_objects=(1, 2), speech="tones", audio=False)
    for i in range(30):
        image = ds[i]["image"].permute(1, 2, 0).float()
        for obj in ds.scene(i).objects:
            row, col = divmod(obj.quadrant, 2)
            quad = image[row * 32:(row + 1) * 32, col * 32:(col + 1) * 32].reshape(-1, 3)
            dist = (quad - torch.tensor(data.COLORS[obj.color], dtype=torch.float32)).norm(dim=1)
            assert (dist < 40).sum() > 20, f"item {i}: no {obj.color} pixels in the {data.QUADRANTS[obj.quadrant]}"


def test_question_needs_both_modalities():
    """With four objects every quadrant is filled, so the image alone says nothing about the answer,
    and the asked colour is drawn independently of positions, so the question alone says nothing either."""
    ds = data.MultimodalScenes(4000, seed=2, n_objects=4, audio=False)
    answers = np.array([ds.scene(i).answer for i in range(4000)])
    counts = np.bincount(answers, minlength=4) / 4000
    assert np.all(np.abs(counts - 0.25) < 0.03), counts
    for i in range(50):
        scene = ds.scene(i)
        assert sorted(o.quadrant for o in scene.objects) == [0, 1, 2, 3]
        assert len({o.color for o in scene.objects}) == 4
    # the question's colour does not predict the answer
    by_color = {}
    for i in range(4000):
        s = ds.scene(i)
        by_color.setdefault(s.objects[s.asked].color, []).append(s.answer)
    for color, ans in by_color.items():
        freq = np.bincount(ans, minlength=4) / len(ans)
        assert np.all(np.abs(freq - 0.25) < 0.08), (color, freq)


def test_collate_pads_and_masks():
    ds = data.MultimodalScenes(6, seed=0, speech="tones")
    tok = tiny_tokenizer()
    loader = DataLoader(ds, batch_size=6, collate_fn=functools.partial(data.collate, tokenizer=tok))
    batch = next(iter(loader))
    lengths = [ds[i]["caption_audio"].shape[0] for i in range(6)]
    assert batch["caption_audio"].shape == (6, max(lengths))
    assert batch["caption_audio_lengths"].tolist() == lengths
    for i, n in enumerate(lengths):
        assert torch.equal(batch["caption_audio"][i, :n], ds[i]["caption_audio"])
        assert batch["caption_audio"][i, n:].abs().sum() == 0
    assert batch["image"].shape == (6, 3, 64, 64)
    assert batch["caption_ids"].shape == batch["caption_attention_mask"].shape
    n_obj = [len(ds.scene(i).objects) for i in range(6)]
    assert (~batch["object_padding_mask"]).sum(1).tolist() == n_obj
    assert (batch["colors"][batch["object_padding_mask"]] == -1).all()


def test_speech_backends():
    tones = data.MultimodalScenes(2, seed=0, speech="tones")
    assert tones.speech == "tones"
    assert data.speech_backend("auto") in ("espeak", "tones")
    with pytest.raises(ValueError, match="speech must be"):
        data.MultimodalScenes(2, speech="festival")
    with pytest.raises(ValueError, match="empty"):
        data.speak("   ")


def test_espeak_speech_when_installed():
    from mmcourse.packaged import espeak
    from tests.conftest import require_extra

    require_extra(espeak.espeak_available(), "espeak-ng (espeakng-loader)")
    ds = data.MultimodalScenes(2, seed=0, speech="espeak")
    wave = ds[0]["question_audio"]
    assert wave.abs().max() > 0.05 and 0.5 < wave.shape[0] / data.SAMPLE_RATE < 5


def test_bad_arguments():
    with pytest.raises(ValueError):
        data.MultimodalScenes(0)
    with pytest.raises(ValueError, match="n_objects"):
        data.MultimodalScenes(5, n_objects=5)
    with pytest.raises(ValueError, match="image_size"):
        data.render_scene(data.MultimodalScenes(1, audio=False).scene(0), image_size=15)
    with pytest.raises(ValueError, match="empty batch"):
        data.collate([])


def test_choose_which_texts_are_spoken():
    q = data.MultimodalScenes(3, seed=0, speech="tones", audio="question")[0]
    assert "question_audio" in q and "caption_audio" not in q
    none = data.MultimodalScenes(3, seed=0, audio=False)[0]
    assert "question_audio" not in none and "caption_audio" not in none
    both = data.MultimodalScenes(3, seed=0, speech="tones")[0]
    assert torch.equal(both["image"], q["image"]), "choosing the audio must not change the image"
    with pytest.raises(ValueError, match="audio must be"):
        data.MultimodalScenes(3, audio="image")


def test_presence_question_is_balanced_and_correct():
    ds = data.MultimodalScenes(2000, seed=5, n_objects=(1, 4), audio=False)
    answers = []
    for i in range(2000):
        scene = ds.scene(i)
        present = {o.color for o in scene.objects}
        assert scene.presence_answer == int(scene.probe in present)
        assert scene.presence_question == f"is there a {scene.probe} shape"
        answers.append(scene.presence_answer)
    assert abs(np.mean(answers) - 0.5) < 0.04
    item = ds[0]
    assert item["presence_question"] == ds.scene(0).presence_question
    assert item["presence_answer"] == ds.scene(0).presence_answer


def test_adding_the_presence_question_changed_nothing_else():
    """Images and the other texts are drawn from the item's main stream; the probe has its own."""
    ds = data.MultimodalScenes(3, seed=0, speech="tones", audio=("caption", "question"))
    first = ds[0]
    all3 = data.MultimodalScenes(3, seed=0, speech="tones")[0]
    assert torch.equal(first["caption_audio"], all3["caption_audio"])
    assert torch.equal(first["question_audio"], all3["question_audio"])
    assert "presence_question_audio" in all3 and "presence_question_audio" not in first


@pytest.mark.parametrize("seed", [None, 3])
def test_word_spans_find_each_word_of_speak(seed):
    rng = None if seed is None else np.random.default_rng(seed)
    text = "where is the red shape"
    wave = data.speak(text, "tones", rng=rng)
    spans = data.word_spans(text, torch.from_numpy(wave), "tones")
    assert len(spans) == 5 and all(a < b for a, b in spans)
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:])), "words follow each other with pauses"
    for (start, end), word in zip(spans, text.split()):
        clip = wave[round(start * data.SAMPLE_RATE):round(end * data.SAMPLE_RATE)]
        gap = int(0.05 * data.SAMPLE_RATE)
        alone = data.speak(word, "tones")[gap:-gap]  # the word's clip, without speak()'s 50 ms pauses
        np.testing.assert_allclose(clip / np.abs(clip).max(), alone / np.abs(alone).max(), atol=1e-5)
    with pytest.raises(ValueError, match="ends before the word"):
        data.word_spans(text + " again", wave, "tones")
