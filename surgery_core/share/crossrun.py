"""Runs side by side: which model, method and setting localises best, compared honestly.

A comparison takes 2 to 4 (run, method) pairs. Runs are compared on the images they share (an image is the same
in two runs when its id and its size are; only images with heatmaps in every run count), and every table says
how many that is. The per-class table needs the same ground truth: when a shared image's boxes or the class sets
differ (another annotation folder, another class list), :func:`pair_runs` names the first difference and the
table is refused; the pictures are still drawn.

Per-class AP is computed on the shared images only, with each run's own cached boxes (each run's box rule and
percentile: they are among the settings compared) and the same AP code as the run's own pages, so when two runs
share all their images each column equals that run's Per-class AP page. Pictures are drawn exactly as the
dashboard's Compare page draws one run's methods (:func:`surgery_core.run.pairs.panel`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from surgery_core.errors import SurgeryError
from surgery_core.eval.ap import evaluate
from surgery_core.eval.boxes import cut_short
from surgery_core.eval.protocols import PRESENT, Cell, ProtocolLike

if TYPE_CHECKING:
    import pandas as pd

    from surgery_core.run.facade import Run

MIN_PAIRS, MAX_PAIRS = 2, 4
SWEEP_INTERPS = ("voc07", "voc")  # the interpolations a run's sweep keeps


@dataclass(frozen=True)
class Pair:
    """One side of a comparison: a run, one of its methods, and the name its column carries."""

    run: "Run"
    method: str
    label: str = ""

    @property
    def name(self) -> str:
        return f"{self.label or self.run.run_hash} · {self.method}"


@dataclass
class Pairing:
    """The images the runs share: ``ids`` (image ids, in the first run's order) and per run the dataset index of
    each (``index[r][j]``); ``gt_problem`` names the first ground-truth difference (None: the same GT)."""

    ids: list[str]
    index: list[np.ndarray]
    gt_problem: str | None = None
    counts: list[int] = field(default_factory=list)  # images with heatmaps per run

    @property
    def n(self) -> int:
        return len(self.ids)

    def summary(self) -> str:
        """``"compared on 12 shared images (run A 12, run B 40 images with heatmaps)"``."""
        return f"compared on {self.n} shared image{'s' * (self.n != 1)}"


def _image_keys(run: "Run") -> dict[tuple[str, int, int], int]:
    recs = run.dataset.images
    return {(recs[i].image_id, recs[i].width, recs[i].height): i for i in run.grids.rows.tolist()}


def pair_runs(runs: list["Run"], names: list[str] | None = None) -> Pairing:
    """The images every run has heatmaps for, and the first ground-truth difference among them."""
    names = names or [r.run_hash for r in runs]
    keys = [_image_keys(r) for r in runs]
    shared = [k for k in keys[0] if all(k in other for other in keys[1:])]
    index = [np.asarray([kk[k] for k in shared], np.int64) for kk in keys]
    problem = gt_difference(runs, index, names)
    return Pairing([k[0] for k in shared], index, problem, [len(k) for k in keys])


def _gt_of(run: "Run", i: int) -> list[tuple[str, tuple[float, ...]]]:
    rec = run.dataset.images[i]
    return sorted((run.classes[int(c)], tuple(float(v) for v in b)) for b, c in zip(rec.xyxy, rec.labels))


def gt_difference(runs: list["Run"], index: list[np.ndarray], names: list[str]) -> str | None:
    """The first difference in ground truth between the first run and another, in words; None when every shared
    image has the same boxes of the same classes and the class sets are equal."""
    a = runs[0]
    for r, name in zip(runs[1:], names[1:]):
        only_a = [c for c in a.classes if c not in r.classes]
        only_r = [c for c in r.classes if c not in a.classes]
        if only_a or only_r:
            return (f"the class lists differ: run {names[0]} has {', '.join(only_a[:3]) or 'no other class'}"
                    f"{' …' if len(only_a) > 3 else ''} that run {name} lacks, run {name} has "
                    f"{', '.join(only_r[:3]) or 'no other class'}{' …' if len(only_r) > 3 else ''}")
    for j in range(len(index[0])):
        ga = _gt_of(a, int(index[0][j]))
        for r, name, idx in zip(runs[1:], names[1:], index[1:]):
            gr = _gt_of(r, int(idx[j]))
            if ga == gr:
                continue
            image = a.dataset.images[int(index[0][j])].image_id
            if len(ga) != len(gr):
                return (f"image {image}: run {names[0]} has {len(ga)} GT boxes, run {name} has {len(gr)} "
                        "(another annotation folder?)")
            k = next(k for k in range(len(ga)) if ga[k] != gr[k])
            return (f"image {image}: GT box {k + 1} is {ga[k][0]} {_box(ga[k][1])} in run {names[0]} but "
                    f"{gr[k][0]} {_box(gr[k][1])} in run {name}")
    return None


def _box(b) -> str:
    return "[" + ", ".join(f"{v:g}" for v in b) + "]"


def check_pairs(pairs: list[Pair]) -> None:
    if not MIN_PAIRS <= len(pairs) <= MAX_PAIRS:
        raise SurgeryError(f"compare {MIN_PAIRS} to {MAX_PAIRS} (run, method) pairs, not {len(pairs)}")
    for p in pairs:
        if p.method not in p.run.cfg.methods:
            raise SurgeryError(f"run {p.run.run_hash} has no method {p.method!r}; its methods: "
                               f"{', '.join(p.run.cfg.methods)}")


# ------------------------------------------------------------------------------------------ per-class table
def _relabel(d, remap: np.ndarray):
    """Detections with class ids mapped into the first run's class order (a no-op when the orders agree)."""
    return dataclasses.replace(d, class_id=remap[d.class_id])


def shared_ap(pair: Pair, idx: np.ndarray, classes: tuple[str, ...], protocol: str, interp: str, iou: float):
    """AP of one pair on the shared images ``idx`` (its dataset indices), classes in the order of ``classes``,
    with the run's own cached boxes at its own box rule (an :class:`~surgery_core.eval.ap.APResult`)."""
    run = pair.run
    remap = np.asarray([classes.index(c) for c in run.classes], np.int64)
    gt = run.gt[np.isin(run.gt.image, idx)]
    run.boxes.ensure([pair.method], [protocol], [run.cfg.boxes.cut])
    det = run.detections(pair.method, protocol, run.cfg.boxes.cut)
    det = det[np.isin(det.image, idx)]
    return evaluate(_relabel(gt, remap), _relabel(det, remap), len(classes), float(iou), interp)


def compare_table(pairs: list[Pair], pairing: Pairing, protocol: str, interp: str, iou: float) -> "pd.DataFrame":
    """Per-class AP of each pair on the shared images, then the difference of each later pair to the first
    (``Δ <name>``); an ``mAP`` row last. SurgeryError when the ground truth differs (:attr:`Pairing.gt_problem`)."""
    import pandas as pd

    check_pairs(pairs)
    if pairing.gt_problem:
        raise SurgeryError(f"no per-class table: the ground truth differs ({pairing.gt_problem})")
    if not pairing.n:
        raise SurgeryError("no per-class table: the runs share no image")
    classes = pairs[0].run.classes
    runs = distinct_runs(pairs)
    res = [shared_ap(p, pairing.index[runs.index(p.run)], classes, protocol, interp, iou) for p in pairs]
    names = unique_names(pairs)
    df = pd.DataFrame({"class": list(classes), "GT": res[0].n_gt.astype(int)})
    for n, r in zip(names, res):
        df[n] = r.per_class_ap
    df = df[df["GT"] > 0].reset_index(drop=True)
    row = {"class": "mAP", "GT": int(res[0].n_gt.sum())} | {n: r.mAP for n, r in zip(names, res)}
    df = pd.concat([df, pd.DataFrame([row])], ignore_index=True)
    for n in names[1:]:
        df[f"Δ {n}"] = df[n] - df[names[0]]
    return df


def unique_names(pairs: list[Pair]) -> list[str]:
    names, seen = [], {}
    for p in pairs:
        n = p.name
        seen[n] = seen.get(n, 0) + 1
        names.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return names


def distinct_runs(pairs: list[Pair]) -> list["Run"]:
    """The runs of ``pairs``, each once, in order (what :func:`pair_runs` takes)."""
    return list(dict.fromkeys(p.run for p in pairs))


def pairing_for(pairs: list[Pair]) -> Pairing:
    runs = distinct_runs(pairs)
    names = [next(p.label or p.run.run_hash for p in pairs if p.run is r) for r in runs]
    if len(runs) == 1:  # one run, several methods: every image with heatmaps is shared
        rows = runs[0].grids.rows
        return Pairing([runs[0].dataset.images[i].image_id for i in rows.tolist()], [rows.astype(np.int64)],
                       None, [len(rows)])
    return pair_runs(runs, names)


def _flatten(doc: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


#: Configuration keys that change no number of a given method (which methods run, how many figures are drawn).
NUMBER_NEUTRAL = ("methods", "figure_samples")


def differences(runs: list["Run"]) -> list[tuple[str, list]]:
    """The configuration keys whose values differ between the runs (``("surgery_depth", [6, 2])``), and the
    checkpoint's content when it does: what a comparison of these runs is a comparison of."""
    import json

    flat = [_flatten(r.cfg.to_file_dict()) | {"checkpoint sha256": (r.model_identity.get("checkpoint_sha256")
                                                                     or "none")[:12]} for r in runs]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if k not in NUMBER_NEUTRAL]
    return [(k, [f.get(k) for f in flat]) for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1]


def differences_text(runs: list["Run"]) -> str:
    """``surgery_depth 6 / 2; boxes.percentile 90 / 75`` (or "none: the same configuration")."""
    def shown(v):
        if isinstance(v, (list, tuple)):
            return ",".join(map(str, v)) if len(v) <= 4 else f"{len(v)} values"
        return "—" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))

    diff = differences(runs)
    return "; ".join(f"{k} {' / '.join(shown(v) for v in vs)}" for k, vs in diff) or "none: the same configuration"


def common_options(pairs: list[Pair]) -> dict[str, list]:
    """Protocols, interpolations and IoU thresholds every run of ``pairs`` scores (first run's order)."""
    runs = distinct_runs(pairs)
    first = runs[0].cfg
    return {"protocols": [p for p in first.protocols if all(p in r.cfg.protocols for r in runs)],
            "interps": [i for i in first.interps if all(i in r.cfg.interps for r in runs)],
            "ious": [float(t) for t in first.iou_thresholds if all(t in r.cfg.iou_thresholds for r in runs)]}


# ------------------------------------------------------------------------------------------ sweep
def sweep_series(pair: Pair, idx: np.ndarray, classes: tuple[str, ...], protocol: str, interp: str, iou: float
                 ) -> tuple[list[float], list[float | None]]:
    """mAP against the box percentile (the run's sweep percentiles) at IoU ``iou`` on the shared images: from the
    run's stored sweep when the shared images are all of the run's and ``iou`` is one of its thresholds, else
    evaluated on the shared images from the run's cached boxes (the same numbers when both apply)."""
    run = pair.run
    interp = interp if interp in SWEEP_INTERPS else SWEEP_INTERPS[0]
    ps = [float(p) for p in run.cfg.sweep_percentiles]
    if len(idx) == len(run.grids.rows) and float(iou) in [float(t) for t in run.cfg.iou_thresholds]:
        cell = run.sweep_part(pair.method, protocol)[interp]
        t = [float(x) for x in run.cfg.iou_thresholds].index(float(iou))
        return ps, [row[t] for row in cell.map]
    run.boxes.ensure([pair.method], [protocol], ps)
    remap = np.asarray([classes.index(c) for c in run.classes], np.int64)
    gt = _relabel(run.gt[np.isin(run.gt.image, idx)], remap)
    out = []
    for p in ps:
        det = run.detections(pair.method, protocol, p)
        det = _relabel(det[np.isin(det.image, idx)], remap)
        m = evaluate(gt, det, len(classes), float(iou), interp).mAP
        out.append(None if m != m else float(m))
    return ps, out


# ------------------------------------------------------------------------------------------ pictures
def cross_figure(pairs: list[Pair], pairing: Pairing, image_id: str, class_name: str, iou: float,
                 protocol: ProtocolLike = PRESENT) -> np.ndarray:
    """One shared image with each pair's heatmap, boxes and pointing point side by side (as Compare draws one
    run's methods), each pair at its run's own box rule; one colour scale."""
    from surgery_core.run import pairs as run_pairs
    from surgery_core.share.drawing import comparison, det_labels

    j = pairing.ids.index(image_id)
    runs = distinct_runs(pairs)
    first = pairs[0].run
    i0 = int(pairing.index[0][j])
    rec = first.dataset.images[i0]
    c0 = first.classes.index(class_name)
    sel = rec.labels == c0
    panels = []
    for p, n in zip(pairs, unique_names(pairs)):
        r = p.run
        i = int(pairing.index[runs.index(r)][j])
        c = r.classes.index(class_name)
        cut = r.cfg.boxes.cut
        pn = run_pairs.panel(r, Cell.of(p.method, protocol, cut), i, c, iou)
        d = pn.det
        hit = "" if pn.pointing_hit is None else (", pointing hit" if pn.pointing_hit else ", pointing miss")
        panels.append({"title": f"{n} ({cut_short(cut)}): {len(d)} box{'es' if len(d) != 1 else ''}, "
                                f"{int(d.extra['tp'].sum())} TP{hit}",
                       "map01": pn.map01, "det_xyxy": d.xyxy,
                       "labels": det_labels(d.score, d.extra["iou"], d.extra["tp"], compact=False),
                       "point": pn.point, "hit": pn.pointing_hit})
    heading = (f"Image {rec.image_id}, class '{class_name}' ({int(sel.sum())} GT): {len(pairs)} (run, method) pairs, "
               f"boxes at each run's box rule, {protocol} protocol; TP/FP at IoU >= {iou:g}; {pairing.summary()}")
    return comparison(first.image(i0), rec.xyxy[sel], rec.xyxy[~sel], f"{rec.image_id}: GT {class_name} green",
                      panels, heading, scale_ticks=[(1.0, "1 = map max"), (0.5, "0.5"), (0.0, "0 = map min")])


def sample_ids(pairing: Pairing, run: "Run", count: int) -> list[tuple[str, str]]:
    """The first ``count`` shared images with objects and an image file, each with its most frequent class."""
    out = []
    for j, image_id in enumerate(pairing.ids):
        rec = run.dataset.images[int(pairing.index[0][j])]
        if rec.num_objects and rec.path is not None:
            out.append((image_id, run.classes[int(np.bincount(rec.labels).argmax())]))
        if len(out) >= count:
            break
    return out
