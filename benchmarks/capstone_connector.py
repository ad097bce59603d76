"""Where the capstone's bottleneck is: the same LLM, the same LoRA and the same questions, three ways of showing the scene.

    python -m benchmarks.capstone_connector --stage1 run.stage1.safetensors [--steps 150] [--n 48]

From a stage-1 checkpoint of `train_vlm --tile-words 1 --anchor-steps 0 --anchor-weight 0` (the layout before anchors:
one image token per tile, moved by captions alone; the tower after stage 0, the projectors after stage 1), LoRA alone trains
on typed questions ("where is the red shape?", "is there a red shape?", POPE) for --steps steps; every condition
sees the same examples in the same order and is scored on the same held-out scenes every --eval-every steps:

    words     the scene written out in place of the image tokens, "top left: red top right: nothing …" (the
              colour of each quadrant's object): the LLM reading text, an upper bound for any connector
    image     the image tokens as stage 1's caption loss left them (projectors frozen here)
    aligned   the image tokens after --align-steps of regressing each one onto the LLM's own input embedding of
              its quadrant's colour word (or "nothing"), then frozen: image tokens that lie where words lie

Measured while building the capstone (2 cores, one thread each): words and aligned learn the questions within
about 100 steps, image stays where looking without reading the question gets (see README, Capstone). That is why
train_vlm now anchors every tile's tokens to words (three per tile, its size, colour and shape) before and beside
the captions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.capstone import HELD_OUT_SEED, accuracy
from benchmarks.common import machine, table
from mmcourse import data
from mmcourse.models.capstone import read_weights
from mmcourse.models.train_vlm import build, make_example, pope_question, tile_targets, word_embedding

TASKS = ("where_typed", "presence_typed", "pope")
CONDITIONS = ("words", "image", "aligned")


def words_layout(scene: data.Scene) -> str:
    """The scene as the layout would show it, with each image token replaced by its quadrant's colour word."""
    by_quadrant = {o.quadrant: o.color for o in scene.objects}
    return " ".join(f"{name}: {by_quadrant.get(q, 'nothing')}" for q, name in enumerate(data.QUADRANTS))


def align_to_words(model, scenes: data.MultimodalScenes, steps: int, batch: int = 64, lr: float = 1e-3) -> float:
    """Regress every image token onto the embedding of its quadrant's colour word ("nothing" where empty).
    → the last relative squared error (mean squared error ÷ the mean square of the embedding matrix)."""
    from mmcourse.encoding.vision import preprocess_images

    words = torch.stack([word_embedding(model, w) for w in ("nothing", *data.COLORS)])  # (1 + colours, d)
    scale = model.llm.get_input_embeddings().weight.detach().pow(2).mean()
    optimizer = torch.optim.AdamW(model.image_projector.parameters(), lr=lr, weight_decay=0.0)
    model.image_projector.requires_grad_(True)
    error = float("nan")
    for step in range(steps):
        indices = np.random.default_rng([0, 5, step]).integers(len(scenes), size=batch)
        pixels = preprocess_images([scenes[int(i)]["image"] for i in indices], size=model.cfg.image_size)
        with torch.no_grad():
            features = model.image_features(pixels)
        target = words[tile_targets(scenes, indices, model.cfg.grid)[..., 0]]  # colour index 0 = nothing
        loss = F.mse_loss(model.image_projector(features), target) / scale
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        error = float(loss.detach())
    model.image_projector.requires_grad_(False)
    return error


def example_for(model, scenes, condition: str, task: str, index: int, rng) -> tuple[dict, torch.Tensor | None, list]:
    """One typed training example → (example, image or None, [] audio), as train_vlm.make_example gives."""
    if condition != "words":
        return make_example(model, None, scenes, task, index, rng, range(1))  # typed tasks hear nothing
    scene = scenes.scene(index)
    if task == "pope":
        question, answer = pope_question(scene, rng)
    elif task == "where_typed":
        question, answer = scene.question + "?", data.QUADRANTS[scene.answer]
    else:
        question, answer = scene.presence_question + "?", "yes" if scene.presence_answer else "no"
    return model.example(f"{words_layout(scene)}\n{question}", answer, n_images=0), None, []


def score(model, condition: str, held: data.MultimodalScenes) -> dict[str, float]:
    """Accuracy (normalised exact match, %) on "where" and "is there" over the held-out scenes."""
    from mmcourse.encoding.vision import preprocess_images

    model.eval()
    n = len(held)
    scenes = [held.scene(i) for i in range(n)]
    pixels = preprocess_images([held[i]["image"] for i in range(n)], size=model.cfg.image_size)
    out = {}
    for kind, question, truth in (("where", lambda s: s.question + "?", lambda s: data.QUADRANTS[s.answer]),
                                  ("is there", lambda s: s.presence_question + "?",
                                   lambda s: "yes" if s.presence_answer else "no")):
        said = []
        for i in range(0, n, 16):
            chunk = scenes[i:i + 16]
            if condition == "words":
                batch = model.collate([model.example(f"{words_layout(s)}\n{question(s)}", n_images=0) for s in chunk],
                                      left_pad=True)
                said += [model.tokenizer.decode(r, skip_special_tokens=True).strip()
                         for r in model.generate(batch, max_new_tokens=6)]
            else:
                said += model.answer(pixels[i:i + 16], [question(s) for s in chunk], max_new_tokens=6)
        out[kind] = accuracy(said, [truth(s) for s in scenes])
    model.train()
    model.vision.eval()
    return out


def run(condition: str, stage1: str, steps: int, eval_every: int, n: int, align_steps: int, lr: float,
        batch: int = 8, train_size: int = 20_000) -> list[dict]:
    """Train LoRA alone under `condition` → one row per evaluation (step, where %, is there %, loss, seconds)."""
    from mmcourse.models.train_vlm import batch_of

    state, cfg = read_weights(stage1)
    tier = "tiny" if cfg.audio_width == 64 else "packaged"
    model = build(tier, 0, lora_rank=8, tags_after=cfg.tags_after, tile_words=cfg.tile_words)
    model.load_trained({k: v for k, v in state.items() if not k.startswith("lora.")})
    for p in model.parameters():
        p.requires_grad_(False)
    scenes = data.MultimodalScenes(train_size, seed=0, n_objects=(1, 2), audio=False)
    held = data.MultimodalScenes(n, seed=HELD_OUT_SEED, n_objects=(1, 2), audio=False)
    extra = {}
    if condition == "aligned":
        extra["alignment error"] = align_to_words(model, scenes, align_steps)
    lora = [p for name, p in model.llm.named_parameters() if "lora_" in name]
    for p in lora:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(lora, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 10))
    rows = [{"condition": condition, "step": 0, **score(model, condition, held), **extra}]
    model.train()
    model.vision.eval()
    losses, start = [], time.perf_counter()
    for step in range(steps):
        made = []
        for slot in range(batch):
            rng = np.random.default_rng([0, 2, step, slot])
            task = TASKS[int(rng.integers(len(TASKS)))]
            made.append(example_for(model, scenes, condition, task, int(rng.integers(train_size)), rng))
        total, count = model(batch_of(model, None, scenes, made), loss=True)
        (total / max(count, 1)).backward()
        torch.nn.utils.clip_grad_norm_(lora, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(total.detach()) / max(count, 1))
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            rows.append({"condition": condition, "step": step + 1, **score(model, condition, held),
                         "loss": float(np.mean(losses[-eval_every:])), "seconds": time.perf_counter() - start, **extra})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.capstone_connector", description=__doc__.split("\n")[0])
    p.add_argument("--stage1", required=True, help="a stage-1 checkpoint train_vlm wrote (OUT.stage1.safetensors)")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="any of words, image, aligned")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--n", type=int, default=48, help="held-out scenes")
    p.add_argument("--align-steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=1e-3, help="LoRA's learning rate")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    conditions = args.conditions.split(",")
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise SystemExit(f"--conditions: unknown {unknown}; choose from {', '.join(CONDITIONS)}")
    rows = [row for c in conditions
            for row in run(c, args.stage1, args.steps, args.eval_every, args.n, args.align_steps, args.lr)]
    print(f"capstone connector · LoRA alone, {args.steps} steps of 8 typed questions · {args.n} held-out scenes · "
          f"{machine()}")
    print(table(rows, ["condition", "step", "where", "is there", "loss", "seconds", "alignment error"]))


if __name__ == "__main__":
    main()
