"""The prompt ensembles, as data (no torch: the run configuration reads them): CLIP Surgery's 80 OpenAI
ImageNet templates + 5 scene templates, and a single template. The text encoder lives in :mod:`.text`."""

from __future__ import annotations

import hashlib

from surgery_core.data.classes import prompt_name

# OpenAI's 80 ImageNet templates, verbatim as open_clip 3.3.0 ships them (open_clip.OPENAI_IMAGENET_TEMPLATES;
# tests/model/test_prompts.py checks they are equal). Written out so that reading a configuration does not import
# open_clip, and so that a change of the library cannot change the run-store key silently.
OPENAI_IMAGENET_TEMPLATES = (
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'a photo of a {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
    'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.',
    'a plushie {}.',
    'a photo of the nice {}.',
    'a photo of the small {}.',
    'a photo of the weird {}.',
    'the cartoon {}.',
    'art of the {}.',
    'a drawing of the {}.',
    'a photo of the large {}.',
    'a black and white photo of a {}.',
    'the plushie {}.',
    'a dark photo of a {}.',
    'itap of a {}.',
    'graffiti of the {}.',
    'a toy {}.',
    'itap of my {}.',
    'a photo of a cool {}.',
    'a photo of a small {}.',
    'a tattoo of the {}.',
)

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
    "surgery85": tuple(t.format for t in OPENAI_IMAGENET_TEMPLATES + SCENE_TEMPLATES),
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
