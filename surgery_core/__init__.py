"""CLIP Surgery inspection library: data, models, heatmaps, boxes, metrics and a run store.

No Streamlit imports here: the dashboard in ``dashboard/`` is one client of this library, the ``surgery``
command line another.
"""

__version__ = "0.1.0"
