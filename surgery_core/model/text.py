"""Text features of class names and phrases: each prompt of an ensemble encoded, normalised, averaged.

Prompts are encoded on their own length (:mod:`.text_tower`, the same bits as open_clip's 77-token pass),
shortest first so that each batch is padded only to its own longest prompt. Features are kept in memory per
loaded model and on disk per (model, prompt set, phrase) (:mod:`.text_cache`): a fresh process running the same
model and classes encodes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from surgery_core.model.prompts import DEFAULT_PROMPT_SET, PROMPT_SETS, prompt_texts
from surgery_core.model.text_cache import TextDiskCache, model_text_key
from surgery_core.model.text_tower import encode_tokens

#: The fewest prompts encoded together. The tower ends in a GEMM with one row per prompt (the projection), and
#: the CPU kernel computes the last ``M mod 4`` rows of a product of fewer than 12 rows another way (see
#: :mod:`.text_tower`): with fewer prompts, a phrase's feature would depend on how many were encoded with it
#: (open_clip alone gives 'a photo of a ship.' other last bits in a batch of 1 than in a batch of 20).
MIN_BATCH = 16


@torch.no_grad()
def encode_names(loaded, names: list[str] | tuple[str, ...], prompt_set: str = DEFAULT_PROMPT_SET,
                 batch: int = 256) -> torch.Tensor:
    """``[K, D]`` float32 text features computed now (no cache): each template encoded, L2-normalised, averaged
    over the templates, re-normalised. A name's feature does not depend on the other names asked with it: batches
    are of at least :data:`MIN_BATCH` prompts, filled with copies."""
    model, device = loaded.model, loaded.device
    n_t = len(PROMPT_SETS[prompt_set])
    texts = [t for name in names for t in prompt_texts(name, prompt_set)]
    tokens = loaded.tokenizer(texts)
    order = torch.argsort(tokens.argmax(dim=-1), stable=True)  # shortest first: each batch padded to its longest
    feats = torch.empty(0)
    for i in range(0, len(texts), batch):
        idx = order[i:i + batch]
        fill = max(0, MIN_BATCH - len(idx))  # copies of the last prompt, dropped below
        part = encode_tokens(model, torch.cat([tokens[idx], tokens[idx[-1:]].expand(fill, -1)]).to(device))
        part = F.normalize(part[:len(idx)].float(), dim=-1)
        if i == 0:
            feats = part.new_empty((len(texts), part.shape[1]))
        feats[idx.to(part.device)] = part
    feats = feats.view(len(names), n_t, -1).mean(dim=1)
    return F.normalize(feats, dim=-1)


@torch.no_grad()
def ensemble_text_features(loaded, names: list[str] | tuple[str, ...], prompt_set: str = DEFAULT_PROMPT_SET,
                           batch: int = 256) -> torch.Tensor:
    """``[K, D]`` float32 text features on the model's device: each template encoded, L2-normalised, averaged,
    re-normalised (:func:`encode_names`).

    Cached on ``loaded`` per (class names, prompt set), the same tensor on each call, and on disk per phrase
    (:class:`~.text_cache.TextDiskCache`): only the names found in neither are encoded. An empty name ``""``
    gives the redundancy feature of single-text feature surgery.
    """
    key = (tuple(names), prompt_set)
    hit = loaded._text_cache.get(key)
    if hit is not None:
        return hit
    disk_key = model_text_key(loaded, prompt_set)
    disk = TextDiskCache() if disk_key else None
    rows = {}
    if disk is not None:
        for name in dict.fromkeys(names):
            got = disk.get(disk_key, name)
            if got is not None:
                rows[name] = torch.from_numpy(got).to(loaded.device)
    todo = [n for n in dict.fromkeys(names) if n not in rows]
    if todo:
        fresh = encode_names(loaded, todo, prompt_set, batch)
        rows.update(zip(todo, fresh))
        if disk is not None:
            disk.put(disk_key, {n: f.cpu().numpy() for n, f in zip(todo, fresh)})
    out = torch.stack([rows[n] for n in names])
    loaded._text_cache.put(key, out)
    return out


def is_cached(loaded, name: str, prompt_set: str = DEFAULT_PROMPT_SET) -> bool:
    """Whether :func:`ensemble_text_features` would read ``[name]``'s feature rather than encode it."""
    if ((name,), prompt_set) in loaded._text_cache:
        return True
    disk_key = model_text_key(loaded, prompt_set)
    return bool(disk_key) and TextDiskCache().path(disk_key, name).is_file()
