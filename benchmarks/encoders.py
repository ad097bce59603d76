"""Encoder speed: our log-mel against transformers', and batched encoders against a per-sample loop.

    python -m benchmarks.encoders [--batch 16] [--repeats 5] [--threads 2]

1. `mmcourse.encoding.audio.log_mel_spectrogram(pad_or_trim(w))` vs `WhisperFeatureExtractor` on 30 s clips,
   batch 1 and `--batch` (goal: not slower). Both start from float waveforms and end with a tensor.
2. For each tiny-tier encoder (BERT, ViT, Whisper's encoder at 30 s): `--batch` items in one call
   vs one call per item, in items per second, and the speed-up of batching.

Every number is the median of `--repeats` timed runs after one warm-up run, under torch.inference_mode.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.common import machine, table
from mmcourse import runtime, tiers
from mmcourse.encoding import audio


def median_seconds(fns: dict, repeats: int) -> dict:
    """name → median wall time of fn() over `repeats` runs, taking turns (mmcourse.runtime.run_times)."""
    return {name: statistics.median(t) for name, t in runtime.run_times(fns, repeats).items()}


def log_mel_rows(batch: int, repeats: int) -> list[dict]:
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80)
    g = torch.Generator().manual_seed(0)
    rows = []
    for b in sorted({1, batch}):
        waves = (torch.rand(b, audio.N_SAMPLES, generator=g) - 0.5) * 0.6  # (B, 480 000): 30 s each
        arrays = [w.numpy() for w in waves]
        t = median_seconds({"ours": lambda: audio.log_mel_spectrogram(audio.pad_or_trim(waves)),
                            "theirs": lambda: extractor(arrays, sampling_rate=16000, return_tensors="pt")}, repeats)
        ours, theirs = t["ours"], t["theirs"]
        rows.append({"batch of 30 s clips": b, "log_mel_spectrogram ms": ours * 1000,
                     "WhisperFeatureExtractor ms": theirs * 1000, "ours is faster by": f"{theirs / ours:.2f}x"})
    return rows


def encoder_inputs(batch: int) -> dict:
    """name → (model, list of per-item keyword dicts, one batched keyword dict), all in the tiny tier."""
    g = torch.Generator().manual_seed(0)
    text_model, tokenizer = tiers.load_text_encoder("tiny")
    words = ["where", "is", "the", "red", "blue", "green", "small", "large", "circle", "square", "shape"]
    texts = [" ".join(words[int(i)] for i in torch.randint(len(words), (n,), generator=g))
             for n in torch.randint(3, 12, (batch,), generator=g).tolist()]
    text_items = [dict(tokenizer([t], return_tensors="pt")) for t in texts]
    text_batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))

    image_model, _ = tiers.load_image_encoder("tiny")
    size = image_model.config.image_size
    pixels = torch.rand(batch, 3, size, size, generator=g) * 2 - 1  # normalised images, (B, 3, 64, 64)

    audio_model, _ = tiers.load_audio_encoder("tiny")  # 30 s window
    waves = (torch.rand(batch, audio.N_SAMPLES // 10, generator=g) - 0.5) * 0.6  # 3 s of sound in each window
    features = audio.log_mel_spectrogram(audio.pad_or_trim(waves))  # (B, 80, 3000)
    return {
        f"text: tiny BERT ({text_batch['input_ids'].shape[1]} tokens)": (text_model, text_items, text_batch),
        f"image: tiny ViT ({size}×{size})": (image_model, [{"pixel_values": p[None]} for p in pixels],
                                              {"pixel_values": pixels}),
        "audio: tiny Whisper encoder (30 s)": (audio_model, [{"input_features": f[None]} for f in features],
                                                {"input_features": features}),
    }


def throughput_rows(batch: int, repeats: int) -> list[dict]:
    rows = []
    for name, (model, items, batched) in encoder_inputs(batch).items():
        t = median_seconds({"loop": lambda: [model(**item) for item in items],
                            "batched": lambda: model(**batched)}, repeats)
        loop, together = t["loop"], t["batched"]
        rows.append({"encoder": name, "loop items/s": batch / loop, f"batch of {batch} items/s": batch / together,
                     "speed-up": f"{loop / together:.2f}x"})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="items per batch (default 16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the course's budget machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"\nEncoder benchmarks, tiny tier — {machine()}")
    print("median of timed runs after a warm-up, torch.inference_mode\n")
    print("1. Whisper log-mel features of 30 s clips: mmcourse.encoding.audio vs transformers (goal: not slower)\n")
    print(table(log_mel_rows(args.batch, args.repeats), ["batch of 30 s clips", "log_mel_spectrogram ms",
                                                          "WhisperFeatureExtractor ms", "ours is faster by"]))
    print(f"\n2. Encoder throughput: one call per item vs one batched call of {args.batch}\n")
    print(table(throughput_rows(args.batch, args.repeats),
                ["encoder", "loop items/s", f"batch of {args.batch} items/s", "speed-up"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
