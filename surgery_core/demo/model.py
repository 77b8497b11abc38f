"""The demo model's architecture (an open_clip config shipped in ``model_configs/``) and its weights."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "model_configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEMO_ARCH = "Demo-ViT-32"


def weights_file_name(arch: str) -> str:
    """The file ``surgery demo train`` writes an architecture's weights to (``demo-vit-32.safetensors``)."""
    return f"{arch.lower()}.safetensors"


DEMO_WEIGHTS = WEIGHTS_DIR / weights_file_name(DEMO_ARCH)


def register_demo_models() -> None:
    """Make the demo architectures known to ``open_clip.create_model`` (idempotent, no I/O beyond JSON)."""
    import open_clip  # here, not at the top: registering the demo (plugins) must not load torch

    if DEMO_ARCH not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)
