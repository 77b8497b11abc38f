"""The threshold sweep scores its cells on several threads: every row is the AP of that cell alone, in order."""

from __future__ import annotations

import numpy as np

from surgery_core.eval.ap import evaluate
from surgery_core.eval.protocols import Cell
from surgery_core.run.evaluation import sweep_table


def test_every_sweep_row_is_its_cells_ap_alone(test_run):
    run = test_run
    cfg = run.cfg
    methods = cfg.methods[:2]
    doc = sweep_table(cfg, run.dataset, run.grids, run.boxes, ("voc07", "voc"), methods=methods)
    assert list(doc.percentiles) == list(cfg.sweep_percentiles)
    for m in methods:
        for proto in cfg.protocols:
            for interp in ("voc07", "voc"):
                cell = doc.table[m][proto][interp]
                for row, p in enumerate(cfg.sweep_percentiles):
                    res = evaluate(run.gt, run.boxes[Cell.of(m, proto, p)], len(run.classes), cfg.iou_thresholds,
                                   interp)
                    want = [None if np.isnan(v) else float(v) for v in res.map_per_iou]
                    assert cell.map[row] == want, (m, proto, interp, p)
                    k = next(k for k in range(len(run.classes)) if res.n_gt[k])
                    assert cell.per_class[run.classes[k]][row] == [None if np.isnan(v) else float(v)
                                                                   for v in res.ap[:, k]]
