"""Decoding: from Tokens back to text, images and audio.

    text.py      a causal TextDecoder conditioned by prefix (LLaVA) or cross-attention (Whisper), teacher forcing
    generate.py  generation loops for any model: greedy, sampling with temperature / top-k / top-p, beam search
    image.py     a patch decoder that draws a scene from its caption, and a probe that checks the drawing
    audio.py     a mel decoder (text → log-mel) and the way back to a waveform (Griffin-Lim)
"""

from mmcourse.decoding import audio, generate, image, text
from mmcourse.decoding.audio import (INITIAL_FRAMES, N_MELS, MelDecoder, MelDecoderConfig, frames_to_seconds, log_mel_to_power,
                                     masked_l1, mel_to_linear, mel_to_waveform, real_frame_mask, seconds_to_frames)
from mmcourse.decoding.generate import (Step, beam_search, decoder_step, filter_logits, greedy_decode, sample_decode,
                                        suppress, whisper_step)
from mmcourse.decoding.image import (ATTRIBUTES, AttributeProbe, ImageDecoderConfig, PatchImageDecoder,
                                     attribute_accuracy,
                                     average_per_caption, generate_images, per_image_mse, to_unit_range)
from mmcourse.decoding.text import (IGNORE_INDEX, DecoderConfig, KVCache, TextDecoder, make_labels,
                                    teacher_forcing_loss)

__all__ = ["text", "generate", "image", "audio",
           "IGNORE_INDEX", "DecoderConfig", "KVCache", "TextDecoder", "make_labels", "teacher_forcing_loss",
           "Step", "decoder_step", "whisper_step", "suppress", "greedy_decode", "filter_logits", "sample_decode",
           "beam_search",
           "ATTRIBUTES", "to_unit_range", "per_image_mse", "average_per_caption", "ImageDecoderConfig", "PatchImageDecoder",
           "generate_images", "AttributeProbe", "attribute_accuracy",
           "N_MELS", "INITIAL_FRAMES", "seconds_to_frames", "frames_to_seconds", "real_frame_mask", "masked_l1",
           "MelDecoderConfig", "MelDecoder", "log_mel_to_power", "mel_to_linear", "mel_to_waveform"]
