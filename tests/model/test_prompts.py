"""The prompt ensemble is CLIP Surgery's, verbatim: the 80 OpenAI ImageNet templates and its 5 scene templates
(xmed-lab/CLIP_Surgery @ d4696d4, clip/clip.py:255), in that order."""

from surgery_core.model.prompts import PROMPT_SETS, prompt_set_fingerprint, prompt_texts

SCENE5 = ["there is a {} in the scene.", "there is the {} in the scene.", "this is a {} in the scene.",
          "this is the {} in the scene.", "this is one {} in the scene."]


def test_surgery85_is_the_official_ensemble_verbatim():
    """OpenAI's 80 templates as open_clip ships them, then CLIP Surgery's five, in that order; the fingerprint
    (recorded when the list was checked string by string against the official clip.py) pins every character."""
    import open_clip

    texts = [t("{}") for t in PROMPT_SETS["surgery85"]]
    assert len(texts) == 85 and len(set(texts)) == 85
    assert texts[:80] == [t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    assert texts[80:] == SCENE5
    assert prompt_set_fingerprint("surgery85") == "f87d863dc7a96d46"


def test_prompts_fill_the_class_words():
    texts = prompt_texts("storagetank")
    assert texts[80] == "there is a storage tank in the scene." and texts[0] == "a bad photo of a storage tank."


def test_fingerprint_follows_the_wording():
    assert prompt_set_fingerprint("surgery85") != prompt_set_fingerprint("single")
    assert len(prompt_set_fingerprint()) == 16

