"""The demo model's card: configuration, data, training curve, and what the shipped weights measure."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from surgery_core.demo import DEMO_DATA_COUNT, DEMO_DATA_SEED
from surgery_core.demo.model import CONFIG_DIR, DEMO_ARCH, DEMO_WEIGHTS, WEIGHTS_DIR
from surgery_core.eval.protocols import PRESENT
from surgery_core.run.config import RunConfig

CARD = WEIGHTS_DIR / "MODEL_CARD.md"
LOG = WEIGHTS_DIR / "training_log.json"
CURVE = WEIGHTS_DIR / "loss_curve.png"


def loss_curve_png(losses: list[float], path: Path, width: int = 640, height: int = 320) -> None:
    """Training loss per step (and its 50-step running mean) drawn with OpenCV."""
    img = np.full((height, width, 3), 255, np.uint8)
    m = 40
    y = np.asarray(losses, np.float64)
    smooth = np.convolve(y, np.ones(50) / 50, mode="valid") if len(y) >= 50 else y
    lo, hi = 0.0, float(y.max()) * 1.05

    def pts(v, offset=0):
        xs = m + (np.arange(len(v)) + offset) / max(len(y) - 1, 1) * (width - 2 * m)
        ys = height - m - (v - lo) / (hi - lo) * (height - 2 * m)
        return np.stack([xs, ys], 1).astype(np.int32)

    cv2.polylines(img, [pts(y)], False, (200, 200, 230), 1, cv2.LINE_AA)
    cv2.polylines(img, [pts(smooth, 49 if len(y) >= 50 else 0)], False, (40, 40, 200), 2, cv2.LINE_AA)
    cv2.rectangle(img, (m, m), (width - m, height - m), (0, 0, 0), 1)
    for frac in (0, 0.5, 1):
        v = lo + frac * (hi - lo)
        yy = int(height - m - frac * (height - 2 * m))
        cv2.putText(img, f"{v:.1f}", (4, yy + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"contrastive loss per step (red: 50-step mean); {len(y)} steps", (m, m - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def measure(store=None) -> dict:
    """Zero-shot accuracy and the pointing game of the shipped weights on the demo test split."""
    from surgery_core.run.facade import Run

    return measure_run(Run.open(RunConfig(), store))


def measure_run(run) -> dict:
    """What the card reports of an opened run (``runs.Run``): zero-shot accuracy, pointing game, mAP."""
    probs = run.grids.probs
    hits = [int(np.argmax(probs[r])) in set(run.dataset.images[i].labels.tolist())
            for r, i in enumerate(run.grids.rows.tolist())]
    q = run.quality().methods
    tables = run.ap_tables()
    return {
        "run_hash": run.run_hash, "test_images": int(len(run.grids.rows)),
        "zero_shot_top1_in_scene": float(np.mean(hits)),
        "pointing_tolerance_px_at_224": run.cfg.pointing_tolerance_px_at_224,
        "pointing_game": {m: q[m].pointing_game["overall"] for m in q},
        "pointing_game_per_class": {m: {c: v["accuracy"] for c, v in q[m].pointing_game["per_class"].items()}
                                    for m in q},
        "energy_pointing_game": {m: q[m].energy_pointing_game["overall"] for m in q},
        "map_voc07_present": {m: tables.entry(m, PRESENT.name, "voc07").map_per_iou for m in tables.methods},
    }


def method_section(meas: dict) -> list[str]:
    """Markdown: every method's pointing game, mAP@0.05 and @0.5 and cost, then which localises best."""
    from surgery_core.model.methods import METHODS, SEED_METHODS

    pg, mp, cost = meas["pointing_game"], meas["map_voc07_present"], meas["cost_x_encode_image"]
    demo, b16 = cost["demo"], cost["ViT-B-16"]
    at = {t: {m: mp[m].get(t) for m in mp} for t in ("0.05", "0.5")}
    lines = ["", "## Every method side by side", "",
             "Pointing game (present classes), mAP (VOC07, present protocol, percentile 90) at IoU 0.05 and 0.5, "
             "and the cost of one pass of the tower computing that method alone, in matrix-product FLOPs as a "
             f"multiple of `encode_image` (counted, not timed: demo model {demo['encode_image_gflops']:.3f} GFLOP "
             f"per image; ViT-B/16 at 224 px {b16['encode_image_gflops']:.1f} GFLOP, surgery depth 6). "
             "`benchmarks/bench_methods.py` times it on a given machine.", "",
             "| method | pointing game | mAP@0.05 | mAP@0.5 | cost, demo | cost, ViT-B/16 | source |",
             "|---|---|---|---|---|---|---|"]
    for m in pg:
        vals = [pg[m], at["0.05"][m], at["0.5"][m]]
        lines.append(f"| {m} | " + " | ".join("n/a" if v is None else f"{v:.3f}" for v in vals)
                     + f" | {demo[m]:.2f}x | {b16[m]:.2f}x | {METHODS[m].source} |")
    best = {name: max((m for m in vals if vals[m] is not None), key=lambda m: vals[m])
            for name, vals in (("pointing game", pg), ("mAP@0.05", at["0.05"]), ("mAP@0.5", at["0.5"]))}
    lines += ["", "**Which localises best here.** " + "; ".join(
        f"{name}: `{m}` ({({'pointing game': pg, 'mAP@0.05': at['0.05'], 'mAP@0.5': at['0.5']}[name])[m]:.3f})"
        for name, m in best.items()) + ". Of the six methods added to the seed's four: " + "; ".join(
        f"{name} `{m}` ({vals[m]:.3f})" for name, vals in (("pointing game", pg), ("mAP@0.05", at["0.05"]),
                                                          ("mAP@0.5", at["0.5"]))
        for m in [max((m for m in vals if m not in SEED_METHODS and vals[m] is not None), key=lambda m: vals[m])])
        + ". "
        f"One pass computing all {len(pg)} methods costs {demo['all']:.2f}x `encode_image` on the demo model "
        f"({demo['all'] / demo['seed four']:.2f}x the seed's four), {b16['all']:.2f}x on ViT-B/16 "
        f"({b16['all'] / b16['seed four']:.2f}x the seed's four, {b16['seed four']:.2f}x). These are "
        "synthetic scenes read by a 4-block demo model (the surgery depth covers its whole tower): a ranking "
        "here says how the methods behave on this toy world, not on DIOR."]
    return lines


def method_costs(demo_visual, size: int, depth: int) -> dict:
    """Matrix-product FLOPs per image of one pass computing each method alone, the seed's four, all methods,
    and vanilla ``encode_image``, as multiples of ``encode_image``: for the demo model and for a ViT-B/16 at
    224 px (random weights: FLOPs do not depend on them). Counted, not timed: the same on any machine."""
    from surgery_core.model.heatmaps import pass_flops
    from surgery_core.model.loading import load_model
    from surgery_core.model.methods import DEFAULT_METHODS, SEED_METHODS

    cases = {**{m: (m,) for m in DEFAULT_METHODS}, "seed four": SEED_METHODS, "all": DEFAULT_METHODS}
    out = {}
    for label, visual, px in (("demo", demo_visual, size), ("ViT-B-16", load_model("ViT-B-16").model.visual, 224)):
        base = pass_flops(visual, None, px, depth)
        out[label] = {"encode_image_gflops": base / 1e9,
                      **{k: pass_flops(visual, ms, px, depth) / base for k, ms in cases.items()}}
    return out


def write_model_card(store=None) -> Path:
    log = json.loads(LOG.read_text())
    loss_curve_png(log["loss_every_step"], CURVE)
    meas = measure(store)
    from surgery_core.run.engine import resolve_model

    loaded = resolve_model(RunConfig(), "cpu")
    meas["cost_x_encode_image"] = method_costs(loaded.model.visual, loaded.image_size, RunConfig().surgery_depth)
    cfg = json.loads((CONFIG_DIR / f"{DEMO_ARCH}.json").read_text())
    pg = meas["pointing_game"]
    vis = cfg["vision_cfg"]
    grid = vis["image_size"] // vis["patch_size"]
    lines = [
        f"# Model card: `{DEMO_ARCH}` (the embedded demo CLIP)", "",
        "A small open_clip CLIP trained from scratch, contrastively, on synthetic top-down scenes and their "
        "captions only (no boxes, no masks). It exists so that the dashboard, the CLI and the tests have a model "
        "whose heatmaps mean something on a machine with no download. **It has never seen a real image**: on "
        "real imagery (DIOR) its heatmaps are noise.", "",
        "## Architecture", "", "```json", json.dumps(cfg, indent=2), "```", "",
        f"Vision: ViT, {vis['image_size']} px input, {vis['patch_size']} px patches (a {grid}x{grid} grid"
        + (", like RemoteCLIP ViT-B/32" if grid == 7 else "") + "). Weights: "
        f"`{DEMO_WEIGHTS.name}` (safetensors, fp16, {DEMO_WEIGHTS.stat().st_size / 1e6:.1f} MB).", "",
        "## Training", "",
        f"- Data: {log['scenes']} scenes rendered by `surgery_core.demo.scenes.render_scene` (generator "
        f"v{log.get('generator_version', 1)}) with RNG (seed "
        f"{log['seed']}, i), {log['scene_size']} px, {log['augmentation']}.",
        f"- {log['steps']} steps of batch {log['batch']}, {log['optimizer']}, lr {log['lr']} with "
        f"{log['schedule']} ({log['warmup_steps']} warm-up steps), learnable temperature.",
        f"- Wall time {log['wall_seconds'] / 60:.1f} min on {log['device']} with {log['torch_threads']} torch threads "
        f"(scene rendering {log['render_seconds']:.0f} s), torch {log['torch']}.",
        f"- Final loss (mean of the last 50 steps): {np.mean(log['loss_every_step'][-50:]):.3f}. "
        f"Curve: `{CURVE.name}`.",
        f"- Reproduce: `surgery demo train` (writes these weights and `training_log.json`), then "
        f"`surgery demo card` (this file).", "",
        f"## Measured on the demo test split (seed {DEMO_DATA_SEED}, never used in training; "
        f"{meas['test_images']} scenes; run `{meas['run_hash']}`)", "",
        f"- Zero-shot class from CLS (top-1 class is present in the scene): {meas['zero_shot_top1_in_scene']:.3f}",
        f"- Pointing game (heatmap maximum inside a box of the class, {meas['pointing_tolerance_px_at_224']:g} px "
        "tolerance at 224; present classes): "
        + ", ".join(f"{m} {v:.3f}" for m, v in pg.items()),
        "- Energy pointing game: " + ", ".join(f"{m} {v:.3f}" for m, v in meas["energy_pointing_game"].items()),
        "", "| class | " + " | ".join(pg) + " |", "|---|" + "---|" * len(pg),
    ]
    for c in meas["pointing_game_per_class"]["standard"]:
        lines.append(f"| {c} | " + " | ".join(f"{meas['pointing_game_per_class'][m].get(c, float('nan')):.2f}"
                                            for m in pg) + " |")
    lines += ["", "mAP (VOC07, present protocol, percentile 90) per IoU:", ""]
    for m, v in meas["map_voc07_present"].items():
        lines.append(f"- {m}: " + ", ".join(f"@{k} {x:.3f}" for k, x in v.items() if x is not None))
    lines += method_section(meas)
    lines += ["", f"The data: `{DEMO_DATA_COUNT}` scenes generated with seed {DEMO_DATA_SEED} (60/20/20 split); "
              "the test split is what `surgery evaluate` and the dashboard use by default.", ""]
    CARD.write_text("\n".join(lines))
    (WEIGHTS_DIR / "measured.json").write_text(json.dumps(meas, indent=1))
    return CARD
