"""The one image encoder: a batch of images at a :class:`Resolution` to the projected tokens of every tower pass
its methods need (:func:`image_tokens`). The scoring step, tokens and text to raw grids, is
:func:`surgery_core.model.heatmaps.score_tokens`; ``compute_heatmaps`` (the engine) and Explore both call the two.

:class:`Resolution` is the one description of the tower's input: the squashed input's side, the sliding window
and its stride (a run configuration's ``input`` section converts to it in one place,
:meth:`Resolution.from_input`). Windows of ``window`` px are cut every ``stride`` px (the last flush with the far
edge) and stacked window-major; the scoring step adds each window's grid at its origin and averages overlapping
cells, and averages the class probabilities over windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from surgery_core.errors import InputError
from surgery_core.model.forward import TowerTokens, patchify, tower_forward
from surgery_core.model.loading import LoadedModel, autocast_dtype
from surgery_core.model.methods import METHODS, ORI, method_rule, pass_plan, paths_for, probs_rule

# Limits of an interactive computation (Explore, the inspector: :meth:`Resolution.check`); the engine has none.
MAX_INPUT_SIZE = 2048  # px, the squashed input's side
MAX_PASS_CELLS = 64  # patches per side of one pass (4096 tokens): beyond it, attention no longer fits a small
#                      machine's memory and time; larger inputs go through sliding windows
MAX_WINDOWS = 400  # windows per image: a stride of one patch on a large input would run for minutes


def window_origins(size: int, window: int, stride: int) -> list[int]:
    """Top-left offsets (pixels) of sliding windows along one axis, the last flush with the far edge.

    >>> window_origins(448, 224, 96)
    [0, 96, 192, 224]
    """
    if window >= size:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _multiples(value: int, patch: int) -> str:
    lo = max(patch, value // patch * patch)
    return f"{lo} or {lo + patch}" if lo != value else str(value)


@dataclass(frozen=True)
class Resolution:
    """How images are fed to the tower: squashed to ``size`` x ``size`` px; with ``window`` set, windows of
    ``window`` px slide with ``stride`` px and overlapping grid cells are averaged.

    Build with :meth:`of` (the engine's rule: no window when it covers the input, stride defaults to the window,
    both multiples of the patch) or :meth:`check` (the same plus the limits of an interactive page).

    >>> r = Resolution.of(448, 224, 96, patch=32)
    >>> r.grid, r.window_count, r.crop
    ((14, 14), 16, 224)
    >>> Resolution.of(224, 448, 32, patch=32)  # a window covering the input: one pass
    Resolution(size=224, window=None, stride=None, patch=32)
    """

    size: int
    window: int | None = None
    stride: int | None = None
    patch: int = 32

    @classmethod
    def of(cls, size: int, window: int | None = None, stride: int | None = None, patch: int = 32) -> "Resolution":
        """The engine's rule: one pass when there is no window or it covers the input; else the stride defaults to
        the window and both must be multiples of the patch (InputError)."""
        size, patch = int(size), int(patch)
        if not window or int(window) >= size:
            return cls(size, None, None, patch)
        window = int(window)
        stride = int(stride) if stride else window
        if window % patch or stride % patch:
            raise InputError(None, f"sliding window {window} px and stride {stride} px must be multiples of the "
                                   f"model's patch size {patch} px (e.g. window {max(patch, window // patch * patch)})")
        return cls(size, window, stride, patch)

    @classmethod
    def from_input(cls, inp, native: int, patch: int) -> "Resolution":
        """A run configuration's ``input`` section (``size``, ``window``, ``stride``; no size = the model's own
        ``native`` px) as a resolution: the one place where the configuration's form becomes this one."""
        return cls.of(inp.size or native, inp.window, inp.stride, patch)

    @classmethod
    def check(cls, size: int, window: int | None, stride: int | None, patch: int) -> "Resolution":
        """A valid resolution for an interactive page (:meth:`of` plus limits on the input, one pass and the
        number of windows), or InputError naming the option and the nearest valid values."""
        size, patch = int(size), int(patch)
        window = int(window) if window else None
        stride = int(stride) if stride else None
        if size < patch or size % patch:
            raise InputError(None, f"input size {size} px must be a multiple of the {patch} px patch: try "
                                   f"{_multiples(max(size, patch), patch)}")
        if size > MAX_INPUT_SIZE:
            raise InputError(None, f"input size {size} px is above the page's limit of {MAX_INPUT_SIZE} px")
        if window is None or window >= size:  # one pass: a stride means nothing
            if size // patch > MAX_PASS_CELLS:
                raise InputError(None, f"one pass over {size // patch}x{size // patch} patches is above the page's "
                                       f"{MAX_PASS_CELLS}x{MAX_PASS_CELLS} limit: set a sliding window")
            return cls(size, None, None, patch)
        if window < patch or window % patch:
            raise InputError(None, f"window {window} px must be a multiple of the {patch} px patch: try "
                                   f"{_multiples(max(window, patch), patch)}")
        if window // patch > MAX_PASS_CELLS:
            raise InputError(None, f"window {window} px spans {window // patch}x{window // patch} patches, above "
                                   f"the page's {MAX_PASS_CELLS}x{MAX_PASS_CELLS} limit for one pass")
        stride = stride or window
        if stride % patch:
            raise InputError(None, f"stride {stride} px must be a multiple of the {patch} px patch: try "
                                   f"{_multiples(max(stride, patch), patch)}")
        if stride > window:
            raise InputError(None, f"stride {stride} px is larger than the window {window} px: parts of the "
                                   "image would be skipped")
        res = cls.of(size, window, stride, patch)
        if res.window_count > MAX_WINDOWS:
            raise InputError(None, f"{res.window_count} windows of {window} px at stride {stride} px on a {size} "
                                   f"px input: at most {MAX_WINDOWS}; use a larger stride")
        return res

    @property
    def grid(self) -> tuple[int, int]:
        """The full image's patch grid (rows, columns)."""
        return self.size // self.patch, self.size // self.patch

    @property
    def crop(self) -> int:
        """The side of what one tower pass sees: the window, or the whole input."""
        return self.window or self.size

    def origins(self) -> list[tuple[int, int]]:
        """Top-left corners ``(y, x)`` in input px of every window (one at (0, 0) without windows)."""
        if self.window is None:
            return [(0, 0)]
        along = window_origins(self.size, self.window, self.stride)
        return [(y, x) for y in along for x in along]

    @property
    def window_count(self) -> int:
        return len(self.origins())

    def describe(self) -> str:
        """One line: input size, grid, windows."""
        gh, gw = self.grid
        text = f"input {self.size} px squashed, {gh}x{gw} patches of {self.patch} px"
        if self.window is None:
            return text + ", one pass"
        n = len(window_origins(self.size, self.window, self.stride))
        return text + (f", windows {self.window} px at stride {self.stride} px ({n}x{n} = {n * n} windows, "
                       "overlapping cells averaged)")

    def to_dict(self) -> dict:
        return {"size": self.size, "window": self.window, "stride": self.stride, "patch": self.patch}


@dataclass(frozen=True)
class PassTokens:
    """The tower passes of one batch, one per positional-embedding rule (``methods.pass_plan``):
    ``passes[rule]`` holds the vanilla tokens and the paths of the methods of that rule, ``[windows * B, 1 + N,
    D]`` (window-major). resize: whether the tower's input grid differs from the model's own; posembed:
    ``"official"`` or ``"shared"``. Which pass a method (and the class probabilities) reads follows from these
    (``methods.method_rule``)."""

    passes: dict[str, TowerTokens]
    resize: bool
    posembed: str

    @property
    def grid(self) -> tuple[int, int]:
        return next(iter(self.passes.values())).grid

    def for_method(self, name: str) -> TowerTokens:
        rule = method_rule(name, self.resize, self.posembed)
        if rule not in self.passes:
            raise ValueError(f"method {name!r} reads the {rule} pass, which was not computed "
                             f"(computed: {list(self.passes)})")
        return self.passes[rule]

    def for_probs(self) -> TowerTokens:
        return self.passes[probs_rule(self.resize, self.posembed)]


def resizes(visual, crop_hw: tuple[int, int]) -> bool:
    """Whether crops of ``crop_hw`` px give the tower a grid other than its own (the positional embedding is
    then resized, by each method's rule)."""
    ph, pw = visual.patch_size
    return (crop_hw[0] // ph, crop_hw[1] // pw) != tuple(visual.grid_size)


def token_needs(methods, resize: bool = False, posembed: str = "official") -> tuple[tuple[str, str], ...]:
    """The ``(positional-embedding rule, token source)`` pairs the chosen methods read: per pass of
    ``methods.pass_plan``, ``ori`` (always: class probabilities read its CLS) and the registry paths of
    ``methods.paths_for``. resize: whether the tower's input grid is not the model's own. Unknown method:
    InputError.

    >>> token_needs(["standard", "vv_mixed"])
    (('bicubic_size', 'ori'), ('bicubic_size', 'vv'))
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(None, f"unknown heatmap methods {unknown}; registered: {', '.join(METHODS)}")
    return tuple((rule, p) for rule, ms in pass_plan(methods, resize, posembed).items() for p in (ORI, *paths_for(ms)))


def crops_of(images: torch.Tensor, resolution: Resolution | None) -> torch.Tensor:
    """The tower's inputs: ``images`` itself in one pass, else its windows stacked window-major."""
    if resolution is None or resolution.window is None:
        return images
    w = resolution.window
    return torch.cat([images[:, :, y:y + w, x:x + w] for y, x in resolution.origins()])


def tower_passes(visual, crops: torch.Tensor, paths, depth: int = 6, posembed: str = "official") -> PassTokens:
    """One tower pass per positional-embedding rule of ``paths`` (``(rule, source)`` pairs, e.g.
    :func:`token_needs`), the patch embedding of ``crops`` computed once and shared by every pass."""
    by_rule: dict[str, list[str]] = {}
    for rule, p in dict.fromkeys(paths):
        by_rule.setdefault(rule, [])
        if p != ORI:
            by_rule[rule].append(p)
    patches = patchify(visual, crops)
    passes = {rule: tower_forward(visual, crops, tuple(ps), depth, rule, patches) for rule, ps in by_rule.items()}
    return PassTokens(passes, resizes(visual, tuple(crops.shape[-2:])), posembed)


@torch.no_grad()
def image_tokens(loaded: LoadedModel, images: torch.Tensor, resolution: Resolution | None, paths,
                 depth: int = 6, posembed: str = "official") -> PassTokens:
    """The projected tokens of a batch ``[B, 3, S, S]`` (normalised, on the model's device) at ``resolution``
    (None: one pass over the images as they are, any shape): windows cut and stacked window-major, one tower
    pass per positional-embedding rule (autocast on a GPU), computing the ``(rule, source)`` pairs ``paths``
    (:func:`token_needs` of the methods wanted, plus any others). Depends on no text."""
    if resolution is not None and tuple(images.shape[-2:]) != (resolution.size, resolution.size):
        raise ValueError(f"images of {tuple(images.shape[-2:])} px at a resolution of {resolution.size} px")
    crops = crops_of(images, resolution)
    dtype = autocast_dtype(images.device)
    with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
        return tower_passes(loaded.model.visual, crops, paths, depth, posembed)


def merge_windows(grids: torch.Tensor, origins: list[tuple[int, int]], batch: int, grid: tuple[int, int],
                  patch: int) -> torch.Tensor:
    """Window grids ``[len(origins) * batch, K, wg, wg]`` (window-major, as the crops were stacked) to full grids
    ``[batch, K, gh, gw]``: each window added at its origin (px, multiples of ``patch``), overlapping cells
    averaged."""
    wg = grids.shape[-1]
    acc = grids.new_zeros(batch, grids.shape[1], *grid)
    count = grids.new_zeros(1, 1, *grid)
    for i, (y, x) in enumerate(origins):
        acc[:, :, y // patch:y // patch + wg, x // patch:x // patch + wg] += grids[i * batch:(i + 1) * batch]
        count[:, :, y // patch:y // patch + wg, x // patch:x // patch + wg] += 1
    return acc / count
