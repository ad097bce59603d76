"""Do the shipped capstone weights come from the script? Retrain from the shipped run's own arguments and seed and
compare with the run's record (mmcourse/models/weights/capstone.json).

    python -m benchmarks.capstone_reproduce            # stage 0 in full + the first 3 steps of stage 1 (minutes)
    python -m benchmarks.capstone_reproduce --full     # the whole run, then the weights themselves (tens of minutes)

Every example is a pure function of (seed, stage, step, slot) and the learning rate is a fixed warm-up then a
constant, so the first K steps of the shipped stage 1 are a K-step stage 1: the quick check compares the loss of
every stage-0 step and of the first K stage-1 steps. With the thread count the record names they agree to the last
bit; with another, to float tolerance (sums are taken in another order). --full retrains everything and compares
the trained tensors with the shipped file (as stored: float16).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import machine, table
from mmcourse.models.capstone import WEIGHTS, read_weights
from mmcourse.models.train_vlm import parser as train_parser
from mmcourse.models.train_vlm import rounded, train


def shipped_args(record: dict, steps: int | None) -> argparse.Namespace:
    """The training arguments of the shipped run (its record), cut to `steps` of stage 1 and none of stage 2."""
    args = train_parser().parse_args([])
    for key, value in record["args"].items():
        if hasattr(args, key):
            setattr(args, key, value)
    args.out, args.loss_record, args.save_every, args.quiet = "", "", 0, True
    args.resume = ""  # a run resumed from its stage-1 checkpoint is retrained from the start
    if steps is not None:
        args.stage1_steps, args.stage2_steps = min(steps, args.stage1_steps), 0
    return args


def largest_gap(a: list[float], b: list[float]) -> float:
    return max((abs(x - y) for x, y in zip(a, b)), default=float("nan"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.capstone_reproduce", description=__doc__.split("\n")[0])
    p.add_argument("--weights", default=str(WEIGHTS), help="a .safetensors file with its .json record beside it")
    p.add_argument("--steps", type=int, default=3, help="stage-1 steps to compare (quick check)")
    p.add_argument("--full", action="store_true", help="retrain the whole run and compare the weights")
    p.add_argument("--threads", type=int, default=None, help="default: the thread count of the shipped run")
    args = p.parse_args(argv)
    record = json.loads(Path(args.weights).with_suffix(".json").read_text())
    threads = args.threads or record.get("threads", 1)
    torch.set_num_threads(threads)
    again_args = shipped_args(record, None if args.full else args.steps)
    start = time.perf_counter()
    again = train(again_args)
    seconds = time.perf_counter() - start
    rows = []
    for stage, ours, theirs in (("stage 0 loss", again["loss"][0], record["loss"].get("0", [])),
                                ("stage 1 anchors' error", again["anchor_error"]["start"],
                                 record.get("anchor_error", {}).get("start", [])),
                                ("stage 1 loss", again["loss"][1], record["loss"].get("1", [])),
                                ("stage 2 loss", again["loss"][2], record["loss"].get("2", []))):
        if ours:
            rows.append({"compared": f"{stage}, {len(ours)} steps", "largest difference":
                         f"{largest_gap(ours, theirs):.3g}", "identical": ours == theirs[:len(ours)]})
    if args.full:
        shipped, _ = read_weights(args.weights)
        mine = rounded(again["model"].trained_state())
        gap = max(float((mine[k].float() - shipped[k].float()).abs().max()) for k in shipped)
        rows.append({"compared": f"{len(shipped)} trained tensors (float16)", "largest difference": f"{gap:.3g}",
                     "identical": all(torch.equal(mine[k], shipped[k]) for k in shipped)})
    print(f"capstone reproduction · {'full run' if args.full else f'stage 0 + {again_args.stage1_steps} stage-1 steps'}"
          f" · {threads} thread(s) (the record: {record.get('threads', 'not recorded')}) · {machine()} · "
          f"{seconds:.0f} s of training")
    print(table(rows, ["compared", "largest difference", "identical"]))


if __name__ == "__main__":
    main()
