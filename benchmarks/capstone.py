"""The capstone model measured: one table of what it must show (issue 12), every figure computed here.

    python -m benchmarks.capstone [--tier packaged] [--weights FILE] [--n 48] [--threads 2] [--json out.json]

On held-out scenes (a dataset seed training never used) and unseen spoken variants (pauses, loudness):
  - answer accuracy (normalised exact match): "where is the X shape" and "is there a X shape", typed and spoken
    (a spoken question's reply begins with the question heard: how often that is the question, word for word)
  - caption exact match ("Describe the image.")
  - blind tests: the same questions with the image replaced by noise (NOISE_DRAWS draws), or the spoken question
    by silence, against the chance of a blind answer: what its own answers score on the other scenes
    (metrics.unpaired_accuracy, a permutation baseline). That is 1/4 and 1/2 only where answers and truths spread
    evenly; silence hides which kind of question was asked as well, so no answer that ignores the audio can be
    within 10 points of 1/4 on "where" and of 1/2 on "is there" at once (a place on a fraction q of them:
    25·q and 50·(1 - q)). And what looking without listening gets on "where": the quadrant of one of the scene's
    objects, right with probability 1 / (number of objects), 73 % on 1-2 objects
  - POPE, "Is there a {colour} {shape} in the image?", half yes, half no with random / popular / adversarial
    negatives: accuracy, F1, yes-ratio per split
  - the LLM's language: fixed text-only prompts, greedy, with LoRA switched off (must equal the untouched
    SmolLM2 token for token) and on (how many change)
  - speed: the package's greedy loop with the KV cache (VisionLanguageModel.generate) against transformers'
    generate() on the same prompts: identical tokens?, tokens/s each
  - training: seconds per step of each stage and the losses, from the weights' record (weights/capstone.json)
  - peak memory of this process (max RSS)
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import machine, table
from mmcourse import data
from mmcourse.metrics import normalised_match, pope_scores, unpaired_accuracy
from mmcourse.models.capstone import WEIGHTS, load_capstone
from mmcourse.models.train_vlm import DESCRIBE, POPE_NEGATIVES, Hearing, pope_question

HELD_OUT_SEED = 10_000  # training draws scenes from seed 0
UNSEEN_VARIANTS = range(100, 103)  # training hears variants 0, 1, 2 of each spoken question
TEXT_PROMPTS = ("What is the capital of France? Answer in one word.", "Name a primary colour.",
                "How many sides does a triangle have?", "Write one word that rhymes with cat.",
                "What is 2 + 3?", "Say hello in French.")
NOISE_DRAWS = 4  # 48 scenes: one answer moves a blind row by 2 points, one noise draw by up to 15 (measured)
SPOKEN_TOKENS = 24  # "Heard: where is the yellow shape?" is about 10 tokens before the answer


def answers(capstone, images, questions, audio=(), batch=16, max_new_tokens=8, heard=False) -> list:
    """The answers (VisionLanguageModel.answer) in batches; heard=True: (what it heard, answer) pairs."""
    out = []
    for i in range(0, len(questions), batch):
        imgs = None if images is None else images[i:i + batch]
        clips = list(audio[i:i + batch]) if len(audio) else []
        out += capstone.vlm.answer(imgs, questions[i:i + batch], audio=clips, max_new_tokens=max_new_tokens,
                                   heard=heard)
    return out


def accuracy(said, truth) -> float:
    return 100.0 * sum(normalised_match(s, t) for s, t in zip(said, truth)) / len(truth)


def evaluate(capstone, tier: str, n: int, seed: int = 0) -> list[dict]:
    from mmcourse.encoding.vision import preprocess_images

    scenes = data.MultimodalScenes(n, seed=HELD_OUT_SEED, n_objects=(1, 2), audio=False)
    hearing = Hearing(tier, seed, data.speech_backend("auto"))
    hearing.encoder, hearing.features = capstone.encoder, capstone.features
    rng = np.random.default_rng(seed)
    items = [scenes[i] for i in range(n)]
    pixels = preprocess_images([it["image"] for it in items], size=capstone.vlm.cfg.image_size)
    noise = [torch.rand(pixels.shape, generator=torch.Generator().manual_seed(seed + d)) * 2 - 1  # the same every run
             for d in range(NOISE_DRAWS)]
    rows = []
    for kind, text_key, truth_of, chance in (
            ("where", "question", lambda it: data.QUADRANTS[it["answer"]], 25.0),
            ("is there", "presence_question", lambda it: "yes" if it["presence_answer"] else "no", 50.0)):
        texts = [it[text_key] for it in items]
        truth = [truth_of(it) for it in items]
        typed = [t + "?" for t in texts]
        clips = [hearing.states(t, int(rng.choice(UNSEEN_VARIANTS))) for t in texts]
        silence = [torch.as_tensor(capstone.hear(np.zeros(len(c) * 320, dtype=np.float32))) for c in clips]
        spoken = answers(capstone, pixels, [""] * n, clips, max_new_tokens=SPOKEN_TOKENS, heard=True)
        rows += [
            {"measure": f"{kind}: typed", "value": accuracy(answers(capstone, pixels, typed), truth), "chance": chance},
            {"measure": f"{kind}: spoken", "value": accuracy([a for _, a in spoken], truth), "chance": chance},
            {"measure": f"{kind}: spoken, the question heard word for word",
             "value": accuracy([h or "" for h, _ in spoken], texts), "chance": 0.0, "example": spoken[0][0]},
        ]
        # a blind answer's chance is what its own answers score on the other scenes: 1/4 and 1/2 only where
        # the answers and the truths spread evenly (48 scenes need not); mean over the noise draws
        blind = [answers(capstone, image, typed) for image in noise]
        rows.append({"measure": f"{kind}: typed, image = noise ({NOISE_DRAWS} draws; chance: its answers on the "
                                f"other scenes)",
                     "value": round(float(np.mean([accuracy(said, truth) for said in blind])), 1),
                     "chance": round(float(np.mean([100 * unpaired_accuracy(said, truth) for said in blind])), 1),
                     "example": blind[0][0]})
        # silence hides the question's kind too: a deaf answer's chance is what it scores on the other scenes
        deaf = answers(capstone, pixels, [""] * n, silence, max_new_tokens=SPOKEN_TOKENS)
        rows.append({"measure": f"{kind}: spoken, audio = silence (chance: its answers on the other scenes)",
                     "value": accuracy(deaf, truth), "chance": round(100 * unpaired_accuracy(deaf, truth), 1),
                     "example": deaf[0]})
    # a model that looks but ignores the question names the quadrant of some object: right with 1 / (objects)
    rows.insert(1, {"measure": "where: the image alone (a guess among the scene's objects)", "chance": 25.0,
                    "value": 100.0 * float(np.mean([1 / len(scenes.scene(i).objects) for i in range(n)]))})
    captions = answers(capstone, pixels, [DESCRIBE] * n, max_new_tokens=30)
    rows.append({"measure": "caption exact match (shipped model)",
                 "value": accuracy(captions, [it["caption"] for it in items]), "chance": 0.0, "example": captions[0]})
    for negative in POPE_NEGATIVES:
        questions, truth = [], []
        for i, it in enumerate(items):
            prng = np.random.default_rng([seed, i, POPE_NEGATIVES.index(negative)])
            # even items ask about a present object, odd ones about an absent one: half yes, half no
            q, t = pope_question(scenes.scene(i), prng, "yes" if i % 2 == 0 else negative)
            questions.append(q)
            truth.append(t)
        scores = pope_scores(answers(capstone, pixels, questions), truth)
        rows.append({"measure": f"POPE {negative}: accuracy / F1 / yes-ratio",
                     "value": f"{100 * scores['accuracy']:.1f} / {scores['f1']:.2f} / {scores['yes_ratio']:.2f}",
                     "chance": "50.0 / - / 0.50"})
    return rows, pixels


def language_and_speed(capstone, pixels) -> list[dict]:
    vlm, tok = capstone.vlm, capstone.vlm.tokenizer
    rows = []
    prompts = [vlm.example(p, n_images=0) for p in TEXT_PROMPTS]
    untouched = []
    base = vlm.llm.get_base_model() if hasattr(vlm.llm, "get_base_model") else vlm.llm
    with capstone.plain_llm(), torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p["input_ids"]])
            out = base.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
            untouched.append(out[:out.index(tok.eos_token_id)] if tok.eos_token_id in out else out)
        frozen = [vlm.generate(vlm.collate([p], left_pad=True), 16)[0] for p in prompts]
    lora = [vlm.generate(vlm.collate([p], left_pad=True), 16)[0] for p in prompts]
    rows.append({"measure": "text-only prompts identical, LoRA off (frozen LLM)",
                 "value": f"{sum(a == b for a, b in zip(frozen, untouched))} / {len(prompts)}"})
    rows.append({"measure": "text-only prompts changed by LoRA", "value": f"{sum(a != b for a, b in zip(lora, untouched))} / "
                                                                          f"{len(prompts)}",
                 "example": f"{TEXT_PROMPTS[0]} → {tok.decode(lora[0])!r} (untouched: {tok.decode(untouched[0])!r})"})
    # speed: the same (up to) 8 multimodal prompts, 16 new tokens, no early stop
    k = min(8, len(pixels))
    batch = vlm.collate([vlm.example(f"<image>\n{DESCRIBE}") for _ in range(k)], images=pixels[:k], left_pad=True)
    timings = {}
    for turn in range(2):  # the two take turns; the second round counts (warm)
        start = time.perf_counter()
        ours = _no_stop_greedy(vlm, batch, 16)
        timings["own"] = time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            theirs = vlm.llm.generate(inputs_embeds=vlm.embed(batch), attention_mask=batch["attention_mask"],
                                      max_new_tokens=16, min_new_tokens=16, do_sample=False,
                                      pad_token_id=tok.pad_token_id)
        timings["generate"] = time.perf_counter() - start
    n_tokens = k * 16
    rows.append({"measure": "greedy: own KV-cache loop = generate() tokens", "value": str(ours.tolist() == theirs.tolist())})
    rows.append({"measure": "greedy tokens/s: own loop / generate()",
                 "value": f"{n_tokens / timings['own']:.1f} / {n_tokens / timings['generate']:.1f}"})
    return rows


def _no_stop_greedy(vlm, batch, n):
    from mmcourse.decoding.generate import greedy_decode
    from mmcourse.models.vlm import embeds_step

    with torch.no_grad():
        # generate(min_new_tokens=n) forbids the end mark for n tokens: so must we, to compare like with like
        ids = greedy_decode(embeds_step(vlm, batch), batch["input_ids"], n, eos_id=None,
                            suppress_tokens=[vlm.tokenizer.eos_token_id])
    return ids[:, batch["input_ids"].shape[1]:]


def training_rows(weights: Path) -> list[dict]:
    record_path = Path(weights).with_suffix(".json")
    if not record_path.is_file():
        return []
    record = json.loads(record_path.read_text())
    rows = []
    if record["loss"].get("0"):
        tower = record["loss"]["0"]
        rows.append({"measure": "training stage 0 (the tower alone): steps, seconds, loss first → last",
                     "value": f"{len(tower)}, {record.get('stage0_seconds', float('nan')):.0f}, "
                              f"{tower[0]:.2f} → {tower[-1]:.2f}"})
    anchors = record.get("anchor_error", {})
    if anchors.get("start"):
        rows.append({"measure": "training stage 1 begins, the anchors alone: steps, seconds, relative error first → last",
                     "value": f"{len(anchors['start'])}, {record.get('anchor_seconds', float('nan')):.0f}, "
                              f"{anchors['start'][0]:.3g} → {anchors['start'][-1]:.3g}"})
    heard = record.get("audio_anchor_error", {})
    if heard.get("start"):
        rows.append({"measure": "then the audio anchors alone: steps, seconds, relative error first → last",
                     "value": f"{len(heard['start'])}, {record.get('audio_anchor_seconds', float('nan')):.0f}, "
                              f"{heard['start'][0]:.3g} → {heard['start'][-1]:.3g}"})
    for stage in ("1", "2"):
        secs, losses = record["step_seconds"].get(stage, []), record["loss"].get(stage, [])
        if secs:
            rows.append({"measure": f"training stage {stage}: steps, median s/step, loss first → last",
                         "value": f"{len(secs)}, {float(np.median(secs)):.1f}, {losses[0]:.2f} → {losses[-1]:.2f}"})
        if anchors.get(stage):
            rows.append({"measure": f"training stage {stage}: the anchors' relative error (image / audio), median",
                         "value": f"{float(np.median(anchors[stage])):.3g} / "
                                  f"{float(np.median(heard.get(stage) or [float('nan')])):.3g}"})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capstone", description=__doc__.split("\n")[0])
    parser.add_argument("--tier", default="packaged", choices=("tiny", "packaged", "hub"))
    parser.add_argument("--weights", default=None, help=f"default: the shipped {WEIGHTS.name}")
    parser.add_argument("--stage1-weights", default=None, help="weights after stage 1: caption exact match there too")
    parser.add_argument("--n", type=int, default=48, help="held-out scenes per measure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    capstone = load_capstone(args.tier, weights=args.weights)
    load_s = time.perf_counter() - start
    rows = [{"measure": "load the capstone model (s)", "value": load_s}]
    more, pixels = evaluate(capstone, args.tier, args.n)
    if args.stage1_weights:
        aligned = load_capstone(args.tier, weights=args.stage1_weights)
        scenes = data.MultimodalScenes(args.n, seed=HELD_OUT_SEED, n_objects=(1, 2), audio=False)
        said = answers(aligned, pixels, [DESCRIBE] * args.n, max_new_tokens=30)
        more.append({"measure": "caption exact match after stage 1",
                     "value": accuracy(said, [scenes.scene(i).caption for i in range(args.n)]), "chance": 0.0,
                     "example": f"{said[0]!r} (truth: {scenes.scene(0).caption!r})"})
        del aligned
    rows += more + language_and_speed(capstone, pixels) + training_rows(Path(args.weights or WEIGHTS))
    rows.append({"measure": "peak memory of this process (MiB)",
                 "value": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    print(f"capstone benchmark · tier {args.tier} · {args.n} held-out scenes per measure · {machine()} · "
          f"{time.perf_counter() - start:.0f} s")
    print(table(rows, ["measure", "value", "chance", "example"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
