"""Notebook 12 · debug the blog post: wrong and right answers to its eight exercises (the blog's bugs, mostly)."""

from tests.mutants.base import Exercise, right, subtle, wrong

_PREFIX_ARGS = "def prefix_lm_logits(lm, project, prefix, input_ids):\n"
_FUSED = "def fused_vector(text, sound, image, to_query, to_context, block):\n"

MUTANTS = {
    "nb12_fixed_text_inputs": Exercise(
        wrong=[
            wrong("bug 2: hand-typed ids accepted", "def fixed_text_inputs(tokenizer, texts):\n"
                  "    if isinstance(texts, str):\n        texts = [texts]\n"
                  "    encoded = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    return {'input_ids': encoded['input_ids'], 'attention_mask': encoded['attention_mask']}",
                  names=r"bug 2: refuse hand-typed ids"),
            wrong("a TypeError that does not say what to do", "def fixed_text_inputs(tokenizer, texts):\n"
                  "    if isinstance(texts, torch.Tensor):\n        raise TypeError('expected strings')\n"
                  "    if isinstance(texts, str):\n        texts = [texts]\n"
                  "    encoded = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    return {'input_ids': encoded['input_ids'], 'attention_mask': encoded['attention_mask']}",
                  names=r"bug 2: refuse hand-typed ids"),
            wrong("the tokenizer's whole output, token_type_ids included", "def fixed_text_inputs(tokenizer, texts):\n"
                  "    if isinstance(texts, torch.Tensor):\n        raise TypeError('use the tokenizer')\n"
                  "    return dict(tokenizer(texts if isinstance(texts, list) else [texts], padding=True, return_tensors='pt'))",
                  names=r"leave token_type_ids out"),
            wrong("no special tokens: [CLS] and [SEP] missing", "def fixed_text_inputs(tokenizer, texts):\n"
                  "    if isinstance(texts, torch.Tensor):\n        raise TypeError('use the tokenizer')\n"
                  "    if isinstance(texts, str):\n        texts = [texts]\n"
                  "    encoded = tokenizer(list(texts), padding=True, add_special_tokens=False, return_tensors='pt')\n"
                  "    return {'input_ids': encoded['input_ids'], 'attention_mask': encoded['attention_mask']}",
                  names=r"\[CLS\] first"),
            wrong("padded to a fixed length, not to the longest", "def fixed_text_inputs(tokenizer, texts):\n"
                  "    if isinstance(texts, torch.Tensor):\n        raise TypeError('use the tokenizer')\n"
                  "    if isinstance(texts, str):\n        texts = [texts]\n"
                  "    encoded = tokenizer(list(texts), padding='max_length', max_length=32, return_tensors='pt')\n"
                  "    return {'input_ids': encoded['input_ids'], 'attention_mask': encoded['attention_mask']}",
                  names=r"padded to the longest"),
            subtle("a single string split into characters", "def fixed_text_inputs(tokenizer, texts):\n"
                   "    if isinstance(texts, torch.Tensor):\n        raise TypeError('use the tokenizer')\n"
                   "    encoded = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                   "    return {'input_ids': encoded['input_ids'], 'attention_mask': encoded['attention_mask']}"),
            subtle("a bool attention mask", "def fixed_text_inputs(tokenizer, texts):\n"
                   "    if isinstance(texts, torch.Tensor):\n        raise TypeError('use the tokenizer')\n"
                   "    if isinstance(texts, str):\n        texts = [texts]\n"
                   "    encoded = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                   "    return {'input_ids': encoded['input_ids'], 'attention_mask': encoded['attention_mask'].bool()}"),
        ],
        right=[
            right("encode one by one, pad by hand", "def fixed_text_inputs(tokenizer, texts):\n"
                  "    if torch.is_tensor(texts):\n        raise TypeError('token ids must come from the tokenizer, not typed by hand')\n"
                  "    rows = [tokenizer.encode(t) for t in ([texts] if isinstance(texts, str) else texts)]\n"
                  "    width = max(map(len, rows))\n"
                  "    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows], dtype=torch.long)\n"
                  "    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)\n"
                  "    return dict(input_ids=ids, attention_mask=mask)"),
            right("NumPy arrays, then torch", "def fixed_text_inputs(tokenizer, texts):\n"
                  "    if isinstance(texts, torch.Tensor):\n"
                  "        raise TypeError(f'a {tuple(texts.shape)} tensor: call the tokenizer on the texts instead')\n"
                  "    batch = tokenizer([texts] if isinstance(texts, str) else list(texts), padding='longest', return_tensors='np')\n"
                  "    return {k: torch.from_numpy(batch[k]).long() for k in ('input_ids', 'attention_mask')}"),
        ]),
    "nb12_to_pixel_values": Exercise(
        wrong=[
            wrong("bug 5: channels left last", "def to_pixel_values(images, mean, std):\n"
                  "    return (images.float() / 255 - torch.tensor(mean)) / torch.tensor(std)", names=r"channels first"),
            wrong("normalised before rescaling", "def to_pixel_values(images, mean, std):\n"
                  "    x = images.permute(0, 3, 1, 2).float()\n"
                  "    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)\n"
                  "    return (x - m) / s / 255", names=r"÷ 255 first|BEFORE normalising"),
            wrong("not rescaled: 0…255 normalised", "def to_pixel_values(images, mean, std):\n"
                  "    x = images.permute(0, 3, 1, 2).float()\n"
                  "    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)\n"
                  "    return (x - m) / s", names=r"÷ 255 first"),
            wrong("float64 out", "def to_pixel_values(images, mean, std):\n"
                  "    x = images.permute(0, 3, 1, 2).double() / 255\n"
                  "    m, s = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)\n"
                  "    return (x - m.view(1, 3, 1, 1)) / s.view(1, 3, 1, 1)", names=r"float32"),
            subtle("reshape instead of permute: pixels scrambled", "def to_pixel_values(images, mean, std):\n"
                   "    b, s_, _, c = images.shape\n    x = images.reshape(b, c, s_, s_).float() / 255\n"
                   "    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)"),
            subtle("the red channel's mean and std for every channel", "def to_pixel_values(images, mean, std):\n"
                   "    x = images.permute(0, 3, 1, 2).float() / 255\n    return (x - mean[0]) / std[0]"),
        ],
        right=[
            right("normalised channels-last, then moved", "def to_pixel_values(images, mean, std):\n"
                  "    x = images.to(torch.float32).div(255)\n"
                  "    x = (x - torch.as_tensor(mean, dtype=torch.float32)) / torch.as_tensor(std, dtype=torch.float32)\n"
                  "    return x.movedim(-1, 1).contiguous()"),
            right("float64 arithmetic, float32 out, channel by channel", "def to_pixel_values(images, mean, std):\n"
                  "    x = images.double().permute(0, 3, 1, 2) / 255.0\n"
                  "    return torch.stack([(x[:, c] - mean[c]) / std[c] for c in range(3)], dim=1).float()"),
        ]),
    "nb12_audio_features": Exercise(
        wrong=[
            wrong("bug 6: not padded to 30 s", "def audio_features(waveform, sample_rate):\n"
                  "    w = waveform[None] if waveform.dim() == 1 else waveform\n"
                  "    if sample_rate != 16000:\n        w = audio.resample(w, sample_rate, 16000)\n"
                  "    return audio.log_mel_spectrogram(w)", names=r"pad the clip to 30 s"),
            wrong("not resampled", "def audio_features(waveform, sample_rate):\n"
                  "    w = waveform[None] if waveform.dim() == 1 else waveform\n"
                  "    return audio.log_mel_spectrogram(audio.pad_or_trim(w, audio.N_SAMPLES))",
                  names=r"resample to 16 kHz first"),
            wrong("a single clip without its batch axis", "def audio_features(waveform, sample_rate):\n"
                  "    if sample_rate != 16000:\n        waveform = audio.resample(waveform, sample_rate, 16000)\n"
                  "    return audio.log_mel_spectrogram(audio.pad_or_trim(waveform, audio.N_SAMPLES))",
                  names=r"batch axis"),
            subtle("padded before resampling", "def audio_features(waveform, sample_rate):\n"
                   "    w = audio.pad_or_trim(waveform[None] if waveform.dim() == 1 else waveform, audio.N_SAMPLES)\n"
                   "    if sample_rate != 16000:\n        w = audio.resample(w, sample_rate, 16000)\n"
                   "    return audio.log_mel_spectrogram(w)"),
            subtle("padded but never cut", "def audio_features(waveform, sample_rate):\n"
                   "    w = waveform[None] if waveform.dim() == 1 else waveform\n"
                   "    if sample_rate != 16000:\n        w = audio.resample(w, sample_rate, 16000)\n"
                   "    w = F.pad(w, (0, max(audio.N_SAMPLES - w.shape[-1], 0)))\n"
                   "    return audio.log_mel_spectrogram(w)[..., :3000]"),
            subtle("only the first clip of a batch", "def audio_features(waveform, sample_rate):\n"
                   "    w = waveform if waveform.dim() == 1 else waveform[0]\n"
                   "    if sample_rate != 16000:\n        w = audio.resample(w, sample_rate, 16000)\n"
                   "    return audio.log_mel_spectrogram(audio.pad_or_trim(w, audio.N_SAMPLES))[None]"),
        ],
        right=[
            right("transformers' feature extractor", "def audio_features(waveform, sample_rate):\n"
                  "    clips = waveform.reshape(-1, waveform.shape[-1])\n"
                  "    if sample_rate != 16000:\n        clips = audio.resample(clips, sample_rate, 16000)\n"
                  "    return feature_extractor(list(clips.numpy()), sampling_rate=16000, return_tensors='pt').input_features"),
            right("clip by clip, stacked", "def audio_features(waveform, sample_rate):\n"
                  "    out = []\n    for clip in waveform.reshape(-1, waveform.shape[-1]):\n"
                  "        if sample_rate != audio.SAMPLE_RATE:\n            clip = audio.resample(clip, sample_rate, audio.SAMPLE_RATE)\n"
                  "        out.append(audio.log_mel_spectrogram(audio.pad_or_trim(clip)))\n    return torch.stack(out)"),
        ]),
    "nb12_whisper_audio_states": Exercise(
        wrong=[
            wrong("bug 8: the whole model's [0], the decoder's state", "def whisper_audio_states(whisper_model, features):\n"
                  "    start = torch.full((features.shape[0], 1), whisper_model.config.decoder_start_token_id)\n"
                  "    return whisper_model(features, decoder_input_ids=start)[0]", names=r"ENCODER's last_hidden_state"),
            wrong("bug 7: the decoder runs too", "def whisper_audio_states(whisper_model, features):\n"
                  "    start = torch.full((features.shape[0], 1), whisper_model.config.decoder_start_token_id)\n"
                  "    return whisper_model(features, decoder_input_ids=start).encoder_last_hidden_state",
                  names=r"bug 7: run the encoder alone"),
            wrong("pooled over time", "def whisper_audio_states(whisper_model, features):\n"
                  "    return whisper_model.get_encoder()(features).last_hidden_state.mean(dim=1)",
                  names=r"ENCODER's last_hidden_state"),
            subtle("the states before the last layer", "def whisper_audio_states(whisper_model, features):\n"
                   "    return whisper_model.get_encoder()(features, output_hidden_states=True).hidden_states[-2]"),
            subtle("the .encoder attribute of WhisperModel only", "def whisper_audio_states(whisper_model, features):\n"
                   "    return whisper_model.encoder(features).last_hidden_state"),
        ],
        right=[
            right("[0] of the encoder's output", "def whisper_audio_states(whisper_model, features):\n"
                  "    encoder = whisper_model.get_encoder()\n    return encoder(input_features=features)[0]"),
            right("the base model's encoder, by attribute", "def whisper_audio_states(whisper_model, features):\n"
                  "    base = whisper_model.model if hasattr(whisper_model, 'model') else whisper_model\n"
                  "    return base.encoder(features, return_dict=True)['last_hidden_state']"),
        ]),
    "nb12_sentence_vectors": Exercise(
        wrong=[
            wrong("bug 3: no attention mask for the model", "def sentence_vectors(model, tokenizer, texts):\n"
                  "    enc = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    states = model(input_ids=enc['input_ids']).last_hidden_state\n"
                  "    w = enc['attention_mask'][..., None].float()\n    return (states * w).sum(1) / w.sum(1)",
                  names=r"bug 3: pass attention_mask"),
            wrong("a plain mean: the padding averaged too", "def sentence_vectors(model, tokenizer, texts):\n"
                  "    enc = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    return model(**enc).last_hidden_state.mean(dim=1)", names=r"average only\s+the real tokens"),
            wrong("masked sum divided by the padded length", "def sentence_vectors(model, tokenizer, texts):\n"
                  "    enc = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    states = model(**enc).last_hidden_state\n"
                  "    return (states * enc['attention_mask'][..., None]).sum(1) / states.shape[1]",
                  names=r"divide by their count"),
            wrong("averaged over the features, not the tokens", "def sentence_vectors(model, tokenizer, texts):\n"
                  "    enc = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    return model(**enc).last_hidden_state.mean(dim=2)", names=r"token axis \(dim=1\)"),
            subtle("the [CLS] state instead of the mean", "def sentence_vectors(model, tokenizer, texts):\n"
                   "    enc = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                   "    return model(**enc).last_hidden_state[:, 0]"),
            subtle("the other mask convention: the padding averaged", "def sentence_vectors(model, tokenizer, texts):\n"
                   "    enc = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                   "    states = model(**enc).last_hidden_state\n    w = (enc['attention_mask'] == 0)[..., None].float()\n"
                   "    return (states * w).sum(1) / w.sum(1).clamp(min=1)"),
        ],
        right=[
            right("einsum and a count", "def sentence_vectors(model, tokenizer, texts):\n"
                  "    enc = tokenizer(texts, padding=True, return_tensors='pt')\n    mask = enc['attention_mask']\n"
                  "    states = model(input_ids=enc['input_ids'], attention_mask=mask)[0]\n"
                  "    return torch.einsum('bld,bl->bd', states, mask.to(states.dtype)) / mask.sum(1, keepdim=True)"),
            right("row by row over the real tokens", "def sentence_vectors(model, tokenizer, texts):\n"
                  "    enc = tokenizer(list(texts), padding=True, return_tensors='pt')\n"
                  "    states = model(**enc).last_hidden_state\n"
                  "    return torch.stack([s[m.bool()].mean(0) for s, m in zip(states, enc['attention_mask'])])"),
        ]),
    "nb12_eval_and_no_grad": Exercise(
        wrong=[
            wrong("bug 4: inference_mode without eval()", "def eval_and_no_grad(model, inputs):\n"
                  "    with torch.inference_mode():\n        return model(**inputs).last_hidden_state",
                  names=r"model\.eval\(\) switches it off"),
            wrong("eval() but a graph is built", "def eval_and_no_grad(model, inputs):\n"
                  "    model.eval()\n    return model(**inputs).last_hidden_state", names=r"inference_mode"),
            wrong("model.training = False: the sub-modules stay in training mode", "def eval_and_no_grad(model, inputs):\n"
                  "    model.training = False\n    with torch.no_grad():\n        return model(**inputs).last_hidden_state",
                  names=r"model\.eval\(\)"),
            wrong("switched back to training mode afterwards", "def eval_and_no_grad(model, inputs):\n"
                  "    was_training = model.training\n    model.eval()\n"
                  "    with torch.no_grad():\n        out = model(**inputs).last_hidden_state\n"
                  "    model.train(was_training)\n    return out", names=r"leave the model in eval mode"),
            subtle("the pooled output, not the token states", "def eval_and_no_grad(model, inputs):\n"
                   "    model.eval()\n    with torch.no_grad():\n        return model(**inputs).pooler_output"),
        ],
        right=[
            right("train(False) and no_grad", "def eval_and_no_grad(model, inputs):\n"
                  "    model.train(False)\n    with torch.no_grad():\n        out = model(**inputs)\n    return out[0]"),
            right("a decorated inner function", "def eval_and_no_grad(model, inputs):\n"
                  "    @torch.inference_mode()\n    def run():\n        return model(**inputs, return_dict=True)['last_hidden_state']\n"
                  "    for module in model.modules():\n        module.training = False\n    return run()"),
        ]),
    "nb12_fused_vector": Exercise(
        wrong=[
            wrong("bug 17: the image left out", _FUSED +
                  "    ctx = to_context({'audio': sound, 'image': image})['audio']\n"
                  "    x = block(to_query(text.states), ctx.states, ctx.padding_mask)\n"
                  "    return fusion.pool(Tokens(x, text.padding_mask))", names=r"bug 17"),
            wrong("bug 16: no context padding mask", _FUSED +
                  "    ctx = concat(list(to_context({'audio': sound, 'image': image}).values()))\n"
                  "    x = block(to_query(text.states), ctx.states, None)\n"
                  "    return fusion.pool(Tokens(x, text.padding_mask))", names=r"bugs 16 and 18"),
            wrong("a plain mean over the text tokens, padding included", _FUSED +
                  "    ctx = concat(list(to_context({'audio': sound, 'image': image}).values()))\n"
                  "    return block(to_query(text.states), ctx.states, ctx.padding_mask).mean(dim=1)",
                  names=r"pool only the real text tokens"),
            wrong("bug 18: not pooled", _FUSED +
                  "    ctx = concat(list(to_context({'audio': sound, 'image': image}).values()))\n"
                  "    return block(to_query(text.states), ctx.states, ctx.padding_mask)", names=r"bug 18"),
            subtle("the context mask inverted (True = keep)", _FUSED +
                   "    ctx = concat(list(to_context({'audio': sound, 'image': image}).values()))\n"
                   "    x = block(to_query(text.states), ctx.states, ~ctx.padding_mask)\n"
                   "    return fusion.pool(Tokens(x, text.padding_mask))"),
        ],
        right=[
            right("torch.cat by hand and a masked mean by hand", _FUSED +
                  "    parts = to_context({'audio': sound, 'image': image})\n"
                  "    states = torch.cat([parts['audio'].states, parts['image'].states], dim=1)\n"
                  "    pad = torch.cat([parts['audio'].padding_mask, parts['image'].padding_mask], dim=1)\n"
                  "    x = block(to_query(text.states), states, pad)\n    keep = (~text.padding_mask).unsqueeze(-1).float()\n"
                  "    return (x * keep).sum(dim=1) / keep.sum(dim=1)"),
            right("image first among the keys", _FUSED +
                  "    parts = to_context(dict(audio=sound, image=image))\n"
                  "    ctx = concat([parts['image'], parts['audio']])\n"
                  "    return fusion.pool(Tokens(block(to_query(text.states), ctx.states, ctx.padding_mask), text.padding_mask))"),
        ]),
    "nb12_prefix_lm_logits": Exercise(
        wrong=[
            wrong("the prefix after the text", _PREFIX_ARGS +
                  "    embeds = torch.cat([lm.get_input_embeddings()(input_ids), project(prefix)], dim=1)\n"
                  "    return lm(inputs_embeds=embeds).logits[:, prefix.shape[1]:]", names=r"BEFORE the text"),
            wrong("logits of every position returned", _PREFIX_ARGS +
                  "    embeds = torch.cat([project(prefix), lm.get_input_embeddings()(input_ids)], dim=1)\n"
                  "    return lm(inputs_embeds=embeds).logits", names=r"TEXT positions only"),
            wrong("bug 30: the image never reaches the LM", _PREFIX_ARGS +
                  "    return lm(input_ids=input_ids).logits", names=r"bug 30"),
            wrong("bugs 25/28: a new embedding table, not the LM's", _PREFIX_ARGS +
                  "    table = nn.Embedding(lm.config.vocab_size, lm.config.n_embd)\n"
                  "    embeds = torch.cat([project(prefix), table(input_ids)], dim=1)\n"
                  "    return lm(inputs_embeds=embeds).logits[:, prefix.shape[1]:]", names=r"bugs 25 and 28"),
            subtle("the first T positions kept: the prefix's logits", _PREFIX_ARGS +
                   "    embeds = torch.cat([project(prefix), lm.get_input_embeddings()(input_ids)], dim=1)\n"
                   "    return lm(inputs_embeds=embeds).logits[:, :input_ids.shape[1]]"),
            subtle("off by one: shifted a position left", _PREFIX_ARGS +
                   "    embeds = torch.cat([project(prefix), lm.get_input_embeddings()(input_ids)], dim=1)\n"
                   "    n = max(prefix.shape[1] - 1, 0)\n"
                   "    return lm(inputs_embeds=embeds).logits[:, n:n + input_ids.shape[1]]"),
        ],
        right=[
            right("the last T positions, GPT-2's wte", _PREFIX_ARGS +
                  "    t = input_ids.shape[1]\n"
                  "    embeds = torch.cat((project(prefix), lm.transformer.wte(input_ids)), dim=-2)\n"
                  "    return lm(inputs_embeds=embeds).logits[:, -t:]"),
            right("with an explicit all-ones attention mask, narrow", _PREFIX_ARGS +
                  "    embeds = torch.cat([project(prefix), lm.get_input_embeddings()(input_ids)], 1)\n"
                  "    mask = torch.ones(embeds.shape[:2], dtype=torch.long)\n"
                  "    out = lm(inputs_embeds=embeds, attention_mask=mask, return_dict=True)\n"
                  "    return out['logits'].narrow(1, prefix.shape[1], input_ids.shape[1])"),
        ]),
}
