"""What a model identity (``LoadedModel.identity``, the ``model`` of ``run.json`` and of snapshots) says about the
weights, in one place: every product of a run (stderr, result JSON, reports, figures, the dashboard, snapshots,
the runs table) reads the fact "random weights" from here, never from a command-line flag. Torch-free."""

from __future__ import annotations

#: The words every product of a random-weights run shows (banner, report warning, stderr).
RANDOM_WEIGHTS_NOTE = ("RANDOM WEIGHTS: no checkpoint was loaded, the model was never trained, so its heatmaps, "
                       "boxes and every number of this run mean nothing (for trying the tool only); "
                       "no method is marked best")
#: The short form for figure titles, captions and table cells.
RANDOM_WEIGHTS_LABEL = "random weights"


def is_random_weights(identity: dict | None) -> bool:
    """Whether a model identity is random weights: no checkpoint content was loaded (the shipped demo weights
    and any ``--checkpoint`` have a content hash; only ``random_weights=True`` leaves it None)."""
    return bool(identity) and identity.get("checkpoint_sha256") is None
