"""Making what a run shares portable: JSON-safe values, file-name-safe slugs, clean titles, absolute paths cut
to base names, and zip files whose bytes depend only on their content.

Both the report bundle and the snapshot store write through these; nothing here needs the engine (numpy only,
imported when a numpy value is met).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same content gives the same bytes
#: Members already compressed, stored as they are (deflating them again spends time and saves nothing).
_PACKED = (".png", ".webp", ".jpg", ".jpeg", ".gz", ".zip")


def jsonable(obj: Any) -> Any:
    """Plain JSON types from numpy scalars/arrays, tuples, paths; NaN and infinities become None."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def plotly_config(name: str) -> dict:
    """The plotly configuration of every chart the project draws (dashboard, HTML reports): the toolbar's camera
    saves the chart as drawn as a PNG at twice the screen resolution, named ``name``; no plotly logo, no
    selection tools (nothing selects) and no zoom steps."""
    return {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d",
                                                             "autoScale2d"],
            "toImageButtonOptions": {"format": "png", "scale": 2, "filename": slug(name, 80, "chart")}}


def dumps(doc: Any) -> str:
    return json.dumps(jsonable(doc), indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)


def slug(text: str, max_len: int = 40, empty: str = "snapshot") -> str:
    """ASCII, lower case, ``[a-z0-9-]`` only: safe in any file name on any system."""
    norm = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii").lower()
    s = re.sub(r"[^a-z0-9]+", "-", norm).strip("-")[:max_len].strip("-")
    return s or empty


def clean_text(text: str, max_len: int) -> str:
    """A title or note without control characters (NUL included), newlines and tabs kept in notes."""
    text = "" if text is None else str(text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return text.strip()[:max_len]


# Absolute POSIX or Windows paths that start a token (after start, space, quote, '(', '=' or ':').
_ABS_PATH = re.compile(r"(?:^|(?<=[\s\"'(=:,\[]))(?:[A-Za-z]:[\\/]|[\\/]|~[\\/])(?:[^\\/\s\"'<>,;)\]]+[\\/])*"
                       r"([^\\/\s\"'<>,;)\]]+)")


def scrub_paths(doc: Any, known: list[str] | tuple[str, ...] = ()) -> Any:
    """``doc`` with every absolute path cut to its base name (``/data/DIOR`` -> ``DIOR``).

    ``known`` are paths replaced first wherever they occur (longest first), the rest is caught by a pattern
    for absolute paths at the start of a token.
    """
    known = sorted({str(k).rstrip("/\\") for k in known if k and os.path.isabs(str(k))}, key=len, reverse=True)
    pats = [(re.compile(re.escape(k) + r"(?=$|[\\/\s\"'<>,;)\]])"), Path(k).name or ".") for k in known if len(k) > 1]

    def one(s: str) -> str:
        for pat, base in pats:
            s = pat.sub(lambda m: base, s)
        return _ABS_PATH.sub(lambda m: m.group(1) or ".", s)

    def walk(o):
        if isinstance(o, str):
            return one(o)
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        return o

    return walk(doc)


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A deterministic zip of ``(name, bytes)`` members: fixed times and modes; already compressed formats stored,
    the rest deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            packed = name.lower().endswith(_PACKED)
            info.compress_type = zipfile.ZIP_STORED if packed else zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()
