"""Free-text exploration of one image: any phrase, every registered method, the engine's exact grids.

The computation is split in two so that a new phrase costs only the cheap half:

- **image side** (:func:`image_tokens`): the image squashed to the input size (as the engine squashes it),
  cut into sliding windows, one dual-path forward pass over all windows. The result, :class:`ImageTokens`
  (projected tokens of every window), depends on no text; :class:`TokenCache` keeps it per
  (model, image content, input size, window, stride, depth, token needs).
- **text side** (:func:`phrase_maps`): the prompt-ensemble feature of each phrase (cached on the model per
  phrase and prompt set by :func:`~surgery_core.model.text.ensemble_text_features`), the similarity of the cached
  tokens with them (class-set or single-text feature surgery, docs/DESIGN.md section 3), overlapping windows
  averaged: raw grids equal to the engine's for the same image, classes and method.

Each side is one call of the model's encoder as the engine makes it (``model.encoder.image_tokens`` in
:func:`image_tokens`, ``model.heatmaps.score_tokens`` in :func:`phrase_maps`), so the maps equal the engine's.
Nothing here writes to disk; uploaded images live only in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from surgery_core.data.classes import prompt_name
from surgery_core.data.images import decode_image, squash, to_tensor
from surgery_core.errors import ImageError, InputError
from surgery_core.lru import LRU
from surgery_core.eval.maps import normalize
from surgery_core.model import encoder
from surgery_core.model.encoder import (  # noqa: F401  (the page's limits, re-exported for the dashboard)
    MAX_INPUT_SIZE,
    MAX_PASS_CELLS,
    MAX_WINDOWS,
    PassTokens,
    Resolution,
    token_needs,
)
from surgery_core.model.forward import TowerTokens
from surgery_core.model.heatmaps import score_tokens
from surgery_core.model.loading import LoadedModel, autocast_dtype
from surgery_core.model.methods import METHODS, posembed_words
from surgery_core.model.prompts import DEFAULT_PROMPT_SET
from surgery_core.model.text import ensemble_text_features, is_cached

MAX_PHRASES = 8
MAX_PHRASE_CHARS = 80  # CLIP's context is 77 tokens; a prompt template adds about ten words

#: Text modes for several phrases; one phrase is always ``independent`` (single-text feature surgery).
MODES = {
    "set": "class set: feature surgery over the phrases together (softmax over the set, as over a dataset's "
           "classes)",
    "independent": "independent queries: single-text feature surgery for each phrase (its text feature minus "
                   "the empty-string ensemble)",
}


# ------------------------------------------------------------------------------------------ phrases
def parse_phrases(text: str) -> list[str]:
    """The phrases typed in one box: split at commas, semicolons and line breaks, spaces collapsed, empty
    parts dropped, repeats (case-insensitive) dropped, order kept. InputError when there are more than
    :data:`MAX_PHRASES` or one is longer than :data:`MAX_PHRASE_CHARS` characters."""
    out, seen = [], set()
    for part in re.split(r"[,;\n\r]+", str(text or "")):
        p = " ".join(part.split())
        if p and p.casefold() not in seen:
            seen.add(p.casefold())
            out.append(p)
    if len(out) > MAX_PHRASES:
        raise InputError(None, f"phrases: {len(out)} given, at most {MAX_PHRASES} (separate them with commas)")
    long = [p for p in out if len(p) > MAX_PHRASE_CHARS]
    if long:
        raise InputError(None, f"phrase {long[0][:40]!r}… is {len(long[0])} characters long, at most "
                               f"{MAX_PHRASE_CHARS}")
    return out


def effective_mode(phrases: list[str], mode: str) -> str:
    """The text mode actually used: one phrase is always ``independent`` (class-set surgery over a single
    class is identically zero: its softmax weight is 1 and the class mean is the value itself)."""
    if mode not in MODES:
        raise InputError(None, f"text mode {mode!r}: one of {', '.join(MODES)}")
    return "independent" if len(phrases) == 1 else mode


def prompt_words(phrase: str) -> str:
    """The words the prompt templates receive for a phrase (a DIOR class name or alias is spelled as the
    dataset's class: ``car`` becomes ``vehicle``, ``storagetank`` becomes ``storage tank``)."""
    return prompt_name(phrase)


# ------------------------------------------------------------------------------------------ images
def check_image(image: np.ndarray, patch: int, name: str = "image") -> None:
    """ImageError naming ``name`` when the image is smaller than one patch on either side (its heatmap would
    be an upsampling artefact, not a look at the content)."""
    h, w = image.shape[:2]
    if min(h, w) < patch:
        raise ImageError(name, f"image is {w}x{h} px, smaller than one {patch} px patch of the model")


def upload_notes(data: bytes) -> list[str]:
    """What decoding does to an image beyond reading it (16-bit scaled to 8-bit, alpha dropped, palette or
    grey expanded, CMYK converted), read from the file's header; [] for plain 8-bit RGB."""
    notes = []
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26 and data[12:16] == b"IHDR":
        depth, colour = data[24], data[25]
        if depth == 16:
            notes.append("16-bit PNG: scaled to 8 bits per channel (value / 256)")
        if colour in (4, 6):
            notes.append("PNG with an alpha channel: alpha dropped, transparent pixels keep their stored colour")
        elif colour == 3:
            notes.append("palette PNG: expanded to RGB")
        elif colour == 0:
            notes.append("greyscale PNG: replicated to three channels")
        return notes
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as probe:
            mode, fmt = probe.mode, probe.format or "image"
    except Exception:  # the decoder itself reports unreadable files
        return notes
    if mode.startswith("I;16") or mode in ("I", "F"):
        notes.append(f"{'16-bit' if mode.startswith('I;16') else '32-bit'} {fmt}: scaled to 8 bits per channel")
    if mode in ("RGBA", "LA", "PA"):
        notes.append(f"{fmt} with an alpha channel: alpha dropped")
    elif mode in ("L", "1") or mode.startswith("I;16"):
        notes.append(f"greyscale {fmt}: replicated to three channels")
    elif mode == "CMYK":
        notes.append(f"CMYK {fmt}: converted to RGB")
    return notes


@dataclass(frozen=True)
class Upload:
    """An uploaded image, decoded and checked, in memory only: ``image`` uint8 RGB ``[H, W, 3]``, ``key`` its
    :func:`image_hash`, ``notes`` what decoding changed (:func:`upload_notes`), ``nbytes`` the file's size."""

    name: str
    image: np.ndarray
    key: str
    notes: tuple[str, ...]
    nbytes: int


def safe_name(name: str, max_len: int = 80) -> str:
    """A file name fit for messages and captions: its last path part, only letters, digits and ``._-()``
    and spaces (anything else becomes ``_``), at most ``max_len`` characters."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    clean = re.sub(r"[^A-Za-z0-9._() -]", "_", base).strip() or "upload"
    return clean if len(clean) <= max_len else clean[: max_len - 1] + "…"


def read_upload(data: bytes, name: str, patch: int, max_bytes: int | None = None) -> Upload:
    """Decode an uploaded file with the dataset's hardened reader (:func:`~surgery_core.data.images.decode_image`:
    JPEG, PNG, TIFF; truncated files and decompression bombs refused) and check it covers one ``patch``.

    ImageError naming the file when it is over ``max_bytes``, not an image, damaged, too large or too small.
    Nothing is written anywhere."""
    name = safe_name(name)
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(name, f"file is {len(data) / 2**20:.1f} MB, above the upload limit of "
                               f"{max_bytes / 2**20:.0f} MB (server.maxUploadSize)")
    image = decode_image(bytes(data), name)
    check_image(image, patch, name)
    return Upload(name, image, image_hash(image), tuple(upload_notes(data)), len(data))


def image_hash(image: np.ndarray) -> str:
    """Content hash of decoded pixels (shape included): the same picture in two files is one cache entry."""
    a = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{a.shape}{a.dtype}".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:32]


def model_key(loaded: LoadedModel) -> str:
    """What identifies a model's outputs; random weights (no checkpoint hash) are told apart by object."""
    ident = dict(loaded.identity)
    if ident.get("checkpoint_sha256") is None:
        ident["instance"] = id(loaded.model)
    return json.dumps(ident, sort_keys=True)


# ------------------------------------------------------------------------------------------ image side
@dataclass(frozen=True)
class ImageTokens:
    """The image side of one image at one resolution: projected tokens of every window.

    tokens: :class:`~surgery_core.model.encoder.PassTokens` on the CPU, float32, ``[windows, 1 + wg*wg, D]``
    per pass and source (CLS first). holds: the ``(rule, source)`` pairs present (:func:`token_needs`).
    posembed: ``"official"`` or ``"shared"``. seconds: wall time of the forward passes."""

    tokens: PassTokens
    resolution: Resolution
    depth: int
    holds: tuple[tuple[str, str], ...]
    seconds: float
    posembed: str = "official"

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for p in self.tokens.passes.values() for t in p.tokens.values())

    @property
    def passes(self) -> int:
        """Tower passes this image side ran (one per positional-embedding rule)."""
        return len(self.tokens.passes)


@torch.no_grad()
def resolution_resizes(loaded: LoadedModel, resolution: Resolution) -> bool:
    """Whether the tower's input at ``resolution`` (a window, or the whole input) is not the model's own size."""
    return encoder.resizes(loaded.model.visual, (resolution.crop, resolution.crop))


@torch.no_grad()
def image_tokens(loaded: LoadedModel, image: np.ndarray, resolution: Resolution, depth: int = 6,
                 methods=tuple(METHODS), also: tuple[tuple[str, str], ...] = (),
                 posembed: str = "official") -> ImageTokens:
    """The image side of one uint8 RGB image ``[H, W, 3]`` at ``resolution``: squashed as the engine squashes it,
    then the model's one encoder (:func:`~surgery_core.model.encoder.image_tokens`, as
    :func:`~surgery_core.model.heatmaps.compute_heatmaps` runs it), computing the ``(rule, source)`` pairs
    ``methods`` need plus those named in ``also``; kept on the CPU in float32."""
    want = dict.fromkeys((*token_needs(methods, resolution_resizes(loaded, resolution), posembed), *also))
    t0 = time.perf_counter()
    x = torch.from_numpy(to_tensor(squash(image, resolution.size), loaded.mean, loaded.std))[None].to(loaded.device)
    toks = encoder.image_tokens(loaded, x, resolution, tuple(want), depth, posembed)
    passes = {rule: TowerTokens({k: t.float().cpu() for k, t in p.tokens.items()}, p.grid)
              for rule, p in toks.passes.items()}
    tokens = PassTokens(passes, toks.resize, posembed)
    holds = tuple((rule, k) for rule, p in passes.items() for k in p.tokens)
    return ImageTokens(tokens, resolution, int(depth), holds, time.perf_counter() - t0, posembed)


class TokenCache:
    """Image sides kept in memory (never on disk), least recently used evicted beyond ``max_bytes``.

    Key: (model, image content hash, input size, window, stride, depth, posembed); an entry serves any methods whose
    :func:`token_needs` it holds. ``computed`` and ``hits`` count forward passes and reuses (thread-safe)."""

    def __init__(self, max_bytes: int = 768 << 20):
        self.max_bytes = int(max_bytes)
        self._entries: LRU[tuple, ImageTokens] = LRU(max_bytes, size=lambda e: e.nbytes)
        self._lock = threading.Lock()  # the counters
        self.computed = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._entries.total

    def get(self, loaded: LoadedModel, image: np.ndarray, resolution: Resolution, depth: int = 6,
            methods=tuple(METHODS), image_key: str | None = None,
            posembed: str = "official") -> tuple[ImageTokens, bool]:
        """The image side of ``image`` (``image_key``: its :func:`image_hash` when already known) and whether it
        came from the cache."""
        need = set(token_needs(methods, resolution_resizes(loaded, resolution), posembed))
        key = (model_key(loaded), image_key or image_hash(image), resolution, int(depth), posembed)
        hit = self._entries.peek(key)
        if hit is not None and need <= set(hit.holds):
            self._entries.get(key)  # the most recently used
            with self._lock:
                self.hits += 1
            return hit, True
        # a cached entry that lacks a source is replaced by one holding both (no back-and-forth recomputing)
        also = () if hit is None else tuple(hit.holds)
        entry = image_tokens(loaded, image, resolution, depth, methods, also, posembed)
        with self._lock:
            self.computed += 1
        self._entries.put(key, entry)
        return entry, False


@lru_cache(maxsize=1)
def shared_token_cache() -> TokenCache:
    """The process-wide :class:`TokenCache` (every session of a dashboard process shares it)."""
    return TokenCache()


# ------------------------------------------------------------------------------------------ text side
@dataclass(frozen=True)
class PhraseMaps:
    """The text side for one image: ``grids[method]`` float32 ``[K, gh, gw]`` raw similarity (before min-max),
    one row per phrase; ``probs`` ``[K]`` the CLS softmax over the phrases (class-set mode only, else None);
    ``mode`` the text mode used."""

    phrases: tuple[str, ...]
    methods: tuple[str, ...]
    mode: str
    prompt_set: str
    grids: dict[str, np.ndarray]
    probs: np.ndarray | None
    seconds: float

    def map01(self, method: str, k: int) -> np.ndarray:
        """The grid of one method and phrase min-max normalised to 0-1 (``maps.normalize``)."""
        return normalize(self.grids[method][k])


@torch.no_grad()
def text_features(loaded: LoadedModel, phrases, prompt_set: str = DEFAULT_PROMPT_SET) -> torch.Tensor:
    """``[K, D]`` prompt-ensemble features, one phrase at a time so that each is cached on its own."""
    return torch.cat([ensemble_text_features(loaded, [p], prompt_set) for p in phrases]).float().cpu()


def uncached_phrases(loaded: LoadedModel, phrases, prompt_set: str = DEFAULT_PROMPT_SET) -> list[str]:
    """The phrases whose text feature :func:`text_features` would compute now (cached neither on the model nor on
    disk)."""
    return [p for p in phrases if not is_cached(loaded, p, prompt_set)]


@torch.no_grad()
def phrase_maps(loaded: LoadedModel, tokens: ImageTokens, phrases, methods, mode: str = "set",
                prompt_set: str = DEFAULT_PROMPT_SET) -> PhraseMaps:
    """Raw grids of every method for every phrase from cached image tokens (no forward pass of the image)."""
    t0 = time.perf_counter()
    phrases, methods = tuple(phrases), tuple(methods)
    if not phrases:
        raise InputError(None, "no phrase: type one or more, separated by commas")
    mode = effective_mode(list(phrases), mode)
    need = set(token_needs(methods, tokens.tokens.resize, tokens.posembed))
    if not need <= set(tokens.holds):
        raise InputError(None, f"these image tokens hold {tokens.holds}, the methods need {sorted(need)}")
    text = text_features(loaded, phrases, prompt_set)
    redundant = ensemble_text_features(loaded, [""], prompt_set).float().cpu() if mode == "independent" else None
    full, p = score_tokens(loaded, tokens.tokens, text, methods, tokens.resolution, redundant, probs=mode == "set")
    grids = {m: g[0].numpy().astype(np.float32) for m, g in full.items()}
    probs = None if p is None else p[0].numpy().astype(np.float32)
    return PhraseMaps(phrases, methods, mode, prompt_set, grids, probs, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------ attention inspector
@dataclass(frozen=True)
class PatchRows:
    """The attention inspector's answer for one patch of the full grid: ``rows`` (``model.rows.CellRows``) over
    the crop the run fed the tower (the whole squashed input, or the window holding the patch: ``origin`` its
    top-left corner in input px, ``cell`` the patch in that crop's grid)."""

    rows: object
    origin: tuple[int, int]
    cell: tuple[int, int]


@torch.no_grad()
def inspect_patch(loaded: LoadedModel, image: np.ndarray, resolution: Resolution, cell: tuple[int, int],
                  depth: int = 6, methods=tuple(METHODS), posembed: str = "official") -> PatchRows:
    """Attention rows of patch ``cell`` (row, column of the full grid) for every method: computed on request
    only, by the same passes as the maps (the crop the engine cuts, each method's positional-embedding rule);
    with windows, in the first window (row-major) that holds the patch. InputError for a patch outside the
    grid."""
    from surgery_core.model.rows import cell_rows

    gh, gw = resolution.grid
    r, c = int(cell[0]), int(cell[1])
    if not (0 <= r < gh and 0 <= c < gw):
        raise InputError(None, f"patch ({r}, {c}) is outside the {gh}x{gw} grid: row 0-{gh - 1}, column 0-{gw - 1}")
    x = torch.from_numpy(to_tensor(squash(image, resolution.size), loaded.mean, loaded.std))[None].to(loaded.device)
    p, win = resolution.patch, resolution.window or resolution.size
    y0, x0 = next((y, xx) for y, xx in resolution.origins()
                  if y // p <= r < (y + win) // p and xx // p <= c < (xx + win) // p)
    crop = x[:, :, y0:y0 + win, x0:x0 + win]
    local = (r - y0 // p, c - x0 // p)
    dtype = autocast_dtype(x.device)  # as the maps' passes run
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        rows = cell_rows(loaded.model.visual, crop, tuple(methods), local, depth, posembed)
    return PatchRows(rows, (y0, x0), local)


#: Colour scales of the maps on screen.
SCALES = {
    "minmax": "min-max per map (0 = its lowest patch, 1 = its highest), as on every page of the app",
    "raw": "raw similarity, one range per phrase over every method shown (methods' magnitudes compared)",
}


def display_range(maps: PhraseMaps, k: int, scale: str) -> tuple[float, float]:
    """The colour range ``(lo, hi)`` of phrase ``k``: (0, 1) for min-max maps, else the lowest and highest raw
    value over every method (a flat range is widened so that it never divides by zero)."""
    if scale not in SCALES:
        raise InputError(None, f"colour scale {scale!r}: one of {', '.join(SCALES)}")
    if scale == "minmax":
        return 0.0, 1.0
    lo = float(min(np.nanmin(maps.grids[m][k]) for m in maps.methods))
    hi = float(max(np.nanmax(maps.grids[m][k]) for m in maps.methods))
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def display_grid(maps: PhraseMaps, method: str, k: int, scale: str) -> np.ndarray:
    """The grid of one method and phrase on the colour scale: its min-max map, or the raw grid mapped to 0-1
    through the phrase's shared :func:`display_range` (clipped)."""
    if scale == "minmax":
        return maps.map01(method, k)
    lo, hi = display_range(maps, k, scale)
    return np.clip((maps.grids[method][k] - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def describe(loaded: LoadedModel, tokens: ImageTokens, maps: PhraseMaps) -> str:
    """One line saying how the maps were computed: model, methods' mode, resolution, depth, prompts."""
    ck = loaded.checkpoint_sha256
    model = f"{loaded.arch}{' QuickGELU' if loaded.quickgelu else ''} " + (
        f"(checkpoint sha256 {ck[:12]})" if ck else "(RANDOM weights: the maps mean nothing)")
    return (f"model {model} · text mode {MODES[maps.mode]} · {tokens.resolution.describe()} · "
            f"{posembed_words(tokens.posembed, tokens.tokens.resize)} ({tokens.passes} tower "
            f"pass{'es' if tokens.passes > 1 else ''}) · surgery depth {tokens.depth} · prompts {maps.prompt_set} "
            "ensemble · grids min-max normalised per method and phrase, upsampled bilinearly")


__all__ = ["MODES", "SCALES", "MAX_PHRASES", "MAX_INPUT_SIZE", "MAX_PASS_CELLS", "parse_phrases", "effective_mode",
           "prompt_words", "Resolution", "check_image", "Upload", "read_upload", "safe_name", "upload_notes",
           "image_hash", "model_key", "token_needs", "ImageTokens", "image_tokens", "TokenCache", "shared_token_cache",
           "PhraseMaps", "text_features", "uncached_phrases", "phrase_maps", "display_range",
           "display_grid", "describe", "PatchRows", "inspect_patch"]
