"""Text features on the prompts' own length are open_clip's 77-token features to the bit (issue #27 item 3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from surgery_core.data.classes import DIOR_CLASSES
from surgery_core.demo.model import DEMO_ARCH
from surgery_core.model.loading import load_model
from surgery_core.model.prompts import PROMPT_SETS, prompt_texts
from surgery_core.model.text import encode_names
from surgery_core.model.text_tower import MIN_ROWS, encode_tokens, short_pass_supported

LONG = " ".join(["expressway service area"] * 40)  # longer than any context: truncated, its end token at the last slot


def padded_reference(loaded, names, prompt_set, batch=256):
    """The features as the project computed them before the short pass: batches of 256 in template order, every
    prompt padded to the whole context by ``model.encode_text``."""
    texts = [t for n in names for t in prompt_texts(n, prompt_set)]
    feats = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            feats.append(F.normalize(loaded.model.encode_text(loaded.tokenizer(texts[i:i + batch])).float(), dim=-1))
    feats = torch.cat(feats).view(len(names), len(PROMPT_SETS[prompt_set]), -1).mean(dim=1)
    return F.normalize(feats, dim=-1)


@pytest.fixture(scope="module")
def demo():
    return load_model(DEMO_ARCH)


@pytest.fixture(scope="module")
def b32():
    return load_model("ViT-B-32", random_weights=True)


@pytest.mark.parametrize("which", ["demo", "b32"])
def test_short_pass_is_used_and_exact(which, request):
    """Batches of several sizes, short and long prompts: encode_tokens equals encode_text, and it did run short."""
    loaded = request.getfixturevalue(which)
    model = loaded.model
    assert short_pass_supported(model)
    dior = [t for n in DIOR_CLASSES for t in prompt_texts(n)]
    sets = {"dior": dior[::7], "single": [t for n in DIOR_CLASSES for t in prompt_texts(n, "single")],
            "mixed": ["", "a", "ship", "there is the expressway toll station in the scene.", "golf field"] * 2}
    shortened = 0
    for texts in sets.values():
        for bs in (1, 3, 5, 16, 256):
            for i in range(0, min(len(texts), 4 * bs), bs):
                tokens = loaded.tokenizer(texts[i:i + bs])
                n = int(tokens.argmax(-1).max()) + 1
                shortened += n < tokens.shape[1] and len(tokens) * n >= MIN_ROWS
                assert torch.equal(encode_tokens(model, tokens), model.encode_text(tokens)), (which, bs, i)
    assert shortened >= 10
    one_long = loaded.tokenizer([LONG])  # nothing to cut: the padded pass, unchanged
    assert torch.equal(encode_tokens(model, one_long), model.encode_text(one_long))
    many_long = loaded.tokenizer([LONG, "a photo of a ship."] * 8)
    assert torch.equal(encode_tokens(model, many_long), model.encode_text(many_long))


@pytest.mark.parametrize("which", ["demo", "b32"])
def test_dior_ensembles_bit_identical(which, request):
    """DIOR's 20 classes with the project's templates (85 and single): what a run uses, against the padded
    computation of before; and a class encoded alone equals it encoded among the twenty (the per-phrase cache)."""
    loaded = request.getfixturevalue(which)
    for prompt_set in ("surgery85", "single"):
        names = list(DIOR_CLASSES) + [""]
        new = encode_names(loaded, names, prompt_set)
        assert torch.equal(new, padded_reference(loaded, names, prompt_set)), prompt_set
        if which == "demo":
            for k in (0, 7, 20):
                assert torch.equal(encode_names(loaded, [names[k]], prompt_set)[0], new[k])
    with_long = [LONG, *DIOR_CLASSES]
    assert torch.equal(encode_names(loaded, with_long, "single"), padded_reference(loaded, with_long, "single"))
    assert torch.equal(encode_names(loaded, [LONG], "single")[0], encode_names(loaded, with_long, "single")[0])
