"""Notebook 15 · an LLM that sees and hears: wrong and right answers to its two exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb15_downsample": Exercise(
        wrong=[
            wrong("rounded down: the last partial group dropped",
                  "def downsample(states, k):\n    b, t, d = states.shape\n    g = t // k\n"
                  "    return states[:, :g * k].reshape(b, g, k * d)", names=r"round up"),
            wrong("the last group padded with zeros",
                  "def downsample(states, k):\n    b, t, d = states.shape\n    g = -(-t // k)\n"
                  "    states = torch.cat([states, states.new_zeros(b, g * k - t, d)], dim=1)\n"
                  "    return states.reshape(b, g, k * d)", names=r"repeating the last frame"),
            wrong("features interleaved instead of whole frames",
                  "def downsample(states, k):\n    b, t, d = states.shape\n    g = -(-t // k)\n"
                  "    states = torch.cat([states, states[:, -1:].expand(b, g * k - t, d)], dim=1)\n"
                  "    return states.reshape(b, g, k, d).transpose(2, 3).reshape(b, g, k * d)", names=r"whole frames in time order"),
            wrong("mean pooling instead of stacking",
                  "def downsample(states, k):\n    b, t, d = states.shape\n    g = -(-t // k)\n"
                  "    states = torch.cat([states, states[:, -1:].expand(b, g * k - t, d)], dim=1)\n"
                  "    return states.reshape(b, g, k, d).mean(2)", names=r"D · f²|k · D|\(1, 3, 2\)"),
            subtle("frames taken with a stride instead of neighbours",
                   "def downsample(states, k):\n    b, t, d = states.shape\n    g = -(-t // k)\n"
                   "    states = torch.cat([states, states[:, -1:].expand(b, g * k - t, d)], dim=1)\n"
                   "    return states.reshape(b, k, g, d).transpose(1, 2).reshape(b, g, k * d)"),
        ],
        right=[
            right("F.pad with replicate", "def downsample(states, k):\n    import torch.nn.functional as F\n"
                  "    b, t, d = states.shape\n    g = -(-t // k)\n"
                  "    padded = F.pad(states.transpose(1, 2), (0, g * k - t), mode='replicate').transpose(1, 2)\n"
                  "    return padded.reshape(b, g, k * d)"),
            right("a loop over groups", "def downsample(states, k):\n    b, t, d = states.shape\n    out = []\n"
                  "    for j in range(0, t, k):\n        idx = [min(i, t - 1) for i in range(j, j + k)]\n"
                  "        out.append(states[:, idx].reshape(b, k * d))\n    return torch.stack(out, dim=1)"),
        ]),
    "nb15_budget": Exercise(
        wrong=[
            wrong("the placeholder counted besides its expansion",
                  "def expanded_length(prompt_ids, image_id, audio_id, image_tokens, clip_samples, stride):\n"
                  "    clips = iter(clip_samples)\n    total = len(prompt_ids)\n    for t in prompt_ids:\n"
                  "        if t == image_id:\n            total += image_tokens\n        elif t == audio_id:\n"
                  "            total += math.ceil(math.ceil(next(clips) / 320) / stride)\n    return total",
                  names=r"placeholder id itself is replaced"),
            wrong("Whisper states rounded down",
                  "def expanded_length(prompt_ids, image_id, audio_id, image_tokens, clip_samples, stride):\n"
                  "    clips = iter(clip_samples)\n    total = 0\n    for t in prompt_ids:\n"
                  "        if t == image_id:\n            total += image_tokens\n        elif t == audio_id:\n"
                  "            total += math.ceil((next(clips) // 320) / stride)\n        else:\n            total += 1\n    return total",
                  names=r"round up"),
            wrong("all 1500 states, whatever the clip's length",
                  "def expanded_length(prompt_ids, image_id, audio_id, image_tokens, clip_samples, stride):\n"
                  "    total = 0\n    for t in prompt_ids:\n        if t == image_id:\n            total += image_tokens\n"
                  "        elif t == audio_id:\n            total += math.ceil(1500 / stride)\n        else:\n            total += 1\n"
                  "    return total", names=r"10 Whisper states"),
            wrong("a float count",
                  "def expanded_length(prompt_ids, image_id, audio_id, image_tokens, clip_samples, stride):\n"
                  "    clips = iter(clip_samples)\n    total = 0.0\n    for t in prompt_ids:\n"
                  "        if t == image_id:\n            total += image_tokens\n        elif t == audio_id:\n"
                  "            total += math.ceil(math.ceil(next(clips) / 320) / stride)\n        else:\n            total += 1\n    return total",
                  names=r"int"),
            subtle("every clip counted as long as the first",
                   "def expanded_length(prompt_ids, image_id, audio_id, image_tokens, clip_samples, stride):\n"
                   "    total = 0\n    for t in prompt_ids:\n        if t == image_id:\n            total += image_tokens\n"
                   "        elif t == audio_id:\n            total += math.ceil(math.ceil(clip_samples[0] / 320) / stride)\n"
                   "        else:\n            total += 1\n    return total"),
        ],
        right=[
            right("counts, then a sum", "def expanded_length(prompt_ids, image_id, audio_id, image_tokens, clip_samples, stride):\n"
                  "    text = sum(1 for t in prompt_ids if t not in (image_id, audio_id))\n"
                  "    images = prompt_ids.count(image_id) * image_tokens\n"
                  "    audio = sum(math.ceil(math.ceil(s / 320) / stride) for s in clip_samples)\n    return text + images + audio"),
            right("the package's own length helper", "def expanded_length(prompt_ids, image_id, audio_id, image_tokens, clip_samples, stride):\n"
                  "    from mmcourse.fusion.compress import downsampled_length\n"
                  "    n = len(prompt_ids) + prompt_ids.count(image_id) * (image_tokens - 1)\n"
                  "    return n + sum(downsampled_length(-(-s // 320), stride) - 1 for s in clip_samples)"),
        ]),
}
