"""Cutting boxes from many maps: chunks of (image, class) pairs, worker processes, both protocols from one cut.

The pure cut of one working map is :func:`surgery_core.eval.boxes.cut`; this module runs it over a run's maps
(docs/DESIGN.md section 4) and returns :class:`~surgery_core.data.detections.Detections`:

- :func:`detections_at`: the boxes of many pairs at many cuts, one ``Detections`` per cut;
- :func:`cell_detections`: one method's boxes under several protocols, one ``Detections`` per
  :class:`~surgery_core.eval.protocols.Cell`; the present pairs are among the open ones, so under both protocols
  each map is cut once (only the class-probability factor and the cap differ).

Results are identical, box for box and bit for bit, whatever the number of workers or the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numba import njit

from surgery_core.data.detections import Detections
from surgery_core.eval.boxes import (DEFAULT_SWEEP_PERCENTILES, BoxParams, as_cut, cut_rects, cut_thresholds,
                                     place_boxes)
from surgery_core.eval.maps import image_scale, normalize, working_map
from surgery_core.eval.protocols import Cell, ProtocolLike, protocol
from surgery_core.parallel import resolve_workers, spawn_map


def detections_at(grids: Sequence[np.ndarray], image_sizes: np.ndarray, params: BoxParams,
                  cuts: Sequence = DEFAULT_SWEEP_PERCENTILES, *,
                  pair_image: np.ndarray | None = None, pair_class: np.ndarray | None = None,
                  class_probs: np.ndarray | None = None, image_ids: np.ndarray | None = None,
                  workers: int = 1, chunk_pairs: int | None = None,
                  progress: Callable[[int], None] | None = None, max_dets: int = 0) -> dict:
    """Boxes for many (image, class) pairs at many cuts (percentiles or box rules), one :class:`Detections` per cut.

    grids: per image a raw ``[num_classes, grid_h, grid_w]`` array (a stacked ``[N, C, gh, gw]`` array works).
    image_sizes: ``[N, 2]`` original ``(width, height)`` in pixels. pair_image / pair_class: row into
    ``grids`` and class index of each pair to cut (the present protocol passes the annotated pairs);
    both None means every class of every image (the open protocol). class_probs: ``[N, C]`` image-level
    class probabilities, required when ``params.class_prob_weight``. image_ids: ``[N]`` dataset image
    index stored in ``Detections.image`` (default: the row). workers: processes (1 = in this process,
    0 = one per CPU); results are identical and in the same order whatever the count. Workers are spawned
    (about a second to start; see :mod:`surgery_core.parallel`). chunk_pairs: pairs per task (default:
    about sixteen tasks per worker, so none idles long at the end; 128 to 4096 pairs each).
    Detections come grouped by image (in row order), then in the callers' pair order, then per box.
    progress: called with the number of pairs of each chunk once it is cut (a progress bar's ``update``).
    max_dets: at most this many boxes per image and cut, highest scores first (:mod:`surgery_core.eval.maxdets`,
    ties keep the earlier box; 0 = no cap); applied in the workers, chunks then end on image boundaries, and a map
    is not cut at the cuts where the cap would drop all its boxes (:class:`_CapFloor`: the same boxes).

    >>> grids = np.zeros((1, 2, 3, 3), np.float32); grids[0, :, 1, 1] = 1.0
    >>> got = detections_at(grids, np.array([[30, 30]]), BoxParams(morph_kernel=1, box_resolution=3), [90.0])
    >>> got[90.0].xyxy.tolist(), got[90.0].class_id.tolist()
    ([[10.0, 10.0, 20.0, 20.0], [10.0, 10.0, 20.0, 20.0]], [0, 1])
    """
    return _sweep(grids, image_sizes, params, cuts, pair_image, pair_class, None, class_probs, image_ids,
                  workers, chunk_pairs, progress, max_dets)[0]


def cell_detections(grids: Sequence[np.ndarray], image_sizes: np.ndarray, params: BoxParams, method: str,
                    protocols: Sequence[ProtocolLike], cuts: Sequence, present_pairs: tuple[np.ndarray, np.ndarray],
                    *, class_probs: np.ndarray | None = None, image_ids: np.ndarray | None = None,
                    workers: int = 1, progress: Callable[[int], None] | None = None,
                    max_dets: int = 0) -> dict[Cell, Detections]:
    """One method's boxes under each protocol at each cut, by :class:`Cell`.

    params: the run's box parameters (each protocol applies its own class-probability rule,
    ``Protocol.box_params``). present_pairs: ``(pair_image, pair_class)`` of the annotated pairs, ascending by
    class within each image, for the protocols that cut only those. The other arguments as
    :func:`detections_at`. A protocol of all pairs and one of the annotated pairs are cut together, each map once
    (equal, box for box and bit for bit, to cutting them apart), unless NMS is on (torchvision orders equal scores
    its own way, and weighting by a probability of 0 makes scores equal). progress counts the maps of every
    protocol.
    """
    protos = [protocol(p) for p in protocols]
    out: dict[Cell, Detections] = {}
    everything = next((p for p in protos if p.all_classes), None)
    annotated = next((p for p in protos if not p.all_classes), None)
    common = dict(class_probs=class_probs, image_ids=image_ids, workers=workers, progress=progress,
                  max_dets=max_dets)
    if everything is not None and annotated is not None and params.nms_iou is None:
        main, second = _sweep(grids, image_sizes, everything.box_params(params), cuts, None, None, present_pairs,
                              class_probs, image_ids, workers, None, progress, max_dets,
                              also_weighted=annotated.box_params(params).class_prob_weight)
        for proto, dets in ((everything, main), (annotated, second)):
            out.update({Cell(method, proto, c): d for c, d in dets.items()})
        protos = [p for p in protos if p not in (everything, annotated)]
    for proto in protos:
        pairs = {} if proto.all_classes else dict(pair_image=present_pairs[0], pair_class=present_pairs[1])
        dets = detections_at(grids, image_sizes, proto.box_params(params), cuts, **pairs, **common)
        out.update({Cell(method, proto, c): d for c, d in dets.items()})
    return out


# ------------------------------------------------------------------------------------------- the work

@dataclass(frozen=True)
class _Chunk:
    """One worker's share: rows of the batch and the (row, class) pairs to cut."""

    grids: list[np.ndarray]
    sizes: np.ndarray
    pair_row: np.ndarray
    pair_class: np.ndarray
    pair_prob: np.ndarray
    pair_also: np.ndarray | None = None  # bool per pair: also a pair of the second set (see _sweep)


def _run_chunk(chunk: _Chunk, params: BoxParams, percentiles: tuple[float, ...], max_dets: int = 0,
               also_weighted: bool | None = None) -> list[list[tuple[np.ndarray, ...]]]:
    """Cut every pair of a chunk at every percentile; per set of pairs, per percentile concatenated
    (xyxy, score, class, row): ``[main]``, or ``[main, second]`` when the chunk marks a second set.

    Each pair's map is cut once; the second set's scores are the same raw scores, times the class probability
    when ``also_weighted``. max_dets: cap per image of each set's and percentile's boxes
    (:mod:`surgery_core.eval.maxdets`; 0 = none); the chunk must then hold every pair of its images. Capping
    here, in the worker, keeps uncapped boxes out of the parent; and under a cap, a map of the main set only is
    not cut at the percentiles where none of its boxes could pass it (:class:`_CapFloor`). Each image's grid is
    normalised once for all its classes; without NMS the components of the whole chunk become boxes in one
    vectorised step (:func:`~surgery_core.eval.boxes.place_boxes`, elementwise: the same bits as map by map)."""
    sets = 1 if chunk.pair_also is None else 2
    raw = params.model_copy(update={"class_prob_weight": False}) if sets == 2 else params
    weighted = (params.class_prob_weight, also_weighted)
    res = params.box_resolution
    whole_chunk = params.nms_iou is None  # NMS works map by map
    floor = _CapFloor(len(percentiles), max_dets) if max_dets and whole_chunk else None
    found_of: dict[int, tuple[np.ndarray, ...]] = {}  # per pair with boxes: (index, rect or xyxy, score)
    norm_row, norm, peak = -1, None, None
    sizes, rows = chunk.sizes.tolist(), chunk.pair_row.tolist()
    classes, probs = chunk.pair_class.tolist(), chunk.pair_prob.tolist()
    also = [False] * len(rows) if chunk.pair_also is None else chunk.pair_also.tolist()
    for j in (_likely_first(chunk.pair_row, chunk.pair_prob) if floor is not None else range(len(rows))):
        row, cls, prob = rows[j], classes[j], probs[j]
        if row != norm_row:  # pairs come grouped by image
            norm_row, norm = row, normalize(chunk.grids[row])
            if floor is not None:
                peak = norm.reshape(len(norm), -1).max(axis=1).tolist()
                floor.new_image()
        need = None
        if floor is not None and not also[j]:
            # every box's score is a mean (or max) of working-map values, at most the map's peak: the normalised
            # grid's, up to the bilinear upsampling's rounding (a few float32 ulps; the margin is 1e-5)
            factor = prob if weighted[0] else 1.0  # scores are >= 0: times a negative factor, at most 0
            need = floor.needed(peak[cls] * (1 + 1e-5) * max(factor, 0.0) if factor == factor else factor)
            if need is not None and not len(need):
                continue
        w, h = sizes[row]
        wmap = working_map(norm[cls], w, h, res, normalized=True)
        cuts = percentiles if need is None else tuple(percentiles[i] for i in need)
        found = cut_rects(wmap, cut_thresholds(wmap, cuts), raw)
        if need is not None:
            found = (need[found[0]], *found[1:])
        if not whole_chunk:
            found = place_boxes(*found, *image_scale(w, h, res), raw, prob)[:3]
        if floor is not None:  # the scores the cap ranks: min_area applied, times the probability if weighted
            index, _, score, _ = (place_boxes(*found, *image_scale(w, h, res), raw, prob) if params.min_area > 0
                                  else (found[0], None, found[2] * prob if raw.class_prob_weight else found[2], None))
            floor.add(index, score * prob if sets == 2 and weighted[0] else score)
        if len(found[2]):
            found_of[j] = found
    pair_of = sorted(found_of)  # back in the chunk's pair order
    parts = [found_of[j] for j in pair_of]
    if parts:
        index, boxes, score = (np.concatenate(x) for x in zip(*parts))
        pair = np.repeat(np.asarray(pair_of, np.int64), [len(p[2]) for p in parts])
    else:
        index, boxes, score, pair = (np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    if whole_chunk:  # each box's image's scale, elementwise
        w, h = chunk.sizes[chunk.pair_row[pair]].astype(np.int64).T
        index, boxes, score, kept = place_boxes(index, boxes, score, *image_scale(w, h, res), raw,
                                                chunk.pair_prob[pair])
        pair = pair[kept]
    cls_of, row_of, prob_of = chunk.pair_class[pair], chunk.pair_row[pair], chunk.pair_prob[pair]
    out = []
    for k in range(sets):
        sel = slice(None) if k == 0 else chunk.pair_also[pair]
        sc = score[sel]
        if sets == 2 and weighted[k]:
            sc = sc * prob_of[sel]  # the factor cut() applies, the same bits
        cols = (index[sel], boxes[sel], sc, cls_of[sel].astype(np.int64), row_of[sel].astype(np.int64))
        out.append(_by_percentile(cols, len(percentiles), max_dets))
    return out


def _likely_first(pair_row: np.ndarray, pair_prob: np.ndarray) -> list[int]:
    """The pairs of a chunk image by image (in the chunk's order of images), each image's pairs by descending class
    probability (stable): the maps likely to score highest first, so that the cap's floor rises early."""
    return np.lexsort((-pair_prob, np.cumsum(np.r_[0, np.diff(pair_row) != 0]))).tolist()


class _CapFloor:
    """Under a cap of ``max_dets`` boxes per image and cut: the ``max_dets``-th highest score at each cut among the
    boxes of the image cut so far (``-inf`` while fewer). The cap keeps no box scoring below the final such score,
    which is at least this one; so a map whose boxes all score below the floor at a cut would add nothing kept
    there: it is not cut at that cut (:meth:`needed`), and nothing the cap keeps changes, bit for bit (ties at the
    cap's edge need a score equal to the floor: such a map is cut). NaN scores switch the floor off for the image."""

    def __init__(self, n_cuts: int, max_dets: int):
        self.n, self.k = n_cuts, max_dets
        self.heap = np.empty((n_cuts, max_dets), np.float64)  # per cut, a min-heap of the highest scores so far
        self.count = np.zeros(n_cuts, np.int64)
        self.floor = np.full(n_cuts, -np.inf)

    def new_image(self) -> None:
        self.count[:] = 0
        self.floor[:] = -np.inf
        self.off = False

    def needed(self, bound: float) -> np.ndarray | None:
        """Positions of the cuts at which a map whose scores are at most ``bound`` may add a kept box; None when
        every cut."""
        if self.off:
            return None
        need = np.flatnonzero(~(bound < self.floor))  # a NaN bound needs every cut
        return None if len(need) == self.n else need

    def add(self, index: np.ndarray, score: np.ndarray) -> None:
        """A map's boxes: ``index`` (the cut of each) and its score as the cap ranks it."""
        if np.isnan(score).any():
            self.off = True
        elif len(score):
            _heaps_add(self.heap, self.count, self.floor, np.asarray(index, np.int64),
                       np.asarray(score, np.float64))


@njit(cache=True, nogil=True)
def _heaps_add(heap, count, floor, index, score):  # pragma: no cover - compiled
    """Push each score into its cut's min-heap of at most ``heap.shape[1]`` (the highest so far); a full heap's root
    is the cut's floor."""
    k = heap.shape[1]
    for j in range(index.shape[0]):
        i, s = index[j], score[j]
        n = count[i]
        if n < k:  # sift up
            c = n
            while c > 0 and heap[i, (c - 1) // 2] > s:
                heap[i, c] = heap[i, (c - 1) // 2]
                c = (c - 1) // 2
            heap[i, c] = s
            count[i] = n + 1
            if n + 1 == k:
                floor[i] = heap[i, 0]
        elif s > heap[i, 0]:  # replace the root, sift down
            c = 0
            while True:
                a = 2 * c + 1
                if a >= k:
                    break
                if a + 1 < k and heap[i, a + 1] < heap[i, a]:
                    a += 1
                if heap[i, a] >= s:
                    break
                heap[i, c] = heap[i, a]
                c = a
            heap[i, c] = s
            floor[i] = heap[i, 0]


def _by_percentile(cols: tuple[np.ndarray, ...], n_percentiles: int, max_dets: int) -> list[tuple]:
    """Boxes ``(index, xyxy, score, class, row)`` in pair order into per-percentile columns, capped per image."""
    index, *cols = cols
    # Pairs in chunk order, each pair's boxes grouped by percentile: a stable sort by percentile keeps
    # that order within each percentile.
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(n_percentiles + 1))
    out = [tuple(c[order[bounds[i]:bounds[i + 1]]] for c in cols) for i in range(n_percentiles)]
    if max_dets:
        from surgery_core.eval.maxdets import cap_indices

        for i, c in enumerate(out):
            keep = cap_indices(c[3], c[1], max_dets)
            if keep is not None:
                out[i] = tuple(x[keep] for x in c)
    return out


def _sweep(grids, image_sizes, params, percentiles, pair_image, pair_class, also_pairs, class_probs, image_ids,
           workers, chunk_pairs, progress, max_dets, also_weighted: bool | None = None) -> list[dict]:
    """The body of :func:`detections_at` and :func:`cell_detections`: one dict per set of pairs; a second set
    (``also_pairs``, a subset of the pairs in their order within each image) is cut with the first, its scores
    times the class probability when ``also_weighted``."""
    percentiles = tuple(as_cut(p) for p in percentiles)
    sizes = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
    n_img = len(grids)
    if len(sizes) != n_img:
        raise ValueError(f"{n_img} grids but {len(sizes)} image sizes")
    if (pair_image is None) != (pair_class is None):
        raise ValueError("give both pair_image and pair_class, or neither")
    if pair_image is None:
        n_cls = np.array([np.shape(g)[0] for g in grids], np.int64)
        pair_image = np.repeat(np.arange(n_img), n_cls)
        pair_class = np.concatenate([np.arange(c) for c in n_cls]) if n_img else np.zeros(0, np.int64)
    pair_image = np.asarray(pair_image, np.int64).reshape(-1)
    pair_class = np.asarray(pair_class, np.int64).reshape(-1)
    if len(pair_image) != len(pair_class):
        raise ValueError("pair_image and pair_class differ in length")
    if len(pair_image) and (pair_image.min() < 0 or pair_image.max() >= n_img):
        raise ValueError("pair_image holds a row outside the grids")
    if params.class_prob_weight or also_weighted:
        if class_probs is None:
            raise ValueError("params.class_prob_weight needs class_probs")
        pair_prob = np.asarray(class_probs, np.float64)[pair_image, pair_class]
    else:
        pair_prob = np.ones(len(pair_image), np.float64)
    ids = np.arange(n_img, dtype=np.int64) if image_ids is None else np.asarray(image_ids, np.int64)
    # Pairs run grouped by image so chunks ship few grids; a stable sort keeps the caller's order within.
    order = np.argsort(pair_image, kind="stable")
    pair_image, pair_class, pair_prob = pair_image[order], pair_class[order], pair_prob[order]
    pair_also = None
    if also_pairs is not None:
        also_image, also_class = (np.asarray(a, np.int64).reshape(-1) for a in also_pairs)
        also_order = np.argsort(also_image, kind="stable")
        width = int(max(pair_class.max(initial=0), also_class.max(initial=0))) + 1
        pair_also = np.isin(pair_image * width + pair_class, also_image * width + also_class)
        if not (np.array_equal(pair_image[pair_also], also_image[also_order])
                and np.array_equal(pair_class[pair_also], also_class[also_order])):
            raise ValueError("also_pairs must be distinct pairs of the full set, in its order within each image")

    workers = resolve_workers(workers)
    if chunk_pairs is None:
        chunk_pairs = int(np.clip(-(-len(pair_image) // (16 * workers)), 128, 4096))
    chunk_pairs = max(1, chunk_pairs)
    chunks = []
    bounds = list(range(0, len(pair_image), chunk_pairs)) + [len(pair_image)]
    if max_dets:  # the cap is per image: move each chunk start to the first pair of its image
        bounds = np.unique(np.searchsorted(pair_image, pair_image[bounds[:-1]], side="left").tolist()
                           + [len(pair_image)]).tolist() if len(pair_image) else [0]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        rows = pair_image[start:stop]
        uniq, local = np.unique(rows, return_inverse=True)
        chunks.append((_Chunk([np.asarray(grids[r], np.float32) for r in uniq], sizes[uniq], local,
                               pair_class[start:stop], pair_prob[start:stop],
                               None if pair_also is None else pair_also[start:stop]),
                       uniq))

    def tick(k: int) -> None:
        if progress is not None:
            c = chunks[k][0]
            progress(len(c.pair_class) + (0 if c.pair_also is None else int(c.pair_also.sum())))

    if workers > 1 and len(chunks) > 1:
        results = spawn_map(_run_chunk, [c for c, _ in chunks], [params] * len(chunks),
                            [percentiles] * len(chunks), [max_dets] * len(chunks),
                            [also_weighted] * len(chunks), workers=workers, on_result=tick)
    else:
        results = []
        for k, (c, _) in enumerate(chunks):
            results.append(_run_chunk(c, params, percentiles, max_dets, also_weighted))
            tick(k)

    out: list[dict[float, Detections]] = []
    for si in range(1 if pair_also is None else 2):
        sweep: dict[float, Detections] = {}
        for pi, p in enumerate(percentiles):
            parts = []
            for (chunk, uniq), res in zip(chunks, results):
                xyxy, score, cls, local_row = res[si][pi]
                parts.append(Detections(xyxy, score, cls, ids[uniq[local_row]]))
            sweep[p] = Detections.concat(parts)
        out.append(sweep)
    return out
