"""Train the capstone model, LLaVA's two stages, on the synthetic scenes: `python -m mmcourse.models.train_vlm`.

    stage 0 (the tower)     the vision tower alone learns the scenes: a linear head on each image token predicts
                            the colour, shape and size of what lies in its quadrant (or "nothing"); the heads are
                            thrown away. This stands in for CLIP's pre-training, which LLaVA takes as given.
    stage 1 (alignment)     first the image projector alone puts each tile's tokens where the LLM's own embeddings
                            of the words for that tile lie ("small", "red", "circle", or "nothing": the anchors;
                            --audio-anchor-steps: the audio projector too, each audio token on the word it hears,
                            the synthesiser knowing when each word is said), then captions ("<image> Describe the
                            image." → the caption) and transcripts ("<audio> What was said?" → the words): the two
                            projectors train, the anchors kept as a second loss; the tower and the LLM are frozen
    stage 2 (instructions)  questions about the scene, typed ("<image> where is the red shape?" → "top left") or
                            spoken ("<image> <audio>" → "Heard: where is the red shape?\ntop left": what it heard
                            first, then the answer; --spoken-reply answer: the answer alone), yes/no questions
                            (colour, and POPE-style "Is there a red circle in the image?"); loss on the reply
                            only; projectors and LoRA on the LLM's q/v train (--freeze-llm: no LoRA), the anchors
                            kept

The vision tower is a tiny ViT (64 px, 8 px patches, width 64, 2 layers) trained here: no pretrained image tower
fits the budget of two CPU cores, and these scenes need only colour, shape and place. Measured while building
this: trained from random weights through the frozen LLM (no stage 0), tower and projector stayed at chance for
400 steps; after stage 0 (a minute) the projector alone learns "where is the red shape" in a few dozen steps.
Measured too: image tokens aligned by captions alone leave the LLM (with
LoRA) at the looking-only baseline on "where is the red shape?", while the scene written in words is learnt in 100
steps (benchmarks.capstone_connector); anchored to words, as SPAE and LQAE make images tokens of a frozen LLM's
vocabulary, the image tokens are read like words. Measured for hearing: projected by transcripts alone, the
audio tokens transcribe perfectly through the frozen LLM, yet after stage 2 the spoken questions stay at what
looking without listening gets, on the training scenes and clips too; anchoring the audio tokens to words
(--audio-anchor-steps 300, 12 variants) did not change that after 100 stage-2 steps and lost the transcripts.
Replying heard first (vlm.heard_first) lets the answer read the question as words the LLM wrote itself.
Hearing is the packaged Whisper tiny.en encoder, frozen; each spoken clip's states are computed once and kept.
Deterministic from --seed: every example is a pure function of (seed, stage, step, slot).

Runs unchanged under `torchrun --nproc_per_node N` (DistributedDataParallel, gloo on the CPU): process r takes
slots r, r + N, … of every global batch, and the loss is the sum over answer tokens divided by the count over
all processes, so N processes give the loss curve and update of one process with the whole batch.

    python -m mmcourse.models.train_vlm --tier packaged --out mmcourse/models/weights/capstone.safetensors
    torchrun --nproc_per_node 2 -m mmcourse.models.train_vlm --tier tiny --stage0-steps 3 --anchor-steps 3 --audio-anchor-steps 3 --stage1-steps 3 --stage2-steps 3
    python -m mmcourse.models.train_vlm --resume run.stage1.safetensors --out run2.safetensors   (stage 2 again only)
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmcourse import data
from mmcourse.models.llm import load_llm
from mmcourse.fusion.compress import downsampled_length
from mmcourse.models.vlm import HOP, VisionLanguageModel, VLMConfig, heard_first, whisper_states

DESCRIBE = "Describe the image."
TRANSCRIBE = "What was said?"
STAGE1_TASKS = ("caption", "caption", "transcribe", "transcribe")
STAGE2_TASKS = ("where_typed", "where_spoken", "presence_typed", "presence_spoken", "pope")
SPOKEN_REPLIES = ("heard-first", "answer")
POPE_NEGATIVES = ("random", "popular", "adversarial")


def pope_question(scene: data.Scene, rng: np.random.Generator, kind: str | None = None) -> tuple[str, str]:
    """POPE on a scene: "Is there a {colour} {shape} in the image?" and "yes"/"no".

    kind "yes": a present object. A negative names an absent object: "random" any absent colour-shape pair,
    "popular" an absent pair of a colour in the scene (the frequent ones), "adversarial" an absent pair that
    shares its shape or colour with a present object (the co-occurring ones). kind None: yes with
    probability 1/2, else a negative of a random kind (how training draws them)."""
    present = {(o.color, o.shape) for o in scene.objects}
    if kind == "yes" or (kind is None and rng.random() < 0.5):
        color, shape = sorted(present)[int(rng.integers(len(present)))]
        return f"Is there a {color} {shape} in the image?", "yes"
    negative = kind or POPE_NEGATIVES[int(rng.integers(3))]
    absent = [(c, s) for c in data.COLORS for s in data.SHAPES if (c, s) not in present]
    colors, shapes = {c for c, _ in present}, {s for _, s in present}
    if negative == "popular":
        pool = [(c, s) for c, s in absent if c in colors]
    elif negative == "adversarial":
        pool = [(c, s) for c, s in absent if (c in colors) != (s in shapes)] or absent
    else:
        pool = absent
    color, shape = pool[int(rng.integers(len(pool)))]
    return f"Is there a {color} {shape} in the image?", "no"


class Hearing:
    """The frozen audio encoder and a cache of its states per spoken clip (text, variant) → (n, D)."""

    def __init__(self, tier: str, seed: int, speech: str):
        from mmcourse.tiers import load_audio_encoder

        self.encoder, self.features = load_audio_encoder("packaged" if tier == "packaged" else "tiny")
        self.seed, self.speech, self.cache, self.anchor_cache = seed, speech, {}, {}

    @staticmethod
    def texts() -> list[str]:
        """Every spoken question: both kinds, every colour."""
        return [f"{kind} {color} shape" for color in data.COLORS for kind in ("where is the", "is there a")]

    def precompute(self, variants) -> None:
        """Encode every spoken question once (all colours, both kinds, every variant) before training starts."""
        for text in self.texts():
            for variant in variants:
                self.states(text, variant)

    def wave(self, text: str, variant: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, zlib.crc32(text.encode()), variant])
        return data.speak(text, self.speech, rng=rng)

    def states(self, text: str, variant: int) -> torch.Tensor:
        key = (text, variant)
        if key not in self.cache:
            self.cache[key] = whisper_states(self.encoder, self.features, torch.from_numpy(self.wave(text, variant)))
        return self.cache[key]

    def anchors_of(self, model: VisionLanguageModel, text: str, variant: int) -> tuple[torch.Tensor, torch.Tensor]:
        """audio_anchors of the clip, computed once."""
        key = (text, variant)
        if key not in self.anchor_cache:
            self.anchor_cache[key] = audio_anchors(model, self, text, variant)
        return self.anchor_cache[key]

    def heard_words(self, text: str, variant: int, stride: int) -> list[int | None]:
        """Which word of `text` each audio token of its clip mostly hears: one index per token (a token is
        `stride` Whisper states, stride × 20 ms), None for a token that hears only a pause. The synthesiser's own
        word timings (data.word_spans) say where each word is: the alignment is known, not learnt."""
        spans = data.word_spans(text, self.wave(text, variant), self.speech)
        window = stride * HOP / data.SAMPLE_RATE  # seconds per audio token
        heard = []
        for j in range(downsampled_length(len(self.states(text, variant)), stride)):
            overlap = [min((j + 1) * window, end) - max(j * window, start) for start, end in spans]
            best = int(np.argmax(overlap))
            heard.append(best if overlap[best] > 0 else None)
        return heard


def make_example(model: VisionLanguageModel, hearing: Hearing, scenes: data.MultimodalScenes, task: str,
                 index: int, rng: np.random.Generator, variants: range,
                 spoken_reply: str = "heard-first") -> tuple[dict, torch.Tensor, list]:
    """One training (or test) example of `task` on scene `index` → (example, image (3, S, S) uint8 or None,
    [audio states]). The scene's index is the example's "scene" (for its anchors). spoken_reply: "heard-first"
    (a spoken question's reply begins with the question heard: vlm.heard_first) or "answer" (the answer alone)."""
    _check_spoken_reply(spoken_reply)
    example, image, states = _make_example(model, hearing, scenes, task, index, rng, variants, spoken_reply)
    example["scene"] = index
    return example, image, states


def _make_example(model, hearing, scenes, task, index, rng, variants, spoken_reply):
    scene = scenes.scene(index)
    image = scenes[index]["image"]
    variant = variants[int(rng.integers(len(variants)))]
    if task == "caption":
        return model.example(f"<image>\n{DESCRIBE}", scene.caption), image, []
    if task == "transcribe":
        text = scene.question if rng.random() < 0.5 else scene.presence_question
        states = hearing.states(text, variant)
        example = model.example(f"<audio>\n{TRANSCRIBE}", text, n_audio=[len(states)], n_images=0)
        return {**example, "spoken": [(text, variant)]}, None, [states]
    if task == "pope":
        question, answer = pope_question(scene, rng)
        return model.example(f"<image>\n{question}", answer), image, []
    kind, mode = task.split("_")
    text = scene.question if kind == "where" else scene.presence_question
    answer = data.QUADRANTS[scene.answer] if kind == "where" else ("yes" if scene.presence_answer else "no")
    if mode == "typed":
        return model.example(f"<image>\n{text}?", answer), image, []
    states = hearing.states(text, variant)
    reply = heard_first(text, answer) if spoken_reply == "heard-first" else answer
    return {**model.example("<image>\n<audio>", reply, n_audio=[len(states)]), "spoken": [(text, variant)]}, image, [states]


def batch_of(model, hearing, scenes, made: list[tuple]) -> dict:
    from mmcourse.encoding.vision import preprocess_images

    images = [m[1] for m in made if m[1] is not None]
    pixels = preprocess_images(images, size=model.cfg.image_size) if images else None
    return model.collate([m[0] for m in made], images=pixels, audio=[s for m in made for s in m[2]])


def set_stage(model: VisionLanguageModel, stage: int, freeze_llm: bool) -> list[torch.nn.Parameter]:
    """Stage 1: the two projectors. Stage 2: the projectors + LoRA. The tower (trained in stage 0) and the LLM
    stay frozen, as LLaVA freezes its CLIP tower and, in stage 1, its LLM."""
    for p in model.parameters():
        p.requires_grad_(False)
    for part in (model.image_projector, model.audio_projector):
        part.requires_grad_(True)
    if stage == 2 and not freeze_llm:
        for name, p in model.llm.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


ANCHOR_ATTRIBUTES = {1: ("color",), 3: ("size", "color", "shape")}  # the words of a tile's k tokens, in order
NOTHING = "nothing"  # every word of an empty tile


def word_embedding(model: VisionLanguageModel, word: str) -> torch.Tensor:
    """The LLM's input embedding of ` word` → (d,): the mean of its pieces' rows if the tokenizer splits it."""
    ids = model.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return model.llm.get_input_embeddings().weight.detach()[ids].float().mean(0)


def anchor_table(model: VisionLanguageModel) -> list[torch.Tensor]:
    """For each of a tile's k tokens, the LLM's input embeddings of the words it may be: (1 + n values, d), row 0
    "nothing", row 1 + i the i-th value of its attribute (data.COLORS, SHAPES, SIZES). A word of several pieces
    is the mean of their embeddings."""
    _check_tile_words(model.cfg.tile_words)
    values = {"color": data.COLORS, "shape": data.SHAPES, "size": data.SIZES}
    return [torch.stack([word_embedding(model, w) for w in (NOTHING, *values[a])])
            for a in ANCHOR_ATTRIBUTES[model.cfg.tile_words]]


def anchor_targets(model: VisionLanguageModel, table: list[torch.Tensor], scenes: data.MultimodalScenes,
                   indices) -> torch.Tensor:
    """The anchors of each scene's image tokens: (B, tiles · k, d), tile by tile, each tile's k words in order."""
    column = {"color": 0, "shape": 1, "size": 2}  # tile_targets' columns
    what = tile_targets(scenes, indices, model.cfg.grid)  # (B, tiles, 3)
    words = [table[j][what[..., column[a]]] for j, a in enumerate(ANCHOR_ATTRIBUTES[model.cfg.tile_words])]
    return torch.stack(words, dim=2).flatten(1, 2)


def anchor_error(model: VisionLanguageModel, table: list[torch.Tensor], pixel_values: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
    """Summed squared distance of the image tokens to their anchors, per image, in units of the LLM's mean squared
    embedding entry (so 1.0 is as far as a word's size): a (B,) tensor; .mean() / (tiles · k · d) is the relative
    error."""
    scale = model.llm.get_input_embeddings().weight.detach().float().pow(2).mean()
    return (model.image_tokens(pixel_values) - targets).pow(2).sum(dim=(1, 2)) / scale


def batch_anchor_error(model: VisionLanguageModel, table: list[torch.Tensor], scenes: data.MultimodalScenes,
                       made: list[tuple], pixels: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """The anchors' loss on a training batch: (the relative error summed over its images, how many images)."""
    seen = [example["scene"] for example, image, _ in made if image is not None]
    if not seen:
        return torch.zeros(()), 0
    per_image = model.cfg.image_tokens * model.llm.config.hidden_size
    return anchor_error(model, table, pixels, anchor_targets(model, table, scenes, seen)).sum() / per_image, len(seen)


def anchor_projector(model: VisionLanguageModel, scenes: data.MultimodalScenes, steps: int, batch: int, lr: float,
                     seed: int, quiet: bool = False) -> list[float]:
    """Stage 1's first part: the image projector alone learns to put each tile's k tokens on their anchor words
    (the tower frozen, no LLM forward: seconds per hundred steps). Every process computes the same projector from
    the same seed, like stage 0. → the relative error per step."""
    from tqdm import tqdm

    from mmcourse.encoding.vision import preprocess_images

    table = anchor_table(model)
    params = list(model.image_projector.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    per_image = model.cfg.image_tokens * model.llm.config.hidden_size
    errors = []
    for step in tqdm(range(steps), desc="stage 1 (anchors)", disable=quiet):
        indices = np.random.default_rng([seed, 1, step]).integers(len(scenes), size=batch)
        pixels = preprocess_images([scenes[int(i)]["image"] for i in indices], size=model.cfg.image_size)
        loss = anchor_error(model, table, pixels, anchor_targets(model, table, scenes, indices)).mean() / per_image
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        errors.append(float(loss.detach()))
    return errors


def audio_anchors(model: VisionLanguageModel, hearing: Hearing, text: str, variant: int) -> tuple[torch.Tensor,
                                                                                                     torch.Tensor]:
    """The anchors of a spoken clip's audio tokens: (n, d) the LLM's input embedding of the word each token mostly
    hears (Hearing.heard_words), and (n,) bool, False for a token over a pause (it has no anchor)."""
    heard = hearing.heard_words(text, variant, model.cfg.audio_stride)
    words = text.lower().split()
    rows = [word_embedding(model, words[j]) if j is not None else word_embedding(model, NOTHING) for j in heard]
    return torch.stack(rows), torch.tensor([j is not None for j in heard])


def audio_anchor_error(model: VisionLanguageModel, hearing: Hearing, clips: list[tuple[str, int]]) -> torch.Tensor:
    """The audio tokens' relative distance to their anchors, as anchor_error's for the image: (clips,), each the
    mean over its anchored tokens of the summed squared distance / (d · the LLM's mean squared embedding entry)."""
    scale = model.llm.get_input_embeddings().weight.detach().float().pow(2).mean() * model.llm.config.hidden_size
    tokens = model.audio_tokens([hearing.states(text, variant) for text, variant in clips])
    errors = []
    for (text, variant), mine in zip(clips, tokens):
        targets, heard = hearing.anchors_of(model, text, variant)
        errors.append((mine[heard] - targets[heard]).pow(2).sum(-1).mean() / scale)
    return torch.stack(errors)


def batch_audio_anchor_error(model, hearing, made: list[tuple]) -> tuple[torch.Tensor, int]:
    """The audio anchors' loss on a training batch: (the relative error summed over its clips, how many clips)."""
    clips = [clip for example, _, _ in made for clip in example.get("spoken", [])]
    if not clips:
        return torch.zeros(()), 0
    return audio_anchor_error(model, hearing, clips).sum(), len(clips)


def anchor_audio_projector(model: VisionLanguageModel, hearing: Hearing, variants: range, steps: int, lr: float,
                           quiet: bool = False) -> list[float]:
    """Stage 1's second part: the audio projector alone learns to put each audio token on the word it hears. Every
    step sees every training clip (each spoken question in each variant: a few dozen), no LLM forward; every
    process computes the same projector. → the relative error per step."""
    from tqdm import tqdm

    clips = [(text, variant) for text in hearing.texts() for variant in variants]
    params = list(model.audio_projector.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    errors = []
    for _ in tqdm(range(steps), desc="stage 1 (audio anchors)", disable=quiet):
        loss = audio_anchor_error(model, hearing, clips).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        errors.append(float(loss.detach()))
    return errors


def tile_targets(scenes: data.MultimodalScenes, indices, grid: int) -> torch.Tensor:
    """What lies under each image token: (B, grid², 3) long — colour, shape, size of the object in the token's
    quadrant, each 1 + its index in data.COLORS / SHAPES / SIZES, or 0 for nothing."""
    colors = list(data.COLORS)
    out = torch.zeros(len(indices), grid * grid, 3, dtype=torch.long)
    for i, index in enumerate(indices):
        for o in scenes.scene(int(index)).objects:
            for t in range(grid * grid):
                row, col = divmod(t, grid)
                if (2 * row // grid) * 2 + 2 * col // grid == o.quadrant:
                    out[i, t] = torch.tensor([1 + colors.index(o.color), 1 + data.SHAPES.index(o.shape),
                                              1 + data.SIZES.index(o.size)])
    return out


def pretrain_tower(model: VisionLanguageModel, scenes: data.MultimodalScenes, steps: int, batch: int, lr: float,
                   seed: int, quiet: bool = False) -> list[float]:
    """Stage 0: train model.vision so that every image token says what lies in its quadrant (linear probes for
    colour, shape and size, thrown away afterwards). Runs on its own, before DDP: every process computes the same
    tower from the same seed. → the loss per step (sum of the three cross-entropies)."""
    from tqdm import tqdm

    from mmcourse.encoding.vision import preprocess_images

    width = model.cfg.vision_width * model.cfg.shuffle ** 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = torch.nn.ModuleList(torch.nn.Linear(width, 1 + n)
                                    for n in (len(data.COLORS), len(data.SHAPES), len(data.SIZES)))
    params = list(model.vision.parameters()) + list(heads.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.vision.train()
    losses = []
    for step in tqdm(range(steps), desc="stage 0", disable=quiet):
        indices = np.random.default_rng([seed, 0, step]).integers(len(scenes), size=batch)
        pixels = preprocess_images([scenes[int(i)]["image"] for i in indices], size=model.cfg.image_size)
        features = model.image_features(pixels)  # (B, N, D · f²)
        targets = tile_targets(scenes, indices, model.cfg.grid)
        loss = sum(F.cross_entropy(head(features).flatten(0, 1), targets[..., k].flatten())
                   for k, head in enumerate(heads))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.vision.eval().requires_grad_(False)
    return losses


def build(tier: str, seed: int, lora_rank: int, tags_after: bool = False, tile_words: int = 3) -> VisionLanguageModel:
    llm, tokenizer = load_llm(tier)
    cfg = VLMConfig(audio_width=384 if tier == "packaged" else 64, lora_rank=lora_rank, tags_after=tags_after,
                    tile_words=tile_words)
    return VisionLanguageModel(llm, tokenizer, cfg, seed=seed)


def train(args) -> dict:
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    rank, world = 0, 1
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        torch.distributed.init_process_group("gloo")
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    _check_batch(args.batch, world)
    model = build(args.tier, args.seed, 0 if args.freeze_llm else args.lora_rank, args.tags_after, args.tile_words)
    hearing = Hearing(args.tier, args.seed, data.speech_backend(args.speech))
    scenes = data.MultimodalScenes(args.train_size, seed=args.seed, n_objects=(1, 2), audio=False)
    variants = range(args.audio_variants)
    hearing.precompute(variants)
    record = {"args": vars(args), "world_size": world, "threads": torch.get_num_threads(),
              "loss": {0: [], 1: [], 2: []}, "step_seconds": {1: [], 2: []}, "anchor_error": {1: [], 2: []},
              "audio_anchor_error": {1: [], 2: []}}
    if args.resume:
        resume(model, record, args)
    else:
        start = time.perf_counter()
        record["loss"][0] = pretrain_tower(model, scenes, args.stage0_steps, args.stage0_batch, args.lr0, args.seed,
                                           quiet=rank != 0 or args.quiet)
        record["stage0_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        record["anchor_error"]["start"] = anchor_projector(model, scenes, args.anchor_steps, args.stage0_batch, args.lr1,
                                                           args.seed, quiet=rank != 0 or args.quiet)
        record["anchor_seconds"] = time.perf_counter() - start
        if args.audio_anchor_steps:
            start = time.perf_counter()
            record["audio_anchor_error"]["start"] = anchor_audio_projector(
                model, hearing, variants, args.audio_anchor_steps, args.lr1, quiet=rank != 0 or args.quiet)
            record["audio_anchor_seconds"] = time.perf_counter() - start
    table = anchor_table(model)
    for stage, steps, lr, tasks in ((1, args.stage1_steps, args.lr1, STAGE1_TASKS),
                                    (2, args.stage2_steps, args.lr2, STAGE2_TASKS)):
        if steps == 0 or (stage == 1 and args.resume):
            continue
        params = set_stage(model, stage, args.freeze_llm)
        net = model if world == 1 else torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        model.train()
        model.vision.eval()  # frozen since stage 0
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        warmup = 10  # a fixed warm-up, then a constant rate: the first k steps of a longer run are a k-step run
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
        bar = tqdm(range(steps), desc=f"stage {stage}", disable=rank != 0 or args.quiet)
        for step in bar:
            start = time.perf_counter()
            made = []
            for slot in range(rank, args.batch, world):
                rng = np.random.default_rng([args.seed, stage, step, slot])
                task = tasks[int(rng.integers(len(tasks)))]
                made.append(make_example(model, hearing, scenes, task, int(rng.integers(args.train_size)), rng, variants,
                                         args.spoken_reply))
            batch = batch_of(model, hearing, scenes, made)
            with torch.autocast("cpu" if not torch.cuda.is_available() else "cuda", dtype=torch.bfloat16,
                                enabled=args.bf16):
                total, count = net(batch, loss=True)
                anchored, n_images = batch_anchor_error(model, table, scenes, made, batch["images"])
                heard, n_clips = (batch_audio_anchor_error(model, hearing, made) if args.audio_anchor_steps
                                  else (torch.zeros(()), 0))
            n_all = torch.tensor([float(count), float(n_images), float(n_clips)])
            if world > 1:
                torch.distributed.all_reduce(n_all)
            n_all = n_all.clamp(min=1)
            # DDP averages gradients over processes: scale by world so the result is the whole batch's mean
            loss = total / n_all[0] + args.anchor_weight * anchored / n_all[1]
            if args.audio_anchor_steps:
                loss = loss + args.anchor_weight * heard / n_all[2]
            (loss * world).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            mean = torch.stack([total.detach() / n_all[0], anchored.detach() / n_all[1], heard.detach() / n_all[2]])
            if world > 1:
                torch.distributed.all_reduce(mean)
            record["loss"][stage].append(float(mean[0]))
            record["anchor_error"][stage].append(float(mean[1]))
            if args.audio_anchor_steps:
                record["audio_anchor_error"][stage].append(float(mean[2]))
            record["step_seconds"][stage].append(time.perf_counter() - start)
            bar.set_postfix(loss=f"{float(mean[0]):.3f}", anchors=f"{float(mean[1]):.4f}",
                            **({"heard": f"{float(mean[2]):.4f}"} if args.audio_anchor_steps else {}))
            if args.loss_record and rank == 0:
                Path(args.loss_record).write_text(json.dumps(record))
            if rank == 0 and args.out and args.save_every and (step + 1) % args.save_every == 0:
                _save(model, args.out, record)
        if stage == 1:  # the aligned model, before instruction tuning (captions): stage 2 starts from this file
            model.load_trained(rounded(model.trained_state()))  # exactly what the file holds (see resume)
            if rank == 0 and args.out:
                _save(model, Path(args.out).with_suffix(".stage1.safetensors"), record)
    model.eval()
    if rank == 0 and args.out:
        _save(model, args.out, record)
    if world > 1:
        torch.distributed.destroy_process_group()
    record["model"] = model
    return record


def rounded(state: dict[str, torch.Tensor], dtype=torch.float16) -> dict[str, torch.Tensor]:
    """The trained tensors as a saved file holds them (VisionLanguageModel.save stores float16)."""
    return {k: v.detach().to(dtype) for k, v in state.items()}


# What stages 0 and 1 depend on: a stage-1 checkpoint is resumed only by a run that agrees on all of them.
STAGE1_ARGS = ("tier", "seed", "stage0_steps", "stage0_batch", "lr0", "anchor_steps", "audio_anchor_steps",
               "anchor_weight", "tile_words",
               "stage1_steps", "batch", "lr1", "lora_rank", "freeze_llm", "tags_after", "train_size", "audio_variants",
               "speech")


def resume(model: VisionLanguageModel, record: dict, args) -> None:
    """Start at stage 2 from a stage-1 checkpoint this script wrote (OUT.stage1.safetensors, its record beside it).

    Stage 2 of a full run starts from the stage-1 weights rounded as the file stores them, so a resumed run gives
    the weights of the full run to the bit, in the time of stage 2 alone. The earlier stages' losses and seconds
    are copied from the checkpoint's record, which also names the file and its sha256."""
    from mmcourse.models.capstone import read_weights
    from mmcourse.packaged.pins import file_sha256

    path = Path(args.resume)
    _check_checkpoint(path)
    saved = json.loads(_record_of(path).read_text())
    _check_resumable(saved["args"], vars(args), path)
    state, _ = read_weights(path)
    model.load_trained(state)
    record["stage0_seconds"], record["anchor_seconds"] = saved["stage0_seconds"], saved["anchor_seconds"]
    record["loss"][0], record["loss"][1] = saved["loss"]["0"], saved["loss"]["1"]
    record["step_seconds"][1] = saved["step_seconds"]["1"]
    if "audio_anchor_seconds" in saved:
        record["audio_anchor_seconds"] = saved["audio_anchor_seconds"]
    for key in ("anchor_error", "audio_anchor_error"):
        record[key]["start"], record[key][1] = saved.get(key, {}).get("start", []), saved.get(key, {}).get("1", [])
    record["resumed_from"] = {"file": path.name, "sha256": file_sha256(path)}


# What a run recorded before an argument existed did instead of that argument's default.
BEFORE_ARGUMENT = {"spoken_reply": "answer"}


def recorded(run_args: dict, key: str):
    """Argument `key` of a run from its record's "args"; one newer than the record: what that run did."""
    return run_args[key] if key in run_args else BEFORE_ARGUMENT.get(key, parser().get_default(key))


def _record_of(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


def _save(model, out, record) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    Path(out).with_suffix(".json").write_text(json.dumps(record, indent=1))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmcourse.models.train_vlm", description=__doc__.split("\n")[0])
    p.add_argument("--tier", default="packaged", choices=("tiny", "packaged", "hub"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage0-steps", type=int, default=800, help="the tower alone (seconds, no LLM)")
    p.add_argument("--stage0-batch", type=int, default=64)
    p.add_argument("--lr0", type=float, default=3e-3)
    p.add_argument("--tile-words", type=int, default=3, choices=sorted(ANCHOR_ATTRIBUTES),
                   help="LLM positions per image tile: 3 = its size, colour and shape words; 1 = its colour word")
    p.add_argument("--anchor-steps", type=int, default=1000, help="stage 1 begins: the image projector alone learns "
                   "the anchors (batches of --stage0-batch images, no LLM: seconds per hundred steps)")
    p.add_argument("--audio-anchor-steps", type=int, default=0, help="then the audio projector alone learns its "
                   "anchors, each audio token on the word it hears (every training clip each step, no LLM), kept "
                   "beside the answers like the image's; 0: none (measured: no better, see the README)")
    p.add_argument("--anchor-weight", type=float, default=1000.0, help="the anchors' loss (image and audio) beside "
                   "the answers' in stages 1 and 2 (0: the answers alone move the tokens after the anchors' parts)")
    p.add_argument("--stage1-steps", type=int, default=200)
    p.add_argument("--stage2-steps", type=int, default=300, help="measured: at 600 'where' reached 100 %% typed and "
                   "spoken, but POPE's popular split fell to F1 0.84 (0.94 at 300) and spoken 'is there' to 89.6 %% "
                   "(100 %%)")
    p.add_argument("--spoken-reply", default="heard-first", choices=SPOKEN_REPLIES, help="heard-first: a spoken "
                   "question's reply is 'Heard: <the question>?' and the answer on the next line; answer: the answer "
                   "alone (measured: the spoken questions then stay at what looking without listening gets)")
    p.add_argument("--batch", type=int, default=8, help="global batch (split across torchrun processes)")
    p.add_argument("--lr1", type=float, default=1e-3)
    p.add_argument("--lr2", type=float, default=1e-3)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--freeze-llm", action="store_true", help="stage 2 without LoRA: the LLM stays untouched")
    p.add_argument("--tags-after", action="store_true", help="the layout '<image> in the top left, …' (place after)")
    p.add_argument("--train-size", type=int, default=20_000, help="scenes to draw training examples from")
    p.add_argument("--audio-variants", type=int, default=3, help="spoken variants (pauses, loudness) per text")
    p.add_argument("--speech", default="auto", choices=("auto", "espeak", "tones"))
    p.add_argument("--out", default="", help="where to save the trained weights (.safetensors; a .json record beside)")
    p.add_argument("--loss-record", default="", help="rewrite this JSON file with the losses after every step")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPUs with AVX-512 BF16, GPUs)")
    p.add_argument("--save-every", type=int, default=0, help="also save every N steps (a run cut short ships)")
    p.add_argument("--resume", default="", help="start at stage 2 from OUT.stage1.safetensors of a run with the "
                   "same stage 0-1 arguments (the same weights as the full run, in the time of stage 2)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    train(args)


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_checkpoint(path: Path) -> None:
    if not path.is_file() or not _record_of(path).is_file():
        raise FileNotFoundError(f"--resume {path}: give the .stage1.safetensors file a run of this script wrote "
                                f"(its record {_record_of(path).name} must lie beside it)")


def _check_resumable(saved: dict, now: dict, path: Path) -> None:
    differ = [f"--{k.replace('_', '-')} {recorded(saved, k)!r} there, {now[k]!r} here" for k in STAGE1_ARGS
              if recorded(saved, k) != now[k]]
    if differ:
        raise ValueError(f"--resume {path.name}: that checkpoint was trained with other stage 0-1 arguments ("
                         + "; ".join(differ) + "): pass the same ones, or train from the start without --resume")


def _check_spoken_reply(reply: str) -> None:
    if reply not in SPOKEN_REPLIES:
        raise ValueError(f"spoken_reply {reply!r}: use one of {', '.join(SPOKEN_REPLIES)}")


def _check_tile_words(k: int) -> None:
    if k not in ANCHOR_ATTRIBUTES:
        raise ValueError(f"tile_words {k}: train_vlm anchors {' or '.join(map(str, sorted(ANCHOR_ATTRIBUTES)))} words "
                         "per tile (3: size, colour, shape; 1: colour); build the model with one of those")


def _check_batch(batch: int, world: int) -> None:
    if batch < world or batch % world:
        raise ValueError(f"--batch {batch} must be a multiple of the number of processes ({world}), so that every "
                         "process gets the same number of examples")


if __name__ == "__main__":
    main()
