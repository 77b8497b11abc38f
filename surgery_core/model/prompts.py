"""Text features: the prompt ensemble of CLIP Surgery (80 OpenAI ImageNet templates + 5 scene templates)."""

from __future__ import annotations

import hashlib

import open_clip
import torch
import torch.nn.functional as F

from surgery_core.data.classes import prompt_name

# The five templates CLIP Surgery adds to OpenAI's 80, verbatim (xmed-lab/CLIP_Surgery @ d4696d4,
# clip/clip.py:255; MaskCLIP's prompt_engineering.py has the same 85).
SCENE_TEMPLATES = (
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)
PROMPT_SETS = {
    "surgery85": tuple(open_clip.OPENAI_IMAGENET_TEMPLATES) + tuple(t.format for t in SCENE_TEMPLATES),
    "single": (lambda c: f"a photo of a {c}.",),
}
DEFAULT_PROMPT_SET = "surgery85"


def prompt_texts(name: str, prompt_set: str = DEFAULT_PROMPT_SET) -> list[str]:
    """Every prompt of the ensemble for one class name (DIOR names are split into words first)."""
    words = prompt_name(name) if name else ""
    return [t(words) for t in PROMPT_SETS[prompt_set]]


def prompt_set_fingerprint(prompt_set: str = DEFAULT_PROMPT_SET) -> str:
    """Short hash of the templates' wording, so a changed template changes the run-store key."""
    text = "\n".join(t("{}") for t in PROMPT_SETS[prompt_set])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
