"""Encoding: each modality becomes Tokens (states (B, L, D) + padding_mask (B, L), True = padding).

    text.py     tokenizer, attention masks, masked mean pooling, a BERT-style TextEncoder
    vision.py   pixels → normalised tensors, patches, a ViT-style ImageEncoder
    audio.py    waveform → 16 kHz mono → log-mel (80, 3000) → a Whisper-style AudioEncoder
"""

from mmcourse.encoding import audio, text, vision
from mmcourse.encoding.audio import (AudioEncoder, frames_to_states, load_audio, log_mel_spectrogram, mel_filters,
                                     pad_or_trim, real_state_mask, resample, to_float_mono)
from mmcourse.encoding.text import (TextEncoder, attention_bias, attention_mask_from_ids, masked_mean_pool,
                                    max_positions, tiny_tokenizer, tiny_vocabulary)
from mmcourse.encoding.vision import (ImageEncoder, as_chw, image_list, patchify, preprocess_images,
                                      resize_position_embeddings, unpatchify)

__all__ = ["text", "vision", "audio",
           "TextEncoder", "tiny_tokenizer", "tiny_vocabulary", "attention_mask_from_ids", "attention_bias",
           "masked_mean_pool", "max_positions",
           "ImageEncoder", "as_chw", "image_list", "preprocess_images", "patchify", "unpatchify", "resize_position_embeddings",
           "AudioEncoder", "to_float_mono", "resample", "load_audio", "pad_or_trim", "mel_filters",
           "log_mel_spectrogram", "frames_to_states", "real_state_mask"]
