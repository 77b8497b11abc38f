"""Models: an open_clip architecture plus a local checkpoint file. Never touches the network.

RemoteCLIP files (``RemoteCLIP-ViT-B-32.pt``, ``-ViT-L-14.pt``) are plain state dicts; a ``{'state_dict': ...}``
or ``{'model': ...}`` wrapper and a ``module.`` prefix (DataParallel) are unwrapped. Pickles are read with
``weights_only=True`` only: a checkpoint that needs code to load is refused, never run.
"""

from __future__ import annotations

import hashlib
import pickle
import logging
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

from .errors import CheckpointError, InputError

# Keys that OpenAI-format state dicts carry as plain ints and open_clip models do not have.
_NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size")
_WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict")


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """Content hash of a file (hex), used to key the run store on what a checkpoint really holds."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file into a flat ``{name: tensor}`` dict, unwrapping common wrappers.

    ``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=True)``.
    Raises CheckpointError naming the file when it is missing, truncated, holds code or is not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            obj = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(path, f"not a readable safetensors file ({exc})") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            why = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:160]
            raise CheckpointError(path, "refused: not a plain state dict that weights_only=True can read "
                                        "(not a PyTorch checkpoint, or a pickle that needs code or objects "
                                        f"to load; nothing in it was run): {why}") from None
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise CheckpointError(path, f"truncated or not a PyTorch checkpoint ({str(exc)[:200]})") from None
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(path, f"not a state dict (found {type(obj).__name__})")
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
    _text_cache: dict = field(default_factory=dict, repr=False)

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


def load_model(arch: str, checkpoint: str | Path | None = None, quickgelu: bool = False,
               device: str | torch.device = "cpu") -> LoadedModel:
    """Build ``arch`` with open_clip (random init, no download) and load ``checkpoint`` strictly.

    quickgelu: use QuickGELU activations, as OpenAI CLIP and RemoteCLIP (fine-tuned from it) do.
    checkpoint None gives random weights: for tests only, heatmaps of it mean nothing.
    """
    from .demo.model import register_demo_models  # demo architectures are registered open_clip configs

    register_demo_models()
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
        model = open_clip.create_model(arch, pretrained=None, load_weights=False, force_quick_gelu=quickgelu,
                                       pretrained_text=False, device="cpu")
    finally:
        root_logger.setLevel(level)
    _check_surgery_compatible(model, arch)
    sha = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        state = read_state_dict(checkpoint)
        problem = _describe_mismatch(checkpoint, arch, model, state)
        if problem:
            raise CheckpointError(checkpoint, problem)
        model.load_state_dict(state, strict=True)
        sha = file_sha256(checkpoint)
    model.eval().to(device)
    visual = model.visual
    cfg = getattr(visual, "preprocess_cfg", {}) or {}
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return LoadedModel(model=model, tokenizer=open_clip.get_tokenizer(arch), arch=arch, quickgelu=quickgelu,
                       checkpoint=None if checkpoint is None else str(checkpoint), checkpoint_sha256=sha,
                       image_size=visual.image_size[0], patch_size=visual.patch_size[0], mean=mean, std=std)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that support it, fp16 on older GPUs, None (fp32) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
