"""Train demo-model recipes side by side and print what each one's heatmaps score (issue 4's search).

Each recipe is a variant of the shipped one (``surgery_core.demo.train.train``: seed 0, 224 px scenes, the
4-layer width-128 ViT with 32 px patches): another input size and patch size (scenes rendered at ``render``
px and squashed to the input exactly as the evaluation squashes its inputs, or rendered natively), another
tower width or depth, more scenes or steps. Every recipe is trained with ``train()`` and scored with
``Run.quality()`` on the demo test split (seed 1000, 300 scenes), as the model card is. Prints one line per
recipe (training and scoring seconds, final loss, zero-shot accuracy, pointing game per method) and writes
``<out>/res_<name>.json`` with the per-class pointing game too.

Meant for a GPU machine: several recipes train at once on one card (``--parallel``), each with its own
process; on this project's 2-core CPU one full recipe takes 25-100 minutes. Training sets are rendered once
per scene size (scene i depends only on (seed, i), so a smaller set is a prefix of a larger one).

    .venv/bin/python benchmarks/sweep_demo_recipes.py --device cuda [--only b32,p16_224] [--parallel 8] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _shipped() -> dict:
    """The shipped recipe: ``train()``'s defaults and the shipped architecture's vision tower."""
    import inspect

    from surgery_core.demo.model import CONFIG_DIR, DEMO_ARCH
    from surgery_core.demo.train import train

    defaults = {k: v.default for k, v in inspect.signature(train).parameters.items()}
    vision = json.loads((CONFIG_DIR / f"{DEMO_ARCH}.json").read_text())["vision_cfg"]
    return dict(image=vision["image_size"], patch=vision["patch_size"], render=defaults["size"],
                scenes=defaults["scenes"], steps=defaults["steps"], lr=defaults["lr"], layers=vision["layers"],
                width=vision["width"], batch=defaults["batch"])


SHIPPED = _shipped()


def recipe(name, **changes):
    """The shipped recipe with ``changes`` (image, patch, render, scenes, steps, lr, layers, width, batch)."""
    unknown = set(changes) - set(SHIPPED)
    if unknown:
        raise ValueError(f"recipe {name}: unknown fields {sorted(unknown)}")
    return dict(SHIPPED, name=name, **changes)


RECIPES = [
    recipe("b32"),                                   # the shipped recipe
    recipe("b32_long", steps=4800),
    recipe("b32_w192l6", layers=6, width=192),
    recipe("p16_112_sq", image=112, patch=16),       # rendered at 224, squashed to 112
    recipe("p16_112_sq_long", image=112, patch=16, scenes=24000, steps=4800),
    recipe("p16_112_native", image=112, patch=16, render=112),
    recipe("p16_96_native", image=96, patch=16, render=96, scenes=20000, steps=2000),  # the trial shape
    recipe("p16_96_sq", image=96, patch=16, scenes=20000, steps=2000),
    recipe("p16_160_sq", image=160, patch=16),
    recipe("p16_224", patch=16),                     # 14x14 grid
    recipe("p16w64l4b96", patch=16, width=64, batch=96),
    recipe("p16w64l4b96_24k", patch=16, width=64, batch=96, scenes=24000),
    recipe("p16w96l3b96s2000", patch=16, width=96, layers=3, batch=96, steps=2000),
]


def _arch_config(r: dict) -> dict:
    from surgery_core.demo.model import CONFIG_DIR, DEMO_ARCH

    cfg = json.loads((CONFIG_DIR / f"{DEMO_ARCH}.json").read_text())
    cfg["vision_cfg"].update(image_size=r["image"], patch_size=r["patch"], layers=r["layers"], width=r["width"])
    return cfg


def _largest_sets(recipes: list[dict]) -> dict[int, int]:
    best: dict[int, int] = {}
    for r in recipes:
        best[r["render"]] = max(best.get(r["render"], 0), r["scenes"])
    return best


def _run_one(r: dict, recipes: list[dict], work: Path, out: Path, device: str) -> None:
    import open_clip
    import torch

    import surgery_core.demo.train as T
    from surgery_core.demo.card import measure_run
    from surgery_core.run.config import ModelConfig, RunConfig
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    torch.set_num_threads(2)
    arch = f"Sweep-{r['name']}"
    cfg_dir = work / "configs" / r["name"]
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / f"{arch}.json").write_text(json.dumps(_arch_config(r)))
    open_clip.add_model_config(cfg_dir)
    largest = _largest_sets(recipes)

    def cached(seed, count, size, workers=1, **_):
        n = largest[size]
        images = np.load(work / f"train_{size}_{n}.npy", mmap_mode="r")[:count]
        return np.ascontiguousarray(images), json.loads((work / f"train_{size}_{n}.json").read_text())[:count]

    T.render_training_set = cached  # rendered once per size by the parent, read here
    t0 = time.time()
    log = T.train(work / "runs" / r["name"], scenes=r["scenes"], steps=r["steps"], batch=r["batch"], lr=r["lr"],
                  size=r["render"], device=device, log_every=0, arch=arch)
    t_train = time.time() - t0
    t0 = time.time()
    weights = work / "runs" / r["name"] / log["weights_file"]
    run = Run.open(RunConfig(model=ModelConfig(arch=arch, checkpoint=str(weights))),
                   RunStore(work / "store" / r["name"]), device=device, workers=1)
    res = dict(r, train_s=round(t_train, 1), final_loss=float(np.mean(log["loss_every_step"][-50:])),
               **measure_run(run))  # the figures the model card reports, computed the same way
    res["eval_s"] = round(time.time() - t0, 1)
    (out / f"res_{r['name']}.json").write_text(json.dumps(res, indent=1))
    pg = " ".join(f"{m} {v:.3f}" for m, v in res["pointing_game"].items())
    print(f"{r['name']:22s} train {t_train:6.0f} s  score {res['eval_s']:4.0f} s  loss {res['final_loss']:.3f}  "
          f"zero-shot {res['zero_shot_top1_in_scene']:.3f}  pointing game: {pg}", flush=True)


def _worker(r, recipes, work, out, device):
    try:
        _run_one(r, recipes, work, out, device)
    except Exception:  # one failed recipe must not stop the others
        traceback.print_exc()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--only", help="comma-separated recipe names (default: all)")
    ap.add_argument("--parallel", type=int, default=8, help="recipes trained at once")
    ap.add_argument("--render-workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "sweep_demo_recipes"),
                    help="training sets, weights, run stores (default: sweep_demo_recipes in the temp folder)")
    ap.add_argument("--out", help="result JSON files (default: <work>/results)")
    ap.add_argument("--smoke", action="store_true", help="300 scenes and 6 steps per recipe (checks the plumbing)")
    args = ap.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    unknown = set(args.only.split(",")) - {r["name"] for r in RECIPES} if args.only else set()
    if unknown:
        ap.error(f"unknown recipes {sorted(unknown)}; known: {[r['name'] for r in RECIPES]}")
    recipes = [r for r in RECIPES if not args.only or r["name"] in args.only.split(",")]
    if args.smoke:
        recipes = [dict(r, scenes=300, steps=6) for r in recipes]
    work = Path(args.work)
    out = Path(args.out) if args.out else work / "results"
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SURGERY_CACHE", str(work / "cache"))  # the test split, generated once here

    from surgery_core.demo import demo_data_root
    from surgery_core.demo.train import render_training_set

    t0 = time.time()
    demo_data_root()
    for size, n in _largest_sets(recipes).items():
        if not (work / f"train_{size}_{n}.npy").exists():
            t = time.time()
            images, captions = render_training_set(0, n, size, args.render_workers)
            np.save(work / f"train_{size}_{n}.npy", images)
            (work / f"train_{size}_{n}.json").write_text(json.dumps(captions))
            print(f"rendered {n} scenes at {size} px in {time.time() - t:.1f} s", flush=True)
    ctx = mp.get_context("spawn")
    procs = []
    for r in recipes:
        while sum(p.is_alive() for p in procs) >= args.parallel:
            time.sleep(1)
        p = ctx.Process(target=_worker, args=(r, recipes, work, out, args.device))
        p.start()
        procs.append(p)
    for p in procs:
        p.join()
    print(f"{len(recipes)} recipes in {time.time() - t0:.0f} s; results in {out}")


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
