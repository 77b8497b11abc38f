"""The runs of a run store as a list: what each computed, its label and note, its size, and its headline numbers.

Everything here reads the files a run already wrote into its folder (``runs/<run hash>-<key>/``: ``run.json``,
``ap_tables.json``, ``quality.json``, and ``label.json`` for the label and note); nothing opens a model, a
dataset or a grid, so listing a store computes nothing. :func:`compute_missing` is the one function that does,
and only when asked (the Runs page's button, ``surgery runs --compute``).

Deleting is safe while other processes read the store: the run folder is first renamed to a tombstone
(``runs/.deleted-<name>-<token>``, one atomic ``os.replace``), then removed. A reader checks that the folder is
still the same one (same inode) after reading its files, so it sees the run whole or not at all, never half
removed. Listings skip names starting with a dot (tombstones, temporary files).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from surgery_core.errors import SurgeryError
from surgery_core.eval.protocols import OPEN, PRESENT
from surgery_core.files import write_json
from surgery_core.run.store import RunStore

LABEL_FILE = "label.json"
TOMBSTONE = ".deleted-"
#: The products whose numbers the leaderboard shows, and their files (the names of ``Run.PRODUCT_FILES``).
HEADLINE_PRODUCTS = {"ap_tables": "ap_tables.json", "quality": "quality.json", "corloc": "corloc.json"}
NOT_COMPUTED = "not computed"
MAX_LABEL = 200
MAX_NOTE = 2000


@dataclass(frozen=True)
class Headline:
    """One headline column: what it reads from which product, and how the page and the CLI name it."""

    key: str  # column name
    product: str  # ap_tables | quality | corloc
    protocol: str | None = None
    interp: str | None = None
    iou: str | None = None  # an iou_key ("0.5"), or None for COCO's .50:.95
    game: str | None = None  # pointing_game | energy_pointing_game
    doc: str = ""


HEADLINES: tuple[Headline, ...] = (
    Headline("VOC07@0.5 present", "ap_tables", PRESENT.name, "voc07", "0.5",
             doc="mAP, VOC2007 11-point, IoU >= 0.5, present protocol, boxes at the run's percentile"),
    Headline("VOC07@0.1 present", "ap_tables", PRESENT.name, "voc07", "0.1",
             doc="mAP, VOC2007 11-point, IoU >= 0.1, present protocol, boxes at the run's percentile"),
    Headline("VOC07@0.5 open", "ap_tables", OPEN.name, "voc07", "0.5",
             doc="mAP, VOC2007 11-point, IoU >= 0.5, open protocol, boxes at the run's percentile"),
    Headline("VOC07@0.1 open", "ap_tables", OPEN.name, "voc07", "0.1",
             doc="mAP, VOC2007 11-point, IoU >= 0.1, open protocol, boxes at the run's percentile"),
    Headline("COCO .50:.95 present", "ap_tables", PRESENT.name, "coco", None,
             doc="COCO AP@[.50:.95] (faster-coco-eval, 101-point), present protocol"),
    Headline("COCO .50:.95 open", "ap_tables", OPEN.name, "coco", None,
             doc="COCO AP@[.50:.95] (faster-coco-eval, 101-point), open protocol"),
    Headline("CorLoc@0.5 present", "corloc", PRESENT.name, iou="0.5",
             doc="CorLoc at IoU >= 0.5, present protocol: share of the images of a class whose top-scored box of "
                 "the class hits a GT box, mean over classes (the run's box rule)"),
    Headline("pointing game", "quality", game="pointing_game",
             doc="pointing-game accuracy over all (image, GT class) pairs"),
    Headline("energy PG", "quality", game="energy_pointing_game",
             doc="energy pointing game: mean share of the map's mass inside the class's GT boxes, over all pairs"),
)


@dataclass
class StoredRun:
    """One run folder of the store, as its files describe it (nothing computed)."""

    folder: Path
    record: dict  # run.json
    label: str = ""
    note: str = ""
    products: dict[str, bool] = field(default_factory=dict)  # HEADLINE_PRODUCTS -> file present
    values: dict[str, dict] = field(default_factory=dict)  # product -> {method: {headline: value}} (when present)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def run_hash(self) -> str:
        return str(self.record.get("run_hash") or self.name.split("-")[0])

    @property
    def config(self) -> dict:
        return self.record.get("config") or {}

    @property
    def methods(self) -> list[str]:
        return list(self.config.get("methods") or [])

    @property
    def finished(self) -> str:
        return str(self.record.get("finished") or "")

    @property
    def random_weights(self) -> bool:
        """Whether the run's model had random weights: what ``run.json`` says, else no checkpoint content."""
        if "random_weights" in self.record:
            return bool(self.record["random_weights"])
        model = self.record.get("model") or {}
        return model.get("checkpoint_sha256") is None and not self.config.get("model", {}).get("checkpoint")

    def title(self) -> str:
        """How the run is named wherever its hash is shown: ``<hash> · <label>``, or the hash alone."""
        return f"{self.run_hash} · {self.label}" if self.label else self.run_hash

    def facts(self) -> dict:
        """The run's identifying facts, one flat dict (the leaderboard's first columns)."""
        cfg, rec = self.config, self.record
        model, inp, data = cfg.get("model") or {}, cfg.get("input") or {}, cfg.get("data") or {}
        identity = rec.get("model") or {}
        sha = identity.get("checkpoint_sha256") or ""
        ckpt = model.get("checkpoint")
        if self.random_weights:
            weights = "random weights"
        elif model.get("name"):  # a catalog or registered model, by its name
            weights = str(model["name"])
        elif ckpt:
            weights = Path(ckpt).name
        else:
            weights = "shipped weights"
        boxes = cfg.get("boxes") or {}
        return {
            "label": self.label, "run": self.run_hash, "dataset": str(rec.get("dataset") or data.get("kind")),
            "split": str(rec.get("split") or data.get("split")), "images": rec.get("images_with_grids"),
            "arch": str(model.get("arch")) + (" QuickGELU" if model.get("quickgelu") else ""),
            "weights": weights, "sha256": sha[:12] if sha and not self.random_weights else "",
            "input": f"{inp.get('size') or 'own'} px", "window": _window(inp),
            "depth": cfg.get("surgery_depth"), "prompts": cfg.get("prompt_set"), "box rule": box_rule_short(boxes),
        }

    def headline(self, method: str) -> tuple[dict[str, float | None], set[str]]:
        """The headline numbers of one method (:data:`HEADLINES`), read from the run's files, and the columns
        whose product the run has not computed (their values are None)."""
        values: dict[str, float | None] = {}
        missing: set[str] = set()
        for h in HEADLINES:
            by_method = self.values.get(h.product)
            if by_method is None:
                values[h.key] = None
                missing.add(h.key)
                continue
            values[h.key] = (by_method.get(method) or {}).get(h.key)
        return values, missing


def _window(inp: dict) -> str:
    if not inp.get("window"):
        return "none"
    return f"{inp['window']}/{inp.get('stride') or inp['window']} px"


def box_rule_short(boxes: dict) -> str:
    """The box rule in a few words (the full rule is :func:`surgery_core.run.evaluation.describe_boxes`)."""
    rule = boxes.get("rule", "percentile")
    cut = {"otsu": "Otsu", "fixed": f"fixed {float(boxes.get('fixed_value') or 0):g}"}.get(
        rule, f"p{float(boxes.get('percentile', 90)):g}")
    parts = [cut, f"{boxes.get('score', 'mean')}"]
    if boxes.get("class_prob_weight"):
        parts.append("x prob")
    if boxes.get("morph_kernel", 3) != 3:
        parts.append(f"kernel {boxes['morph_kernel']}")
    if boxes.get("min_area"):
        parts.append(f"min area {boxes['min_area']:g}")
    if boxes.get("nms_iou") is not None:
        parts.append(f"NMS {boxes['nms_iou']:g}")
    if boxes.get("refine", "none") != "none":
        parts.append(str(boxes["refine"]).upper())
    if boxes.get("max_dets", 100) != 100:
        parts.append(f"maxDets {boxes.get('max_dets')}")
    return ", ".join(parts)


def _read_headline(doc: dict, h: Headline, method: str) -> float | None:
    """One headline value from a product's JSON (None where the run did not score it or it is undefined)."""
    if h.product == "ap_tables":
        entry = ((doc.get("tables") or {}).get(method) or {}).get(h.protocol, {}).get(h.interp)
        if entry is None:
            return None
        if h.iou is None:
            return entry.get("mAP_50_95")
        return (entry.get("per_iou") or {}).get("mAP_per_iou", {}).get(h.iou)
    if h.product == "corloc":
        entry = ((doc.get("tables") or {}).get(method) or {}).get(h.protocol) or {}
        return (entry.get("CorLoc") or {}).get(h.iou)
    q = (doc.get("methods") or {}).get(method)
    return None if q is None else (q.get(h.game) or {}).get("overall")


# ------------------------------------------------------------------------------------------ reading
def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


#: Headline values of product files already read, by (path, inode, size, mtime): listing the store again reads
#: only the files that changed (a 240 kB ``ap_tables.json`` costs tens of ms to parse). Bounded.
_VALUES_CACHE: dict[tuple, dict] = {}
_VALUES_CACHE_MAX = 4096


def _product_values(path: Path, product: str) -> dict | None:
    """``{method: {headline key: value}}`` of one product file (None when absent or unreadable)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _VALUES_CACHE.get(key)
    if hit is not None:
        return hit
    doc = _read_json(path)
    if doc is None:
        return None
    methods = (doc.get("methods") if product == "quality" else doc.get("tables")) or {}
    out = {m: {h.key: _read_headline(doc, h, m) for h in HEADLINES if h.product == product} for m in methods}
    if len(_VALUES_CACHE) >= _VALUES_CACHE_MAX:
        _VALUES_CACHE.clear()
    _VALUES_CACHE[key] = out
    return out


def read_label(folder: Path) -> tuple[str, str]:
    """(label, note) of a run folder ("" when none)."""
    lab = _read_json(Path(folder) / LABEL_FILE) or {}
    return str(lab.get("label") or ""), str(lab.get("note") or "")


def read_run(folder: Path, products: bool = True) -> StoredRun | None:
    """A run folder as a :class:`StoredRun`; None when it has no readable ``run.json`` or was deleted while it was
    read (its inode changed or it vanished: see the module note). ``products`` False: the product files are not
    read (a listing of names and labels only)."""
    try:
        before = os.stat(folder).st_ino
    except OSError:
        return None
    record = StoredRun(folder, {})
    rec = _read_json(folder / "run.json")
    if rec is None:
        return None
    record.record = rec
    record.label, record.note = read_label(folder)
    for product, name in HEADLINE_PRODUCTS.items() if products else ():
        values = _product_values(folder / name, product)
        record.products[product] = values is not None
        if values is not None:
            record.values[product] = values
    try:
        if os.stat(folder).st_ino != before:
            return None
    except OSError:
        return None
    return record


def list_stored(store: RunStore, products: bool = True) -> list[StoredRun]:
    """Every run of ``store`` (newest first by the time it was last opened); tombstones and unreadable folders
    are left out. ``products`` False: labels and run records only (see :func:`read_run`)."""
    runs = store.root / "runs"
    if not runs.is_dir():
        return []
    out = []
    for d in runs.iterdir():
        if d.name.startswith("."):
            continue
        r = read_run(d, products)
        if r is not None:
            out.append(r)
    return sorted(out, key=lambda r: (r.finished, r.name), reverse=True)


def resolve(store: RunStore, prefix: str, runs: list[StoredRun] | None = None) -> StoredRun:
    """The stored run whose hash (or folder name) starts with ``prefix``; SurgeryError when none or several do."""
    text = str(prefix).strip()
    if not text:
        raise SurgeryError("a run hash (or a unique prefix of one) is needed")
    runs = list_stored(store) if runs is None else runs
    hits = [r for r in runs if r.name.startswith(text) or r.run_hash.startswith(text)]
    if not hits:
        raise SurgeryError(f"no stored run matches {text!r} in {store.root / 'runs'} (see 'surgery runs')")
    if len(hits) > 1:
        names = ", ".join(r.name for r in hits[:6]) + (" …" if len(hits) > 6 else "")
        raise SurgeryError(f"{text!r} matches {len(hits)} stored runs ({names}); give more of the hash")
    return hits[0]


# ------------------------------------------------------------------------------------------ label and delete
def set_label(run: StoredRun, label: str | None = None, note: str | None = None) -> StoredRun:
    """Store the run's label and/or note (None keeps the current one) in ``label.json``, atomically."""
    label = run.label if label is None else _clean(label, MAX_LABEL, "label")
    note = run.note if note is None else _clean(note, MAX_NOTE, "note", lines=True)
    if not run.folder.is_dir():
        raise SurgeryError(f"run {run.run_hash} is no longer in the store (deleted meanwhile)")
    write_json(run.folder / LABEL_FILE, {"label": label, "note": note})
    run.label, run.note = label, note
    return run


def _clean(text: str, max_len: int, what: str, lines: bool = False) -> str:
    """A label or note without control characters (newlines kept in notes); SurgeryError when too long."""
    text = "".join(ch for ch in str(text) if (lines and ch in "\n\t") or (ch.isprintable()))
    text = text.strip()
    if len(text) > max_len:
        raise SurgeryError(f"a run {what} is at most {max_len} characters (this one has {len(text)})")
    return text


def delete_run(store: RunStore, run: StoredRun) -> None:
    """Remove a run folder: renamed to a tombstone first (atomic), then removed (see the module note). The grids
    stay in the store (another run of the same model and input reuses them)."""
    tomb = run.folder.parent / f"{TOMBSTONE}{run.folder.name}-{secrets.token_hex(4)}"
    try:
        os.replace(run.folder, tomb)
    except FileNotFoundError:
        raise SurgeryError(f"run {run.run_hash} is no longer in {store.root / 'runs'} (deleted meanwhile)") from None
    shutil.rmtree(tomb, ignore_errors=True)


def folder_size(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def grid_size(store: RunStore, run: StoredRun) -> int:
    """Bytes of the run's grids (``grids/<heatmap key>/``), shared with every run of the same heatmap key."""
    key = run.record.get("heatmap_key")
    return folder_size(store.root / "grids" / key) if key else 0


# ------------------------------------------------------------------------------------------ computing
def compute_missing(store: RunStore, runs: list[StoredRun], progress: Callable[[int, int, str], None] | None = None,
                    show_bar: bool = False) -> list[str]:
    """Compute the headline products (AP tables, quality, CorLoc) the given runs lack, opening each run from the store
    (its grids are there: no forward pass unless they were removed). ``progress(done, total, what)`` is called
    before each step and once at the end. Returns the hashes of the runs computed."""
    from surgery_core.run.config import RunConfig
    from surgery_core.run.facade import Run

    todo = [(r, p) for r in runs for p, ok in r.products.items() if not ok]
    done_runs: list[str] = []
    opened: dict[str, object] = {}
    for k, (r, product) in enumerate(todo):
        if progress:
            progress(k, len(todo), f"run {r.run_hash}: {product.replace('_', ' ')}")
        if r.name not in opened:  # each run opened once, whatever it lacks
            opened = {r.name: Run.open(RunConfig.model_validate(r.config), store, show_bar=show_bar,
                                       random_weights=r.random_weights)}
        getattr(opened[r.name], product)()
        if r.run_hash not in done_runs:
            done_runs.append(r.run_hash)
    if progress:
        progress(len(todo), len(todo), "done")
    return done_runs


def open_stored(store: RunStore, run: StoredRun, show_bar: bool = False):
    """The :class:`~surgery_core.run.facade.Run` of a stored run, opened from the store (its grids are there)."""
    from surgery_core.run.config import RunConfig
    from surgery_core.run.facade import Run

    return Run.open(RunConfig.model_validate(run.config), store, show_bar=show_bar, random_weights=run.random_weights)


def leaderboard(store: RunStore, runs: list[StoredRun] | None = None, sizes: bool = True) -> list[dict]:
    """One row per (run, method), newest run first: :meth:`StoredRun.facts`, the method, the headline numbers
    (:data:`HEADLINES`, None where not computed or undefined), ``not computed`` (the products the run lacks,
    comma-separated, "" when none) and, with ``sizes``, the run folder's and its grids' bytes on disk."""
    runs = list_stored(store) if runs is None else runs
    grid_bytes: dict[str, int] = {}
    rows = []
    for r in runs:
        extra = {}
        if sizes:
            key = r.record.get("heatmap_key") or ""
            if key not in grid_bytes:
                grid_bytes[key] = grid_size(store, r)
            extra = {"run MB": folder_size(r.folder) / 1e6, "grids MB": grid_bytes[key] / 1e6}
        missing = ", ".join(p.replace("_", " ") for p, ok in r.products.items() if not ok)
        for m in r.methods:
            values, _ = r.headline(m)
            rows.append(r.facts() | {"method": m} | values | {NOT_COMPUTED: missing} | extra
                        | {"note": r.note, "finished": r.finished, "folder": r.name})
    return rows
