"""Train the demo CLIP contrastively on synthetic scene/caption pairs (no box supervision).

Deterministic for a seed on a given machine: scenes come from ``render_scene`` with one RNG per scene index,
batches from a seeded permutation, weights from a seeded init; torch runs single-process on the CPU.
Writes the weights to ``<out>/`` under :func:`~.model.weights_file_name` (fp16 safetensors) and
``<out>/training_log.json`` (loss curve, wall time, configuration), and returns the log.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from surgery_core.data.images import squash
from surgery_core.demo.model import DEMO_ARCH, register_demo_models, weights_file_name
from surgery_core.demo.scenes import GENERATOR_VERSION, render_chunk
from surgery_core.errors import InputError
from surgery_core.parallel import spawn_map


def render_training_set(seed: int, count: int, size: int, workers: int = 1, chunk: int = 250,
                        group: int = 8000) -> tuple[np.ndarray, list[str]]:
    """``count`` scenes as uint8 ``[count, 3, size, size]`` (channels first, the layout the model reads, so a
    batch needs no transpose) plus captions; the same whatever the number of worker processes.

    Rendered ``group`` scenes at a time into one preallocated array, so that memory stays near the array's
    own size (12,000 scenes at 224 px are 1.8 GB) instead of doubling while the workers' results come back."""
    images = np.empty((count, 3, size, size), np.uint8)
    captions: list[str] = []
    for g0 in range(0, count, group):
        starts = list(range(g0, min(g0 + group, count), chunk))
        stops = [min(s + chunk, count, g0 + group) for s in starts]
        if workers > 1 and len(starts) > 1:
            parts = spawn_map(render_chunk, [seed] * len(starts), starts, stops, [size] * len(starts),
                              workers=workers)
        else:
            parts = [render_chunk(seed, a, b, size) for a, b in zip(starts, stops)]
        for a, (imgs, caps) in zip(starts, parts):
            images[a:a + len(imgs)] = imgs
            captions += caps
        del parts
    return images, captions


def squash_all(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 ``[n, 3, s, s]`` scenes squashed to ``side`` px exactly as the evaluation squashes its inputs
    (:func:`surgery_core.data.images.squash`), so that a model with a smaller input trains on what it will see."""
    out = np.empty((len(images), 3, side, side), np.uint8)
    for i, im in enumerate(images):
        out[i] = squash(np.ascontiguousarray(im.transpose(1, 2, 0)), side).transpose(2, 0, 1)
    return out


def _dihedral(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Apply one of 8 flips/rotations per image: top-down scenes and their captions are invariant to them."""
    out = torch.empty_like(x)
    for t in range(8):
        idx = (k == t).nonzero(as_tuple=True)[0]
        if len(idx):
            y = torch.rot90(x[idx], t % 4, dims=(2, 3))
            out[idx] = y.flip(3) if t >= 4 else y
    return out


def train(out: Path, seed: int = 0, scenes: int = 12000, steps: int = 2400, batch: int = 128, lr: float = 2e-3,
          size: int = 224, threads: int | None = None, log_every: int = 25, device: str = "cpu",
          render_workers: int = 2, arch: str = DEMO_ARCH) -> dict:
    """Train and save the demo model. Returns the training log (also written to ``training_log.json``).

    Scenes are rendered at ``size`` px and squashed to the model's own input side when that differs."""
    if not 1 <= batch <= scenes:  # each step draws one batch of distinct scenes (contrastive labels 0..batch-1)
        raise InputError(None, f"demo training: a batch of {batch} needs at least {batch} scenes, got {scenes} "
                         f"(give more scenes or a smaller batch)")
    register_demo_models()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    dev = torch.device(device)
    model = open_clip.create_model(arch, pretrained=None, load_weights=False, pretrained_text=False).to(dev)
    tokenizer = open_clip.get_tokenizer(arch)
    input_size = model.visual.image_size[0]
    images, captions = render_training_set(seed, scenes, size, render_workers)
    if input_size != size:
        images = squash_all(images, input_size)
    t_render = time.perf_counter() - t0
    tokens = tokenizer(captions).to(dev)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD, device=dev).view(1, 3, 1, 1)
    scale, shift = 1.0 / (255.0 * std), mean / std  # (x / 255 - mean) / std as one multiply and one subtract
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)

    def lr_at(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(scenes, generator=gen)
    cursor = 0
    losses = []
    model.train()
    t1 = time.perf_counter()
    for step in range(steps):
        if cursor + batch > scenes:
            order, cursor = torch.randperm(scenes, generator=gen), 0
        idx = order[cursor:cursor + batch]
        cursor += batch
        # Flip/rotate the uint8 batch (4x fewer bytes to move than floats), then normalise in place.
        flips = torch.randint(0, 8, (batch,), generator=gen).to(dev)
        x = _dihedral(torch.from_numpy(images[idx.numpy()]).to(dev), flips)
        x = x.float().mul_(scale).sub_(shift)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(tokens[idx.to(dev)]), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.t()
        labels = torch.arange(batch, device=dev)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if log_every and (step % log_every == 0 or step == steps - 1):
            rate = (step + 1) / (time.perf_counter() - t1)
            print(f"step {step:5d}/{steps} loss {loss.item():.4f} lr {lr_at(step):.2e} "
                  f"scale {model.logit_scale.exp().item():.1f} ({rate:.2f} steps/s)", flush=True)
    wall = time.perf_counter() - t0
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    weights = out / weights_file_name(arch)
    save_file(state, str(weights), metadata={"arch": arch, "seed": str(seed), "steps": str(steps)})
    log = {
        "arch": arch, "seed": seed, "scenes": scenes, "generator_version": GENERATOR_VERSION, "scene_size": size,
        "input_size": input_size, "steps": steps, "batch": batch, "lr": lr, "warmup_steps": warmup,
        "schedule": "linear warmup + cosine", "optimizer": "AdamW(0.9, 0.98), wd 0.1",
        "augmentation": "8 dihedral flips/rotations", "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "device": str(dev), "render_seconds": round(t_render, 1), "wall_seconds": round(wall, 1),
        "loss_every_step": [round(v, 5) for v in losses], "weights_file": weights.name,
    }
    (out / "training_log.json").write_text(json.dumps(log))
    return log
