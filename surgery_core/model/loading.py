"""Models: an open_clip architecture plus a local checkpoint file. Never touches the network.

RemoteCLIP files (``RemoteCLIP-ViT-B-32.pt``, ``-ViT-L-14.pt``) are plain state dicts; a ``{'state_dict': ...}``
or ``{'model': ...}`` wrapper and a ``module.`` prefix (DataParallel) are unwrapped. Pickles are read with
``weights_only=True`` only: a checkpoint that needs code to load is refused, never run.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

from surgery_core.errors import CheckpointError, InputError
from surgery_core.files import content_sha256
from surgery_core.model.text_cache import TextMemory
from surgery_core.plugins import shipped_model

# Keys that OpenAI-format state dicts carry as plain ints and open_clip models do not have.
_NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size")
_WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict")


def _sniff(head: bytes) -> str:
    """What the first bytes of a file look like, in words (for refusals of files that are not checkpoints)."""
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if head.startswith(b"\x80"):
        return "a pickle"
    if _looks_like_safetensors(head):
        return "a safetensors file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    if "\x00" in text:
        return "unrecognised binary data"
    stripped = text.lstrip()
    kind = "a JSON file" if stripped[:1] in ("{", "[") else "a text file"
    first = stripped.splitlines()[0] if stripped.strip() else ""
    return f"{kind} ({first[:40]!r}{'...' if len(first) > 40 else ''})" if first else kind


def _looks_like_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    return len(head) > 8 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < (1 << 40)


def _zip_has_data_pkl(path: Path) -> bool:
    """True when a zip archive lists a PyTorch ``data.pkl`` (False too when it cannot be listed: truncated)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return True  # a zip whose directory cannot be read: say "truncated" rather than "not a checkpoint"


_EXPECTED = "expected a PyTorch state dict (.pt, .pth, .bin) or a .safetensors file"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file into a flat ``{name: tensor}`` dict, unwrapping common wrappers.

    ``.safetensors`` files (by name or by content) are read with safetensors; anything else with
    ``torch.load(weights_only=True)``. Raises CheckpointError naming the file and the problem for anything that
    is not such a state dict, whatever its bytes: missing, a folder, empty, text, a zip or pickle of something
    else, truncated, holding code, a safetensors header that does not match its data.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(path, f"is a folder, not a checkpoint file; {_EXPECTED}")
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(path, f"empty file (0 bytes), not a checkpoint; {_EXPECTED}")
    kind = _sniff(head)
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        from safetensors.torch import load_file
        try:
            obj = load_file(str(path))
        except BaseException as exc:  # noqa: BLE001 - a lying header can raise a Rust panic (a BaseException)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            seen = "" if kind == "a safetensors file" else f" (the file is {kind})"
            raise CheckpointError(path, f"not a readable safetensors file: {why}{seen}") from None
    else:
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if kind != "a pickle":
                raise CheckpointError(path, f"not a checkpoint: the file is {kind}; {_EXPECTED}") from None
            why = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:160]
            raise CheckpointError(path, "refused: not a plain state dict that weights_only=True can read "
                                        "(not a PyTorch checkpoint, or a pickle that needs code or objects "
                                        f"to load; nothing in it was run): {why}") from None
        except MemoryError:
            raise CheckpointError(path, f"not a checkpoint: reading it as one asked for more memory than there "
                                        f"is (the file is {kind})") from None
        except Exception as exc:  # noqa: BLE001 - the unpickler fails on arbitrary bytes with any error type
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            if kind == "a zip archive" and not _zip_has_data_pkl(path):
                problem = f"not a checkpoint: a zip archive without the data.pkl of a PyTorch checkpoint; {_EXPECTED}"
            elif kind in ("a zip archive", "a pickle"):
                problem = f"truncated or not a PyTorch checkpoint ({kind}: {why})"
            else:
                problem = f"not a checkpoint: the file is {kind}; {_EXPECTED}"
            raise CheckpointError(path, problem) from None
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"not a state dict (found {type(obj).__name__}, expected a dict of tensors)")
    if not obj:
        raise CheckpointError(path, "not a state dict: an empty dict (no tensors)")
    state = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise CheckpointError(path, f"not a state dict: key {k!r} is not a parameter name")
        if k in _NON_PARAMETER_KEYS:
            continue
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(path, f"not a state dict: {k!r} holds a {type(v).__name__}, not a tensor")
        state[k.removeprefix("module.")] = v
    return state


def _describe_mismatch(path: Path, arch: str, model: torch.nn.Module, state: dict) -> str | None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return None
    hint = ""
    if any(k.startswith("visual.layer1.") for k in state):
        hint = " The file holds a ResNet image tower (e.g. RemoteCLIP-RN50); CLIP Surgery needs a ViT."
    elif any(k.startswith("visual.transformer.") for k in state) and shapes:
        hint = " It looks like a ViT of another size or patch size: check --arch."
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape (e.g. {'; '.join(shapes[:2])})")
    return f"does not match architecture {arch}: " + ", ".join(parts) + "." + hint


@dataclass
class LoadedModel:
    """A CLIP model ready for heatmaps, and what identifies it (for run-store keys)."""

    model: open_clip.model.CLIP
    tokenizer: object
    arch: str
    quickgelu: bool
    checkpoint: str | None
    checkpoint_sha256: str | None
    image_size: int
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str | None = None  # the catalog or registered name it was loaded by, if any
    note: str = ""  # one warning line about how it was loaded (QuickGELU likely missing, sha256 mismatch accepted)
    _text_cache: TextMemory = field(default_factory=TextMemory, repr=False)  # bounded; see model.text_cache

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def identity(self) -> dict:
        """What determines this model's outputs, JSON-ready."""
        return {"arch": self.arch, "quickgelu": self.quickgelu, "checkpoint_sha256": self.checkpoint_sha256}


def _check_surgery_compatible(model, arch: str) -> None:
    visual = getattr(model, "visual", None)
    if not isinstance(visual, VisionTransformer):
        raise InputError(None, f"architecture {arch} has a {type(visual).__name__} image tower; CLIP Surgery's "
                               "dual-path pass needs an open_clip VisionTransformer (ViT-B/32, B/16, L/14, ...)")
    if visual.attn_pool is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
        raise InputError(None, f"architecture {arch} pools its image tokens another way (attention pooling or "
                               "average); the dual path needs CLS-token pooling")
    if not all(isinstance(b, ResidualAttentionBlock) for b in visual.transformer.resblocks):
        raise InputError(None, f"architecture {arch} uses custom attention blocks; only open_clip's "
                               "ResidualAttentionBlock (nn.MultiheadAttention) is supported")


def quickgelu_hint(path: Path, sha256: str | None) -> str | None:
    """Why a checkpoint loaded without QuickGELU looks like it needs it (OpenAI-initialised weights), or None:
    its sha256 is a catalog model's that uses QuickGELU, the ``open_clip_config.json`` beside it (a hub snapshot)
    says ``quick_gelu``, or its file name names OpenAI CLIP or a model fine-tuned from it."""
    from surgery_core.model.catalog import CATALOG

    for entry in CATALOG.values():
        if sha256 and entry.sha256 == sha256 and entry.quickgelu:
            return f"it is catalog model {entry.name} (use --model {entry.name})"
    try:
        import json

        cfg = json.loads((path.parent / "open_clip_config.json").read_text(encoding="utf-8"))
        if cfg.get("model_cfg", {}).get("quick_gelu"):
            return "the open_clip_config.json beside it says quick_gelu"
    except (OSError, ValueError, AttributeError):
        pass
    n = path.name.lower().replace("_", "-")
    large_or_base = not any(t in n for t in ("h-14", "h14"))  # GeoRSCLIP's H-14 is LAION-initialised
    if ("openai" in n or "remoteclip" in n or (("rs5m" in n or "georsclip" in n) and large_or_base)
            or ("skyclip" in n and ("l14" in n or "l-14" in n))):
        return f"its name ({path.name}) says it comes from OpenAI CLIP weights"
    return None


def load_model(arch: str, checkpoint: str | Path | None = None, quickgelu: bool = False,
               device: str | torch.device = "cpu", *, random_weights: bool = False, name: str | None = None,
               expected_sha256: str | None = None, allow_sha256_mismatch: bool = False) -> LoadedModel:
    """Build ``arch`` with open_clip (no download) and load ``checkpoint`` strictly.

    quickgelu: use QuickGELU activations, as OpenAI CLIP and RemoteCLIP (fine-tuned from it) do.
    checkpoint None: an architecture with shipped weights (the demo's, see :mod:`surgery_core.plugins`) loads
    them; any other architecture is refused
    (CheckpointError saying how to pass one) unless ``random_weights``, which keeps the initialisation (seeded,
    so the same for every call): for tests and throughput figures only, its heatmaps mean nothing.
    name, expected_sha256: the catalog or registered model the checkpoint is loaded as, and its published sha256;
    a file with another sha256 is refused (CheckpointError) unless ``allow_sha256_mismatch``, and then the
    loaded model's ``note`` says so. A bare checkpoint that looks OpenAI-initialised, loaded without QuickGELU,
    gets a ``note`` too (see :func:`quickgelu_hint`).

    The shipped demo model (no checkpoint needed):

    >>> loaded = load_model("Demo-ViT-32")
    >>> loaded.arch, loaded.image_size, loaded.patch_size, loaded.checkpoint_sha256[:12]
    ('Demo-ViT-32', 224, 32, '3a38b389af3e')
    """
    shipped = shipped_model(arch)  # also makes extensions' architectures (the demo's) known to open_clip
    if ":" in arch:
        raise InputError(None, f"architecture {arch!r}: hub and directory schemas are not supported "
                               "(nothing is downloaded); give an open_clip name such as ViT-B-32")
    if arch not in open_clip.list_models():
        raise InputError(None, f"unknown architecture {arch!r}; open_clip knows e.g. ViT-B-32, ViT-B-16, "
                               "ViT-L-14, ViT-L-14-336")
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # open_clip warns that no pretrained weights were loaded: by design
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random weights are the same on every call (the run store keys them alike)
            model = open_clip.create_model(arch, pretrained=None, load_weights=False, force_quick_gelu=quickgelu,
                                           pretrained_text=False, device="cpu")
    finally:
        root_logger.setLevel(level)
    _check_surgery_compatible(model, arch)  # first: a ResNet needs another architecture, not a checkpoint
    if checkpoint is None and not random_weights:
        if shipped is None:
            raise CheckpointError(None, f"architecture {arch} needs a checkpoint: without one its weights are "
                                        "random and its heatmaps mean nothing. Give a local state dict "
                                        "(--checkpoint FILE, or model.checkpoint in a run configuration), or "
                                        "ask for random weights explicitly (--random-weights, for tests)")
        checkpoint = shipped.weights
    sha, note = None, ""
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if expected_sha256 and checkpoint.is_file():  # before reading it: a wrong file fails fast
            sha = content_sha256(checkpoint)
            if sha != expected_sha256:
                if not allow_sha256_mismatch:
                    raise CheckpointError(checkpoint, f"sha256 {sha} differs from model {name}'s published "
                                                      f"{expected_sha256}: another or a damaged file. Pull it again "
                                                      "('surgery models pull'), or load it anyway with "
                                                      "--allow-sha256-mismatch (the run will say so)")
                note = (f"checkpoint {checkpoint.name} (sha256 {sha[:16]}...) is NOT model {name}'s published file "
                        f"(sha256 {expected_sha256[:16]}...): loaded anyway, as asked (--allow-sha256-mismatch)")
        state = read_state_dict(checkpoint)
        problem = _describe_mismatch(checkpoint, arch, model, state)
        if problem:
            raise CheckpointError(checkpoint, problem)
        model.load_state_dict(state, strict=True)
        sha = sha or content_sha256(checkpoint)
        hint = None if quickgelu or name else quickgelu_hint(checkpoint, sha)
        if hint:
            note = (f"checkpoint {checkpoint.name} is loaded without QuickGELU, but {hint}: its maps will be "
                    "subtly wrong; pass --quickgelu")
    model.eval().to(device)
    visual = model.visual
    cfg = getattr(visual, "preprocess_cfg", {}) or {}
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return LoadedModel(model=model, tokenizer=open_clip.get_tokenizer(arch), arch=arch, quickgelu=quickgelu,
                       checkpoint=None if checkpoint is None else str(checkpoint), checkpoint_sha256=sha,
                       image_size=visual.image_size[0], patch_size=visual.patch_size[0], mean=mean, std=std,
                       name=name, note=note)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that support it, fp16 on older GPUs, None (fp32) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
