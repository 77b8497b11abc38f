"""surgery_core.run.explore: the image side / text side split gives the engine's grids, the single-text formula,
validated resolutions, phrases, the token cache, and hostile uploads refused by name.

The image files (good and hostile) are built in memory here and reused by the page tests."""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.conftest import SAMPLES

from surgery_core.data.images import read_image, squash, to_tensor
from surgery_core.errors import ImageError, InputError
from surgery_core.model.encoder import image_tokens, merge_windows
from surgery_core.model.heatmaps import compute_heatmaps
from surgery_core.model.methods import METHODS
from surgery_core.model.prompts import prompt_texts
from surgery_core.run import explore


# ------------------------------------------------------------------------------------------ files
def scene(h: int = 300, w: int = 400, seed: int = 0) -> np.ndarray:
    """A uint8 RGB picture with some structure (gradients plus a few blocks)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1).astype(np.uint8)
    b = max(1, min(h, w) // 8)
    for _ in range(6):
        r, c = int(rng.integers(0, h - b + 1)), int(rng.integers(0, w - b + 1))
        img[r:r + b, c:c + b] = rng.integers(0, 256, 3)
    return img


def encode(img: np.ndarray, ext: str) -> bytes:
    """``img`` (RGB or RGBA, uint8 or uint16) encoded by OpenCV as ``ext`` (".png", ".jpg", ".tif")."""
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(side: int = 12_000) -> bytes:
    """A valid greyscale PNG of ``side`` x ``side`` zeros (144 MP at the default, 144 MB once decoded) in about
    150 KB: a decompression bomb the decoder must refuse from its header."""
    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    body = b"".join([z.compress(row) for _ in range(side)] + [z.flush()])
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


HOSTILE = ("notes.png", "cut.jpg", "bomb.png", "tiny.png", "empty.jpg")


@lru_cache(maxsize=1)
def hostile() -> dict[str, tuple[bytes, str]]:
    """Files an upload must refuse: ``{name: (bytes, words the message must contain)}``."""
    jpg = encode(scene(), ".jpg")
    return {
        "notes.png": (b"this is not an image, only text\n" * 20, "not a readable image"),
        "cut.jpg": (jpg[: len(jpg) // 2], "truncated JPEG"),
        "bomb.png": (bomb_png(), "decompression-bomb"),
        "tiny.png": (encode(scene(20, 20), ".png"), "smaller than one 32 px patch"),
        "empty.jpg": (b"", "empty file"),
    }


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def loaded(demo_checkpoint):
    from surgery_core.demo.model import DEMO_ARCH
    from surgery_core.model.loading import load_model

    return load_model(DEMO_ARCH, demo_checkpoint)


@pytest.fixture(scope="module")
def dior_image() -> np.ndarray:
    """A real 800 x 800 DIOR scene shipped with the package."""
    return read_image(sorted(SAMPLES.rglob("*.jpg"))[0])


def engine(loaded, image, res: explore.Resolution, classes, query_mode=False):
    x = torch.from_numpy(to_tensor(squash(image, res.size), loaded.mean, loaded.std))[None]
    return compute_heatmaps(loaded, x, classes, tuple(METHODS), resolution=res, query_mode=query_mode)


# ------------------------------------------------------------------------------------------ numerics
@pytest.mark.parametrize("size,window,stride", [(224, None, None), (800, None, None), (448, 224, 96)])
def test_class_set_maps_equal_the_engines(loaded, dior_image, size, window, stride):
    res = explore.Resolution.check(size, window, stride, loaded.patch_size)
    classes = ["airplane", "storagetank", "ship"]
    want = engine(loaded, dior_image, res, classes)
    tokens = explore.image_tokens(loaded, dior_image, res)
    got = explore.phrase_maps(loaded, tokens, classes, list(METHODS), "set")
    assert got.mode == "set"
    for m in METHODS:
        assert got.grids[m].shape == (3, size // 32, size // 32)
        np.testing.assert_allclose(got.grids[m], want.grids[m][0], rtol=0, atol=1e-6, err_msg=m)
    np.testing.assert_allclose(got.probs, want.probs[0], atol=1e-6)


def test_independent_maps_equal_the_engines_query_mode(loaded, dior_image):
    res = explore.Resolution.check(448, 224, 128, loaded.patch_size)
    want = engine(loaded, dior_image, res, ["solar panel", "roundabout"], query_mode=True)
    got = explore.phrase_maps(loaded, explore.image_tokens(loaded, dior_image, res), ["solar panel", "roundabout"],
                              list(METHODS), "independent")
    assert got.probs is None
    for m in METHODS:
        np.testing.assert_allclose(got.grids[m], want.grids[m][0], rtol=0, atol=1e-6, err_msg=m)


def test_maps_equal_the_runs_stored_grids(test_run):
    """The page's maps of a dataset sample are the Compare page's: the run store's grids for its classes."""
    run = test_run
    loaded = run.loaded
    size = run.cfg.input.size or loaded.image_size
    res = explore.Resolution.check(size, run.cfg.input.window, run.cfg.input.stride, loaded.patch_size)
    for i in run.grids.rows[:2].tolist():
        tokens = explore.image_tokens(loaded, run.image(i), res, run.cfg.surgery_depth)
        got = explore.phrase_maps(loaded, tokens, run.classes, run.cfg.methods, "set", run.cfg.prompt_set)
        for m in run.cfg.methods:
            np.testing.assert_allclose(got.grids[m], run.grids.grids[m][run.row_of(i)], rtol=0, atol=2e-5)
        np.testing.assert_allclose(got.probs, run.grids.probs[run.row_of(i)], atol=2e-5)


@torch.no_grad()
def test_single_text_mode_is_the_hand_written_formula(loaded, dior_image):
    """sim = normalize(patch token) . (t - r), t the phrase's 85-prompt mean (each prompt normalised, mean
    renormalised), r the same for the empty string; plain cosine for ``standard``."""
    def ensemble(word: str) -> torch.Tensor:
        feats = F.normalize(loaded.model.encode_text(loaded.tokenizer(prompt_texts(word))).float(), dim=-1)
        return F.normalize(feats.mean(0), dim=-1)

    phrase = "swimming pool"
    t, r = ensemble(phrase), ensemble("")
    x = torch.from_numpy(to_tensor(squash(dior_image, 224), loaded.mean, loaded.std))[None]
    toks = image_tokens(loaded, x, None, (("bicubic_size", "ori"), ("bicubic_size", "vv")), 6).passes["bicubic_size"]
    got = explore.phrase_maps(loaded, explore.image_tokens(loaded, dior_image, explore.Resolution(224)), [phrase],
                              list(METHODS), mode="set")  # one phrase: single-text whatever is asked
    assert got.mode == "independent"
    sources = {"standard": toks.tokens["ori"], "vv_qk": toks.tokens["ori"], "vv_vv": toks.tokens["vv"],
               "vv_mixed": toks.tokens["vv"]}
    for m, src in sources.items():
        patches = F.normalize(src[0, 1:].float(), dim=-1)
        want = patches @ (t if m == "standard" else t - r)
        np.testing.assert_allclose(got.grids[m][0], want.reshape(7, 7).numpy(), rtol=0, atol=1e-5, err_msg=m)
    assert np.ptp(got.grids["vv_mixed"][0]) > 0  # not the identically-zero class-set surgery of one class


def test_a_7x7_map_becomes_25x25_on_an_800_px_image(loaded, dior_image):
    grids = {}
    for size in (224, 800):
        res = explore.Resolution.check(size, None, None, loaded.patch_size)
        maps = explore.phrase_maps(loaded, explore.image_tokens(loaded, dior_image, res), ["airplane"],
                                   ["vv_mixed"])
        grids[size] = maps.grids["vv_mixed"][0]
        assert res.describe().startswith(f"input {size} px squashed, {size // 32}x{size // 32} patches")
    assert grids[224].shape == (7, 7) and grids[800].shape == (25, 25)


def test_window_merge_averages_overlaps():
    res = explore.Resolution.check(128, 64, 32, 32)  # 3x3 windows of 2x2 cells on a 4x4 grid
    per_window = torch.ones(9, 1, 2, 2) * torch.arange(9.0).view(9, 1, 1, 1)
    merged = merge_windows(per_window, res.origins(), 1, res.grid, res.patch)[0][0]
    # cell (0, 0) is covered by window 0 only; cell (1, 1) by windows 0, 1, 3, 4
    assert merged[0, 0] == 0 and merged[1, 1] == pytest.approx((0 + 1 + 3 + 4) / 4) and merged[3, 3] == 8


# ------------------------------------------------------------------------------------------ inputs
def test_resolution_is_validated_with_clear_messages():
    ok = explore.Resolution.check(800, 224, 96, 32)
    assert ok.grid == (25, 25) and ok.window_count == 49
    assert "7x7 = 49 windows" in ok.describe()
    assert explore.Resolution.check(224, 448, 32, 32) == explore.Resolution(224)  # a window covering all: one pass
    assert explore.Resolution.check(448, 224, None, 32).stride == 224
    assert explore.Resolution.check(2048, None, None, 32).grid == (64, 64)
    with pytest.raises(InputError, match="one pass over 96x96 patches is above the page's 64x64 limit: set a sliding"):
        explore.Resolution.check(1344, None, None, 14)  # ViT-L/14: 9216 tokens in one attention
    with pytest.raises(InputError, match="spans 74x74 patches"):
        explore.Resolution.check(2044, 1036, 518, 14)
    cases = {(230, None, None): "input size 230 px must be a multiple of the 32 px patch: try 224 or 256",
             (448, 200, None): "window 200 px must be a multiple of the 32 px patch: try 192 or 224",
             (448, 224, 100): "stride 100 px must be a multiple of the 32 px patch",
             (448, 224, 256): "stride 256 px is larger than the window 224 px",
             (4096, None, None): "above the page's limit",
             (2048, 64, 32): "windows of 64 px at stride 32 px"}
    for args, words in cases.items():
        with pytest.raises(InputError, match=words.replace("(", r"\(")):
            explore.Resolution.check(*args, 32)


def test_phrases_are_parsed():
    assert explore.parse_phrases("solar panel") == ["solar panel"]
    assert explore.parse_phrases(" swimming pool,  roundabout ") == ["swimming pool", "roundabout"]
    assert explore.parse_phrases("a;b\nc,, ,A, b ") == ["a", "b", "c"]
    assert explore.parse_phrases("  ,  ") == []
    with pytest.raises(InputError, match="at most 8"):
        explore.parse_phrases(",".join(f"p{i}" for i in range(9)))
    with pytest.raises(InputError, match="characters long"):
        explore.parse_phrases("x" * 81)
    assert explore.effective_mode(["one"], "set") == "independent"
    assert explore.effective_mode(["one", "two"], "set") == "set"
    with pytest.raises(InputError, match="text mode"):
        explore.effective_mode(["a", "b"], "both")


def test_token_cache_reuses_the_image_side(loaded, dior_image):
    cache = explore.TokenCache()
    res = explore.Resolution(224)
    a, hit_a = cache.get(loaded, dior_image, res, methods=["vv_mixed"])
    b, hit_b = cache.get(loaded, dior_image, res, methods=["standard", "vv_vv"])  # a subset of what it holds
    assert (hit_a, hit_b) == (False, True) and a is b and (cache.computed, cache.hits) == (1, 1)
    cache.get(loaded, dior_image, explore.Resolution(256))
    cache.get(loaded, dior_image[::-1].copy(), res)
    assert cache.computed == 3 and len(cache) == 3
    small = explore.TokenCache(max_bytes=a.nbytes)  # room for one entry: the oldest goes
    small.get(loaded, dior_image, res)
    small.get(loaded, dior_image, explore.Resolution(256))
    assert len(small) == 1 and small.get(loaded, dior_image, res)[1] is False
    with pytest.raises(InputError, match="unknown heatmap methods"):
        cache.get(loaded, dior_image, res, methods=["no_such_method"])


def test_random_weight_models_never_share_cache_entries():
    from surgery_core.demo.model import DEMO_ARCH
    from surgery_core.model.loading import load_model

    a, b = load_model(DEMO_ARCH, random_weights=True), load_model(DEMO_ARCH, random_weights=True)
    assert a.identity == b.identity  # both "no checkpoint": the identity alone cannot tell them apart
    assert explore.model_key(a) != explore.model_key(b)


# ------------------------------------------------------------------------------------------ uploads
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_uploads_are_refused_by_name(name):
    data, words = hostile()[name]
    with pytest.raises(ImageError) as err:
        explore.read_upload(data, name, 32, max_bytes=50 << 20)
    msg = str(err.value)
    assert msg.startswith(name + ": ") and words in msg and "\n" not in msg


def test_an_upload_over_the_limit_is_refused():
    data = encode(scene(), ".png")
    with pytest.raises(ImageError, match=r"above the upload limit of 0 MB \(server.maxUploadSize\)"):
        explore.read_upload(data, "big.png", 32, max_bytes=100)


def test_16_bit_and_4_channel_pngs_are_handled_and_named():
    base = scene()
    rgba = np.dstack([base, np.full(base.shape[:2], 128, np.uint8)])
    cases = {
        "deep.png": (base.astype(np.uint16) * 257, "16-bit PNG"),
        "alpha.png": (rgba, "alpha channel"),
        "deep-alpha.png": (rgba.astype(np.uint16) * 257, "16-bit PNG"),
        "grey16.png": (base[:, :, 0].astype(np.uint16) * 257, "greyscale PNG"),
    }
    for name, (img, words) in cases.items():
        up = explore.read_upload(encode(img, ".png"), name, 32)
        assert up.image.dtype == np.uint8 and up.image.shape == (300, 400, 3), name
        assert any(words in n for n in up.notes), (name, up.notes)
        if img.ndim == 3:
            np.testing.assert_array_equal(up.image, base)  # x257 then >>8 restores the 8-bit values
    plain = explore.read_upload(encode(base, ".png"), "plain.png", 32)
    assert plain.notes == () and plain.key == explore.image_hash(base)
    tif = explore.read_upload(encode(base, ".tif"), "scan.tif", 32)
    np.testing.assert_array_equal(tif.image, base)


def test_upload_names_are_made_safe_for_messages():
    assert explore.safe_name("../../etc/x.png") == "x.png"
    assert explore.safe_name("C:\\Users\\a\\[evil](javascript:x)*.png") == "_evil_(javascript_x)_.png"
    assert explore.safe_name("") == "upload"
    assert len(explore.safe_name("a" * 300)) == 80
