"""A language model that sees and hears, LLaVA's way: projected encoder states take the places of placeholders.

    prompt  "<|im_start|>user\\n<image>\\nwhere is the red shape?<|im_end|>\\n<|im_start|>assistant\\n"
    layout  "top left: <image> top right: <image> bottom left: <image> bottom right: <image>\\nwhere is …"
    ids     … <image> ×3 per tile …              each placeholder expanded to as many positions as its encoder yields
    embeds  … image tokens (12, 576) …           the LLM's word embeddings, placeholder positions overwritten
    labels  -100 … -100  "top left<|im_end|>"    loss on the assistant's answer only
    spoken  "<image>\n<audio>" → "Heard: where is the red shape?\ntop left"   it writes down what it heard, then
                                                                             answers those words as if typed

The layout step names each image token's place in words, as SmolVLM/Idefics3 write `<row_1_col_1>` before each
tile of a split image: the LLM then finds "the red one" among the image tokens and copies the words in front of
it, something a pretrained LLM already does with text, instead of having to learn what the k-th position means.
Each tile is 3 positions, which train_vlm anchors to the LLM's own embeddings of the words for what lies there
(size, colour, shape, or "nothing"): image tokens that lie where words lie are read like words.

    image (B, 3, 64, 64) → ViT (B, 1 + 64, 64) → drop [CLS], pixel_shuffle(4) (B, 4 tiles, 1024)
                         → Projector (B, 4, 3 · d) → each tile's 3 words in a row (B, 12, d)
    audio (T,) 16 kHz    → Whisper encoder (1500, 384) → the ⌈T / 320⌉ states that cover the clip
                         → downsample_frames(stride 16, stack) (⌈n / 16⌉, 6144) → Projector → (⌈n / 16⌉, d)

Few positions on purpose: every position costs the LLM's whole depth (a 2 s question is 7 audio positions).

    model = VisionLanguageModel(llm, tokenizer)                 # the LLM from mmcourse.models.load_llm(tier)
    example = model.example("<image>\\nwhere is the red shape?", "top left", n_audio=[])
    batch = model.collate([example], images=pixel_values)       # input_ids, labels, attention_mask, images, audio
    loss_sum, n_tokens = model.loss(batch)
    model.answer(pixel_values, "where is the red shape?")       # → ["top left"]
    model.answer(pixel_values, "", audio=[states], heard=True)  # → [("where is the red shape", "top left")]

A spoken question is answered "heard first" (the chain of modality of SpeechGPT): the reply begins with the
question it heard, a transcript, which stage 1 of train_vlm taught, and the answer reads those words as text, the
way it reads a typed question. Measured (README): trained to answer at once, the model learnt to answer typed
questions but not spoken ones (it answered where it looked, not what it was asked), although the same audio
tokens transcribed word for word.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.fusion.compress import downsample_frames, downsampled_length, pixel_shuffle
from mmcourse.fusion.projector import Projector
from mmcourse.models.llm import AUDIO_TOKEN, IMAGE_TOKEN, SYSTEM_PROMPT, media_token_ids

IGNORE = -100  # the label cross_entropy skips: every position that is not the assistant's answer
HOP = 320  # Whisper: 160 samples per mel frame, 2 frames per encoder state → one state per 20 ms at 16 kHz
MAX_AUDIO_SECONDS = 30  # Whisper's window
HEARD = "Heard:"  # how the reply to a spoken question begins: the question heard, then the answer on its own line


def heard_first(question: str, answer: str) -> str:
    """The reply a spoken question is trained on: "Heard: where is the red shape?\ntop left"."""
    return f"{HEARD} {question}?\n{answer}"


def split_heard(reply: str) -> tuple[str | None, str]:
    """A reply → (the question it heard, or None for a reply that does not begin with HEARD; the answer).

    A reply cut off before its answer gives the answer "" (generate more tokens: the heard part is about 10)."""
    if not reply.startswith(HEARD):
        return None, reply.strip()
    heard, _, answer = reply[len(HEARD):].partition("\n")
    return heard.strip().rstrip("?"), answer.strip()


@dataclass
class VLMConfig:
    image_size: int = 64  # the vision tower reads (3, 64, 64) images
    patch_size: int = 8  # → 8 × 8 = 64 patches
    vision_width: int = 64  # the tiny ViT's width
    vision_layers: int = 2
    shuffle: int = 4  # pixel shuffle 4 × 4 → 4 tiles of width 16 · 64 (one per quadrant of the scene)
    audio_width: int = 384  # Whisper tiny.en's encoder (the tiny tier's is 64)
    audio_stride: int = 16  # 16 neighbouring Whisper states (320 ms, about a word) → one LLM position
    audio_mode: str = "stack"
    lora_rank: int = 0  # 0: no LoRA (the LLM stays exactly as loaded)
    tile_tags: bool = True  # write each image token's place beside it in words
    tile_words: int = 3  # LLM positions per tile: one each for its size, colour and shape words (train_vlm anchors them)
    tags_after: bool = False  # the place after the token ("<image> in the top left, …"), else before ("top left: <image>")

    @property
    def grid(self) -> int:
        """Image tokens per side after pixel shuffle (64 px / 8 px patches / shuffle 4 → 2)."""
        return self.image_size // self.patch_size // self.shuffle

    @property
    def tiles(self) -> int:
        """Tiles per image after pixel shuffle (2 × 2 = 4 on the default grid: the scene's quadrants)."""
        return self.grid ** 2

    @property
    def image_tokens(self) -> int:
        """LLM positions per image: tile_words for each tile."""
        return self.tiles * self.tile_words


def tile_names(grid: int) -> list[str]:
    """The words for each image token's place, row-major: the quadrants on a 2 × 2 grid, else "row r col c"."""
    from mmcourse.data import QUADRANTS

    if grid == 2:
        return list(QUADRANTS)
    return [f"row {r + 1} col {c + 1}" for r in range(grid) for c in range(grid)]


def image_layout(cfg: VLMConfig) -> str:
    """What one `<image>` in a user message becomes before tokenising: one `<image>` per tile, each after its place
    (cfg.tile_tags; each widened to cfg.tile_words positions), or the single `<image>` that expand_placeholders
    widens to cfg.image_tokens."""
    if not cfg.tile_tags:
        return IMAGE_TOKEN
    if cfg.tags_after:  # what, then where: the order of the captions ("a red circle in the top left")
        return ", ".join(f"{IMAGE_TOKEN} in the {name}" for name in tile_names(cfg.grid))
    return " ".join(f"{name}: {IMAGE_TOKEN}" for name in tile_names(cfg.grid))


class VisionLanguageModel(nn.Module):
    """An LLM (LlamaForCausalLM) + a vision tower and a projector per modality into the LLM's width."""

    def __init__(self, llm, tokenizer, cfg: VLMConfig | None = None, seed: int = 0):
        super().__init__()
        from mmcourse.tiers import load_image_encoder

        self.cfg = cfg = cfg or VLMConfig()
        self.tokenizer = tokenizer
        self.media = media_token_ids(tokenizer)
        d = llm.config.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vision = load_image_encoder("tiny", image_size=cfg.image_size, patch_size=cfg.patch_size,
                                             hidden_size=cfg.vision_width, num_hidden_layers=cfg.vision_layers,
                                             seed=seed).model
            self.image_projector = Projector(cfg.vision_width * cfg.shuffle ** 2, d * cfg.tile_words, hidden=d)
            stacked = cfg.audio_width * (cfg.audio_stride if cfg.audio_mode == "stack" else 1)
            self.audio_projector = Projector(stacked, d, hidden=d)
        for p in llm.parameters():
            p.requires_grad_(False)
        if cfg.lora_rank:
            from peft import LoraConfig, get_peft_model

            llm = get_peft_model(llm, LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj"]))
        self.llm = llm

    # ------------------------------------------------------------ encoders → LLM width

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, S, S) float, normalised → the tower's patches, pixel-shuffled: (B, N, D · shuffle²),
        N = (S / P / shuffle)² in row-major order (on the default 2 × 2 grid: top left, top right, bottom …)."""
        _check_pixels(pixel_values, self.cfg.image_size)
        patches = self.vision(pixel_values).last_hidden_state[:, 1:]  # (B, (S / P)², D) without [CLS]
        return pixel_shuffle(patches, self.cfg.shuffle)

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, S, S) float, normalised → (B, N · k, d): N = (S / P / shuffle)² tiles per image, k =
        cfg.tile_words positions per tile (the projector's output (B, N, k · d), each tile's k words in a row)."""
        tiles = self.image_projector(self.image_features(pixel_values))  # (B, N, k · d)
        return tiles.reshape(tiles.shape[0], -1, tiles.shape[-1] // self.cfg.tile_words)

    def audio_tokens(self, states: list[torch.Tensor]) -> list[torch.Tensor]:
        """Whisper states of each clip, (n_i, D_audio) → (⌈n_i / stride⌉, d) each."""
        return [self.audio_projector(downsample_frames(s[None], self.cfg.audio_stride, self.cfg.audio_mode))[0]
                for s in states]

    def audio_token_count(self, n_states: int) -> int:
        return downsampled_length(n_states, self.cfg.audio_stride)

    # ------------------------------------------------------------ prompts, placeholders, labels

    def example(self, user: str, answer: str | None = None, n_audio: list[int] = (), n_images: int | None = None,
                system: str = SYSTEM_PROMPT) -> dict:
        """One chat turn → {"input_ids": [...], "labels": [...]}, every placeholder expanded.

        user: the user's message with `<image>` / `<audio>` where the media go. n_audio: the number of Whisper
        states of each clip, in order (each `<audio>` becomes ⌈n / stride⌉ positions). n_images: how many images
        come with it (default: as many as there are `<image>`s). answer None: a prompt for generation (no labels)."""
        tok = self.tokenizer
        n_image_marks = user.count(IMAGE_TOKEN)
        _check_placeholders(n_image_marks, n_image_marks if n_images is None else n_images, "image", IMAGE_TOKEN)
        _check_placeholders(user.count(AUDIO_TOKEN), len(n_audio), "audio clip", AUDIO_TOKEN)
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": user.replace(IMAGE_TOKEN, image_layout(self.cfg))}]
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        per_mark = self.cfg.tile_words if self.cfg.tile_tags else self.cfg.image_tokens  # positions per <image> id
        counts = {self.media["image"]: [per_mark] * ids.count(self.media["image"]),
                  self.media["audio"]: [self.audio_token_count(n) for n in n_audio]}
        ids = expand_placeholders(ids, counts)
        labels = [IGNORE] * len(ids)
        if answer is not None:
            reply = tok(answer + tok.eos_token, add_special_tokens=False)["input_ids"]
            ids, labels = ids + reply, labels + reply
        _check_context(len(ids), self.llm.config.max_position_embeddings)
        return {"input_ids": ids, "labels": labels}

    def collate(self, examples: list[dict], images: torch.Tensor | None = None,
                audio: list[torch.Tensor] = (), left_pad: bool = False) -> dict:
        """Pad a list of examples into one batch (right-padded for training, left-padded for generation).

        images (n, 3, S, S) and audio [(n_states, D)] are in the order their placeholders appear in the batch."""
        length = max(len(e["input_ids"]) for e in examples)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(examples), length), pad, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(examples):
            n = len(e["input_ids"])
            where = slice(length - n, length) if left_pad else slice(0, n)
            ids[i, where], labels[i, where], mask[i, where] = (torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1)
        return {"input_ids": ids, "labels": labels, "attention_mask": mask, "images": images, "audio": list(audio)}

    def embed(self, batch: dict) -> torch.Tensor:
        """input_ids (B, L) → inputs_embeds (B, L, d): word embeddings, placeholder positions filled with media."""
        ids = batch["input_ids"]
        is_media = (ids == self.media["image"]) | (ids == self.media["audio"])
        # placeholder ids lie past the embedding matrix (it was not resized): look up token 0 there, then overwrite
        embeds = self.llm.get_input_embeddings()(ids.masked_fill(is_media, 0))
        if batch.get("images") is not None:
            embeds = fill_placeholders(embeds, ids == self.media["image"], self.image_tokens(batch["images"]), "<image>")
        if batch.get("audio"):
            embeds = fill_placeholders(embeds, ids == self.media["audio"], torch.cat(self.audio_tokens(batch["audio"])),
                                       "<audio>")
        _check_filled(ids, batch, self.media)
        return embeds

    def forward(self, batch: dict, loss: bool = False, **kwargs):
        """The LLM's output on the batch (logits (B, L, V)); kwargs go to the LLM (use_cache, output_attentions…).

        loss=True: (summed cross-entropy of the answer tokens, their count) instead. The LM head then runs on
        the answer positions only (a fifth of SmolLM2's compute is its 49 152-way head)."""
        embeds, mask = self.embed(batch), batch["attention_mask"]
        if not loss:
            return self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions(mask), **kwargs)
        base = self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm
        hidden = base.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions(mask)).last_hidden_state
        keep = batch["labels"][:, 1:] != IGNORE  # position t predicts token t + 1
        logits = base.lm_head(hidden[:, :-1][keep])  # (n answer tokens, V)
        total = F.cross_entropy(logits.float(), batch["labels"][:, 1:][keep], reduction="sum")
        return total, int(keep.sum())

    def loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        """(sum of the answer tokens' cross-entropy, how many answer tokens): divide by the batch's count
        (across all processes under DDP) for the mean."""
        return self(batch, loss=True)

    # ------------------------------------------------------------ answering

    @torch.no_grad()
    def generate(self, batch: dict, max_new_tokens: int = 24) -> list[list[int]]:
        """Greedy answers with the package's own loop (mmcourse.decoding.greedy_decode) and the LLM's KV cache.
        batch: left-padded (collate(..., left_pad=True)). → one list of new token ids per row, without the end mark."""
        from mmcourse.decoding.generate import greedy_decode

        eos = self.tokenizer.eos_token_id
        prompt = batch["input_ids"]
        ids = greedy_decode(embeds_step(self, batch), prompt, max_new_tokens, eos_id=eos)
        out = []
        for row in ids[:, prompt.shape[1]:].tolist():
            out.append(row[:row.index(eos)] if eos in row else row)
        return out

    def answer(self, images: torch.Tensor | None, questions: list[str] | str, audio: list[torch.Tensor] = (),
               max_new_tokens: int = 24, heard: bool = False) -> list[str] | list[tuple[str | None, str]]:
        """Answer each question about its image (a row of `images`) and/or its clip's Whisper states.

        A question is typed text; an empty string with a clip is a spoken question. Returns the decoded answers,
        a spoken question's "Heard: …" line split off (split_heard); heard=True: (what it heard or None, answer)."""
        questions = [questions] if isinstance(questions, str) else list(questions)
        examples = []
        for i, q in enumerate(questions):
            marks = ("<image>\n" if images is not None else "") + ("<audio>\n" if audio else "") + q
            examples.append(self.example(marks.strip(), n_audio=[len(audio[i])] if audio else [],
                                         n_images=1 if images is not None else 0))
        batch = self.collate(examples, images=images, audio=list(audio), left_pad=True)
        replies = [split_heard(self.tokenizer.decode(r, skip_special_tokens=True).strip())
                   for r in self.generate(batch, max_new_tokens)]
        return replies if heard else [answer for _, answer in replies]

    @torch.no_grad()
    def image_attention(self, batch: dict, layers: slice = slice(None)) -> torch.Tensor:
        """Where the LLM looks: the attention (averaged over heads and `layers`) from each row's last position
        (where the answer's first token is predicted) to its image positions → (B, n image tokens), tile by tile
        (reshape to (B, tiles, tile_words) and sum for one number per quadrant of the scene)."""
        base = self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm
        previous = base.config._attn_implementation
        base.set_attn_implementation("eager")  # sdpa does not return its weights
        try:
            attentions = self(batch, output_attentions=True).attentions  # layers × (B, heads, L, L)
        finally:
            base.set_attn_implementation(previous)
        last = torch.stack(attentions[layers]).mean(dim=(0, 2))[:, -1]  # (B, L): from the last position
        where = batch["input_ids"] == self.media["image"]
        return torch.stack([row[mask] for row, mask in zip(last, where)])

    # ------------------------------------------------------------ the trained parts: save and load

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The parameters training changes: vision tower, both projectors, the LoRA matrices (if any)."""
        state = {f"{name}.{k}": v for name in ("vision", "image_projector", "audio_projector")
                 for k, v in getattr(self, name).state_dict().items()}
        if self.cfg.lora_rank:
            from peft import get_peft_model_state_dict

            state.update({f"lora.{k}": v for k, v in get_peft_model_state_dict(self.llm).items()})
        return state

    def save(self, path, dtype=torch.float16) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().to(dtype).contiguous() for k, v in self.trained_state().items()}
        save_file(state, str(path), metadata={"vlm_config": json.dumps(asdict(self.cfg))})

    def load_trained(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("vision", "image_projector", "audio_projector"):
            part = {k[len(name) + 1:]: v.float() for k, v in state.items() if k.startswith(name + ".")}
            getattr(self, name).load_state_dict(part)
        lora = {k[5:]: v.float() for k, v in state.items() if k.startswith("lora.")}
        if lora:
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(self.llm, lora)
            if result.unexpected_keys:
                raise ValueError(f"LoRA weights that fit no layer: {result.unexpected_keys[:3]}")


def expand_placeholders(ids: list[int], counts: dict[int, list[int]]) -> list[int]:
    """Repeat the k-th occurrence of each placeholder id counts[id][k] times. [5, 9, 6], {9: [3]} → [5, 9, 9, 9, 6]."""
    seen = {token: 0 for token in counts}
    out = []
    for token in ids:
        if token in counts:
            out.extend([token] * counts[token][seen[token]])
            seen[token] += 1
        else:
            out.append(token)
    return out


def fill_placeholders(embeds: torch.Tensor, where: torch.Tensor, states: torch.Tensor, name: str) -> torch.Tensor:
    """embeds (B, L, d) with the positions where `where` (B, L) is True replaced, in reading order, by the
    rows of states (n, d) (n must be where.sum()). Differentiable in states (masked_scatter)."""
    states = states.reshape(-1, embeds.shape[-1])
    if int(where.sum()) != states.shape[0]:
        raise ValueError(f"the batch has {int(where.sum())} {name} positions but the encoders gave {states.shape[0]} "
                         f"tokens: build each example with model.example(..., n_audio=[states per clip]) and pass "
                         f"the media in the order their placeholders appear")
    return embeds.masked_scatter(where[..., None], states.to(embeds.dtype))


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, L) that count real tokens only, so a left-padded row starts at 0 like an unpadded one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def embeds_step(model: VisionLanguageModel, batch: dict):
    """A step function for mmcourse.decoding's loops: the first call runs the whole multimodal prompt
    (inputs_embeds) and fills the LLM's KV cache; every later call feeds only the newest token."""
    import inspect

    from transformers import DynamicCache

    base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    # transformers 5.x renamed the argument past_key_values to cache
    argument = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    state = {"cache": DynamicCache(), "mask": batch["attention_mask"], "started": False}

    def step(ids: torch.Tensor) -> torch.Tensor:
        if not state["started"]:
            state["started"] = True
            out = model(batch, use_cache=True, **{argument: state["cache"]})
        else:
            state["mask"] = torch.cat([state["mask"], state["mask"].new_ones(ids.shape[0], 1)], dim=1)
            out = model.llm(input_ids=ids[:, -1:], attention_mask=state["mask"], use_cache=True,
                            position_ids=positions(state["mask"])[:, -1:], **{argument: state["cache"]})
        return out.logits[:, -1]

    step.context = model.llm.config.max_position_embeddings
    return step


def whisper_states(encoder, feature_extractor, wave: torch.Tensor) -> torch.Tensor:
    """Whisper encoder states of one 16 kHz clip (T,): the ⌈T / 320⌉ of the 1500 that cover it → (n, D)."""
    wave = torch.as_tensor(wave, dtype=torch.float32)
    _check_audio(wave)
    features = feature_extractor(wave.numpy(), sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        states = encoder(features).last_hidden_state[0]  # (1500, D)
    return states[:max(1, -(-wave.numel() // HOP))].clone()


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_pixels(pixel_values, size: int) -> None:
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"images must be a tensor (B, 3, {size}, {size}); got {type(pixel_values).__name__}. "
                        f"Convert with mmcourse.encoding.preprocess_images(images, size={size})")
    shape = tuple(pixel_values.shape)
    if not pixel_values.is_floating_point():
        raise TypeError(f"images must be float pixel values (normalised), got dtype {pixel_values.dtype}; "
                        f"convert uint8 images with mmcourse.encoding.preprocess_images(images, size={size})")
    if pixel_values.dim() != 4 or shape[1] != 3 or shape[2:] != (size, size):
        hint = " (channels-last: use .permute(0, 3, 1, 2))" if len(shape) == 4 and shape[-1] == 3 else ""
        raise ValueError(f"images must be (B, 3, {size}, {size}), got {shape}{hint}; "
                         f"mmcourse.encoding.preprocess_images(images, size={size}) makes that from any image")


def _check_placeholders(found: int, given: int, what: str, mark: str) -> None:
    if found != given:
        raise ValueError(f"the prompt has {found} {mark} placeholder(s) but {given} {what}(s) were given: "
                         f"put exactly one {mark} in the prompt for each {what}")


def _check_context(length: int, context: int) -> None:
    if length > context:
        raise ValueError(f"the prompt is {length} positions once its placeholders are expanded, more than the "
                         f"LLM's context of {context}: shorten the text, give fewer images/clips, or compress "
                         f"harder (a larger pixel-shuffle factor or audio stride)")


def _check_filled(ids: torch.Tensor, batch: dict, media: dict[str, int]) -> None:
    if bool((ids == media["image"]).any()) and batch.get("images") is None:
        raise ValueError("the prompt has <image> placeholders but no images were given (batch['images'] is None)")
    if bool((ids == media["audio"]).any()) and not batch.get("audio"):
        raise ValueError("the prompt has <audio> placeholders but no audio was given (batch['audio'] is empty)")


def _check_audio(wave: torch.Tensor) -> None:
    if wave.dim() != 1 or wave.numel() == 0:
        raise ValueError(f"audio must be one mono 16 kHz clip (T,), got shape {tuple(wave.shape)}; "
                         "mmcourse.encoding.audio.load_audio(path) makes one from a file")
    if wave.numel() > MAX_AUDIO_SECONDS * 16_000:
        raise ValueError(f"the clip is {wave.numel() / 16_000:.1f} s, longer than Whisper's {MAX_AUDIO_SECONDS} s "
                         "window: cut it into pieces of at most 30 s (one <audio> each)")
