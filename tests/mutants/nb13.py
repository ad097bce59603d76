"""Notebook 13 · interview drill: wrong and right answers to its five exercises and the self-check quiz."""

from tests.mutants.base import Exercise, right, subtle, wrong

_LEN = "def llm_sequence_length(n_text, image_size=None, patch_size=14, audio_seconds=None, audio_pool=1):\n"
_RAISE = "    if image_size is not None and image_size % patch_size:\n        raise ValueError('not a multiple')\n"
_IMAGE = "    n = n_text + ((image_size // patch_size) ** 2 if image_size is not None else 0)\n"
_FRAMES = "    if audio_seconds is not None:\n        frames = int(audio_seconds * 16000) // 160\n"
_RESIZE = "def resize_position_embeddings(pos, new_grid):\n"
_CHECK = ("    g = math.isqrt(pos.shape[1] - 1)\n    if g * g != pos.shape[1] - 1:\n"
          "        raise ValueError('expected [CLS] + a square grid')\n    d = pos.shape[-1]\n")
_WER = "def word_error_rate(reference, hypothesis):\n"
_WER_DP = ("    ref, hyp = reference.split(), hypothesis.split()\n"
           "    d = [[i + j if i * j == 0 else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)]\n"
           "    for i in range(1, len(ref) + 1):\n        for j in range(1, len(hyp) + 1):\n"
           "            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + {sub})\n")
_CHAIR = "def chair_scores(mentioned, present):\n"
_SAME_LENGTH = "    if len(mentioned) != len(present):\n        raise ValueError('lengths differ')\n"
_KEY = {"sc01": "'B'", "sc02": "'A'", "sc03": "'C'", "sc04": "'D'", "sc05": "'A'",
        "sc06": "64", "sc07": "20.09", "sc08": "0.333", "sc09": "500", "sc10": "'B'"}


_CHOICE, _NUMERIC = "nb13_self_check_multiple_choice", "nb13_self_check_numeric"  # the quiz's two test cells


def _answers(**changes) -> str:
    items = {**_KEY, **changes}
    return "def self_check_answers():\n    return {" + ", ".join(f"'{k}': {v}" for k, v in items.items()) + "}"


MUTANTS = {
    "nb13_llm_sequence_length": Exercise(
        wrong=[
            wrong("the [CLS] token counted", _LEN + _RAISE +
                  "    n = n_text + ((image_size // patch_size) ** 2 + 1 if image_size is not None else 0)\n" + _FRAMES +
                  "        n += ((frames - 1) // 2 + 1) // audio_pool\n    return n", names=r"drops the class token"),
            wrong("no ValueError for a size that is not a multiple", _LEN + _IMAGE + _FRAMES +
                  "        n += ((frames - 1) // 2 + 1) // audio_pool\n    return n", names=r"expected ValueError"),
            wrong("a ValueError that does not say 'multiple'", _LEN +
                  "    if image_size is not None and image_size % patch_size:\n        raise ValueError('bad image size')\n"
                  + _IMAGE + _FRAMES + "        n += ((frames - 1) // 2 + 1) // audio_pool\n    return n",
                  names=r"does not mention 'multiple'"),
            wrong("frames, not states: the stride-2 convolution forgotten", _LEN + _RAISE + _IMAGE + _FRAMES +
                  "        n += frames // audio_pool\n    return n", names=r"stride-2 conv"),
            subtle("F // 2 states: an odd frame count rounded down", _LEN + _RAISE + _IMAGE + _FRAMES +
                   "        n += frames // 2 // audio_pool\n    return n"),
            subtle("pooled states rounded up", _LEN + _RAISE + _IMAGE + _FRAMES +
                   "        n += -(-((frames - 1) // 2 + 1) // audio_pool)\n    return n"),
            subtle("a float from true division", _LEN + _RAISE +
                   "    n = n_text + ((image_size / patch_size) ** 2 if image_size is not None else 0)\n" + _FRAMES +
                   "        n += ((frames - 1) // 2 + 1) // audio_pool\n    return n"),
        ],
        right=[
            right("divmod and ceil", _LEN + "    total = n_text\n    if image_size is not None:\n"
                  "        side, rest = divmod(image_size, patch_size)\n"
                  "        if rest:\n            raise ValueError(f'{image_size} is not a multiple of {patch_size}')\n"
                  "        total += side * side\n    if audio_seconds is not None:\n"
                  "        frames = math.floor(audio_seconds * 16000) // 160\n"
                  "        total += math.ceil(frames / 2) // audio_pool\n    return int(total)"),
            right("a sum of parts", _LEN + "    if image_size is not None and image_size % patch_size != 0:\n"
                  "        raise ValueError('image_size must be a multiple of patch_size')\n"
                  "    parts = [n_text]\n    if image_size is not None:\n        parts.append((image_size // patch_size) ** 2)\n"
                  "    if audio_seconds is not None:\n        f = int(audio_seconds * 16000) // 160\n"
                  "        parts.append(-(-f // 2) // audio_pool)\n    return sum(parts)"),
        ]),
    "nb13_resize_position_embeddings": Exercise(
        wrong=[
            wrong("the [CLS] row dropped", _RESIZE + _CHECK +
                  "    grid = pos[:, 1:].reshape(1, g, g, d).permute(0, 3, 1, 2)\n"
                  "    grid = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
                  "    return grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)", names=r"\[CLS\] \+ a 6×6 grid"),
            wrong("reshaped to (1, D, g, g) without a permute", _RESIZE + _CHECK +
                  "    grid = pos[:, 1:].reshape(1, d, g, g)\n"
                  "    grid = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
                  "    return torch.cat([pos[:, :1], grid.reshape(1, new_grid * new_grid, d)], dim=1)", names=r"permute"),
            wrong("bilinear instead of bicubic", _RESIZE + _CHECK +
                  "    grid = pos[:, 1:].reshape(1, g, g, d).permute(0, 3, 1, 2)\n"
                  "    grid = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode='bilinear', align_corners=False)\n"
                  "    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)], dim=1)",
                  names=r"bicubic"),
            wrong("align_corners=True", _RESIZE + _CHECK +
                  "    grid = pos[:, 1:].reshape(1, g, g, d).permute(0, 3, 1, 2)\n"
                  "    grid = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=True)\n"
                  "    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)], dim=1)",
                  names=r"align_corners=False"),
            wrong("no ValueError without the [CLS] row", _RESIZE +
                  "    g = math.isqrt(pos.shape[1] - 1)\n    d = pos.shape[-1]\n"
                  "    grid = pos[:, 1:1 + g * g].reshape(1, g, g, d).permute(0, 3, 1, 2)\n"
                  "    grid = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
                  "    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)], dim=1)",
                  names=r"missing CLS row"),
            subtle("rows and columns of the grid swapped", _RESIZE + _CHECK +
                   "    grid = pos[:, 1:].reshape(1, g, g, d).permute(0, 3, 2, 1)\n"
                   "    grid = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
                   "    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)], dim=1)"),
        ],
        right=[
            right("transpose and flatten", _RESIZE +
                  "    n = pos.shape[1] - 1\n    g = int(round(math.sqrt(n)))\n"
                  "    if g * g != n:\n        raise ValueError(f'{n} grid rows: is the CLS row missing?')\n"
                  "    grid = pos[:, 1:].transpose(1, 2).reshape(1, -1, g, g)\n"
                  "    grid = torch.nn.functional.interpolate(grid, size=new_grid, mode='bicubic')\n"
                  "    return torch.cat((pos[:, :1], grid.flatten(2).transpose(1, 2)), dim=1)"),
            right("movedim, in float64", _RESIZE + _CHECK +
                  "    grid = pos[0, 1:].double().view(g, g, d).movedim(-1, 0)[None]\n"
                  "    grid = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
                  "    rows = grid[0].movedim(0, -1).reshape(-1, d).to(pos.dtype)\n"
                  "    return torch.cat([pos[0, :1], rows])[None]"),
        ]),
    "nb13_attention_score_counts": Exercise(
        wrong=[
            wrong("cross: the text's self-attention forgotten", "def attention_score_counts(n_text, n_image):\n"
                  "    return {'concat': (n_text + n_image) ** 2, 'cross': n_text * n_image}", names=r"text self-attention"),
            wrong("concat: two separate self-attentions", "def attention_score_counts(n_text, n_image):\n"
                  "    return {'concat': n_text ** 2 + n_image ** 2, 'cross': n_text ** 2 + n_text * n_image}", names=r"608²"),
            wrong("cross: the image makes queries too", "def attention_score_counts(n_text, n_image):\n"
                  "    return {'concat': (n_text + n_image) ** 2, 'cross': n_text ** 2 + 2 * n_text * n_image}",
                  names=r"text → image 32 × 576"),
            wrong("the two counts swapped", "def attention_score_counts(n_text, n_image):\n"
                  "    return {'cross': (n_text + n_image) ** 2, 'concat': n_text ** 2 + n_text * n_image}", names=r"608²"),
            subtle("causal: half the concatenated matrix", "def attention_score_counts(n_text, n_image):\n"
                   "    n = n_text + n_image\n    return {'concat': n * (n + 1) // 2, 'cross': n_text ** 2 + n_text * n_image}"),
        ],
        right=[
            right("expanded", "def attention_score_counts(n_text, n_image):\n"
                  "    return dict(cross=n_text * (n_text + n_image),\n"
                  "                concat=n_text ** 2 + 2 * n_text * n_image + n_image ** 2)"),
            right("counted from score matrices", "def attention_score_counts(n_text, n_image):\n"
                  "    n = n_text + n_image\n"
                  "    return {'concat': torch.empty(n, n).numel(),\n"
                  "            'cross': torch.empty(n_text, n_text).numel() + torch.empty(n_text, n_image).numel()}"),
        ]),
    "nb13_word_error_rate": Exercise(
        wrong=[
            wrong("divided by the hypothesis length", _WER + _WER_DP.format(sub="(ref[i - 1] != hyp[j - 1])") +
                  "    return d[-1][-1] / len(hyp)", names=r"REFERENCE words"),
            wrong("no ValueError for an empty reference", _WER + _WER_DP.format(sub="(ref[i - 1] != hyp[j - 1])") +
                  "    return d[-1][-1] / len(ref)", names=r"expected ValueError"),
            wrong("the distance itself, not divided", _WER + "    if not reference.split():\n        raise ValueError('empty reference')\n"
                  + _WER_DP.format(sub="(ref[i - 1] != hyp[j - 1])") + "    return float(d[-1][-1])", names=r"REFERENCE words"),
            subtle("a substitution costs 2 (a deletion plus an insertion)", _WER +
                   "    if not reference.split():\n        raise ValueError('empty reference')\n"
                   + _WER_DP.format(sub="2 * (ref[i - 1] != hyp[j - 1])") + "    return d[-1][-1] / len(ref)"),
            subtle("word by word with zip, no alignment", _WER + "    ref, hyp = reference.split(), hypothesis.split()\n"
                   "    if not ref:\n        raise ValueError('empty reference')\n"
                   "    errors = sum(r != h for r, h in zip(ref, hyp)) + abs(len(ref) - len(hyp))\n"
                   "    return errors / len(ref)"),
            subtle("characters, not words", _WER + "    ref, hyp = list(reference), list(hypothesis)\n"
                   "    if not ref:\n        raise ValueError('empty reference')\n"
                   "    prev = list(range(len(hyp) + 1))\n    for i, r in enumerate(ref, 1):\n        cur = [i]\n"
                   "        for j, h in enumerate(hyp, 1):\n"
                   "            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))\n        prev = cur\n"
                   "    return prev[-1] / len(ref)"),
        ],
        right=[
            right("memoised recursion", _WER + "    from functools import lru_cache\n"
                  "    ref, hyp = tuple(reference.split()), tuple(hypothesis.split())\n"
                  "    if len(ref) == 0:\n        raise ValueError('an empty reference has no word error rate')\n"
                  "    @lru_cache(maxsize=None)\n    def dist(i, j):\n        if i == 0 or j == 0:\n            return i + j\n"
                  "        return min(dist(i - 1, j) + 1, dist(i, j - 1) + 1, dist(i - 1, j - 1) + (ref[i - 1] != hyp[j - 1]))\n"
                  "    return dist(len(ref), len(hyp)) / len(ref)"),
            right("a NumPy table", _WER + "    import numpy as np\n    ref, hyp = reference.split(), hypothesis.split()\n"
                  "    if not ref:\n        raise ValueError('reference is empty')\n"
                  "    d = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=np.int64)\n"
                  "    d[:, 0], d[0, :] = np.arange(len(ref) + 1), np.arange(len(hyp) + 1)\n"
                  "    for i in range(1, len(ref) + 1):\n        for j in range(1, len(hyp) + 1):\n"
                  "            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + int(ref[i - 1] != hyp[j - 1]))\n"
                  "    return float(d[-1, -1]) / len(ref)"),
        ]),
    "nb13_chair_scores": Exercise(
        wrong=[
            wrong("no ValueError: zip cuts silently", _CHAIR +
                  "    bad = [set(m) - set(p) for m, p in zip(mentioned, present)]\n"
                  "    return sum(map(len, bad)) / sum(map(len, mentioned)), sum(1 for b in bad if b) / len(mentioned)",
                  names=r"raise a ValueError when the lengths differ"),
            subtle("CHAIR_i divided by the objects present", _CHAIR + _SAME_LENGTH +
                   "    bad = [set(m) - set(p) for m, p in zip(mentioned, present)]\n"
                   "    return sum(map(len, bad)) / sum(map(len, present)), sum(1 for b in bad if b) / len(mentioned)"),
            subtle("the wrong direction: objects present but not mentioned", _CHAIR + _SAME_LENGTH +
                   "    bad = [set(p) - set(m) for m, p in zip(mentioned, present)]\n"
                   "    return sum(map(len, bad)) / sum(map(len, mentioned)), sum(1 for b in bad if b) / len(mentioned)"),
            subtle("CHAIR_i as the mean of per-caption rates", _CHAIR + _SAME_LENGTH +
                   "    bad = [set(m) - set(p) for m, p in zip(mentioned, present)]\n"
                   "    rates = [len(b) / len(m) for b, m in zip(bad, mentioned)]\n"
                   "    return sum(rates) / len(rates), sum(1 for b in bad if b) / len(mentioned)"),
            subtle("the pair in the other order", _CHAIR + _SAME_LENGTH +
                   "    bad = [set(m) - set(p) for m, p in zip(mentioned, present)]\n"
                   "    return sum(1 for b in bad if b) / len(mentioned), sum(map(len, bad)) / sum(map(len, mentioned))"),
        ],
        right=[
            right("intersections and counters", _CHAIR +
                  "    if len(mentioned) != len(present):\n        raise ValueError(f'{len(mentioned)} captions, {len(present)} images')\n"
                  "    n_mentions = n_bad = n_bad_captions = 0\n"
                  "    for m, p in zip(mentioned, present):\n        m, p = set(m), set(p)\n"
                  "        wrong_here = len(m) - len(m & p)\n        n_mentions += len(m)\n        n_bad += wrong_here\n"
                  "        n_bad_captions += wrong_here > 0\n"
                  "    return float(n_bad / n_mentions), float(n_bad_captions / len(mentioned))"),
            right("NumPy arrays of counts", _CHAIR + _SAME_LENGTH +
                  "    import numpy as np\n    bad = np.array([len(set(m).difference(p)) for m, p in zip(mentioned, present)])\n"
                  "    total = np.array([len(set(m)) for m in mentioned])\n"
                  "    return float(bad.sum() / total.sum()), float((bad > 0).mean())"),
        ]),
    "nb13_self_check_answers": Exercise(  # graded in two cells: the multiple-choice and the numeric answers
        wrong=[
            subtle("sc01: the softmax flattens", _answers(sc01="'A'"), loses=_CHOICE),
            subtle("sc02: the other mask convention (True = ignore)", _answers(sc02="'B'"), loses=_CHOICE),
            subtle("sc03: the vision encoder trained too", _answers(sc03="'A'"), loses=_CHOICE),
            subtle("sc04: outputs zeros", _answers(sc04="'A'"), loses=_CHOICE),
            subtle("sc05: the whole row, as in CLIP's softmax", _answers(sc05="'B'"), loses=_CHOICE),
            subtle("sc06: the outer product without the appended 1s (7 × 7)", _answers(sc06="49"), loses=_NUMERIC),
            subtle("sc07: 1 / 0.07, the initial scale, not e³", _answers(sc07="14.29"), loses=_NUMERIC),
            subtle("sc08: two decimals, not three", _answers(sc08="0.33"), loses=_NUMERIC),
            subtle("sc09: the 30-s window's 1500 states", _answers(sc09="1500"), loses=_NUMERIC),
            subtle("sc10: random captions as negatives", _answers(sc10="'A'"), loses=_NUMERIC),
            wrong("a number as a string", _answers(sc06="'64'"), names=r"sc06 must be a number", loses=_CHOICE),
            wrong("a lower-case letter", _answers(sc01="'b'"), names=r"sc01 must be one of 'A', 'B', 'C', 'D'",
                  loses=_CHOICE),
            wrong("sc10 in lower case", _answers(sc10="'b'"), names=r"sc10 must be one of 'A', 'B', 'C', 'D'",
                  loses=_NUMERIC),
            wrong("NumPy numbers, not converted", _answers(sc07="__import__('numpy').round(__import__('numpy').exp(3), 2)"),
                  names=r"sc07 must be a number", loses=_CHOICE),
            wrong("sc10 left out", "def self_check_answers():\n    answers = " + _answers()[len("def self_check_answers():\n    return "):]
                  + "\n    del answers['sc10']\n    return answers", names=r"the question ids"),
        ],
        right=[
            right("floats for the whole numbers, more decimals", _answers(sc06="64.0", sc07="20.0855", sc08="1 / 3",
                                                                          sc09="500.0")),
            right("built with dict() in another order", "def self_check_answers():\n"
                  "    answers = dict(sc10='B', sc09=500, sc08=round(1 / 3, 3), sc07=round(math.exp(3), 2), sc06=(7 + 1) ** 2)\n"
                  "    answers.update(zip(['sc01', 'sc02', 'sc03', 'sc04', 'sc05'], 'BACDA'))\n    return answers"),
            right("NumPy computations converted with float() and int()", "def self_check_answers():\n    import numpy as np\n"
                  "    return {'sc01': 'B', 'sc02': 'A', 'sc03': 'C', 'sc04': 'D', 'sc05': 'A', 'sc06': int(np.int64(8) ** 2),\n"
                  "            'sc07': float(np.exp(3.0)), 'sc08': float(np.float64(1) / 3), 'sc09': int(np.int64(10 * 16000 // 160 // 2)),\n"
                  "            'sc10': 'B'}"),
        ]),
}
