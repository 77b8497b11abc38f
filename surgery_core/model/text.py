"""Text features of class names and phrases: each prompt of an ensemble encoded, normalised, averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from surgery_core.model.prompts import DEFAULT_PROMPT_SET, PROMPT_SETS, prompt_texts


@torch.no_grad()
def ensemble_text_features(loaded, names: list[str] | tuple[str, ...], prompt_set: str = DEFAULT_PROMPT_SET,
                           batch: int = 256) -> torch.Tensor:
    """``[K, D]`` float32 text features: each template encoded, L2-normalised, averaged, re-normalised.

    Cached on ``loaded`` per (class names, prompt set): text features are computed once per model and class
    list. An empty name ``""`` gives the redundancy feature of single-text feature surgery.
    """
    key = (tuple(names), prompt_set)
    if key in loaded._text_cache:
        return loaded._text_cache[key]
    model, device = loaded.model, loaded.device
    n_t = len(PROMPT_SETS[prompt_set])
    texts = [t for name in names for t in prompt_texts(name, prompt_set)]
    feats = []
    for i in range(0, len(texts), batch):
        tokens = loaded.tokenizer(texts[i:i + batch]).to(device)
        feats.append(F.normalize(model.encode_text(tokens).float(), dim=-1))
    feats = torch.cat(feats).view(len(names), n_t, -1).mean(dim=1)
    out = F.normalize(feats, dim=-1)
    loaded._text_cache[key] = out
    return out
