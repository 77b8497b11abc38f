"""Image decoding (hardened) and the squash preprocessing used for heatmaps.

Every image becomes uint8 RGB ``[H, W, 3]``: grayscale is replicated, alpha dropped, 16-bit scaled to 8-bit,
palettes expanded. Truncated files, undecodable bytes and images beyond ``MAX_IMAGE_PIXELS`` raise
ImageError naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from surgery_core.errors import ImageError

# A DIOR scene is 0.64 MP; 100 MP is far beyond any real scene and keeps a decompression bomb harmless.
MAX_IMAGE_PIXELS = 100_000_000

cv2.setNumThreads(1)  # decoding runs in data-loader workers; one thread each avoids oversubscription


def _check_complete(data: bytes, path: Path) -> None:
    # cv2 decodes a truncated JPEG or PNG silently (grey fill); the end markers tell truncation apart.
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise ImageError(path, "truncated JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise ImageError(path, "truncated PNG (no IEND chunk)")


def check_image_bytes(data: bytes, path: str | Path = "<bytes>") -> tuple[int, int]:
    """``(width, height)`` from the header, after the checks every decoder needs: not empty, not truncated,
    a readable header, not a decompression bomb. ImageError naming ``path`` otherwise."""
    path = Path(path)
    if not data:
        raise ImageError(path, "empty file")
    _check_complete(data, path)
    try:
        import io
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only
            w, h = probe.size
    except Image.DecompressionBombError:
        raise ImageError(path, "image header claims far more pixels than any scene (decompression-bomb guard)") \
            from None
    except UnidentifiedImageError:  # its text names an in-memory buffer, which means nothing to a user
        raise ImageError(path, "not a readable image (no known image format)") from None
    except Exception as exc:  # PIL raises many types for unreadable headers
        why = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the data", str(exc))  # no memory addresses
        raise ImageError(path, f"not a readable image ({type(exc).__name__}: {why[:120]})") from None
    if w * h > MAX_IMAGE_PIXELS:
        raise ImageError(path, f"image is {w}x{h} = {w * h / 1e6:.0f} MP, above the {MAX_IMAGE_PIXELS / 1e6:.0f} MP "
                               "limit (decompression-bomb guard)")
    return w, h


def decode_image(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode image bytes to uint8 RGB ``[H, W, 3]``; ImageError naming ``path`` when impossible."""
    path = Path(path)
    check_image_bytes(data, path)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(path, "corrupt or unsupported image data")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    raise ImageError(path, f"unsupported channel count {img.shape[2]}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file to uint8 RGB ``[H, W, 3]``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(path, f"cannot read ({exc.strerror or exc})") from None
    return decode_image(data, path)


def squash(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the whole image to ``size x size`` (no centre crop: heatmaps cover the whole scene), bicubic."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)


def to_tensor(image: np.ndarray, mean, std) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` -> float32 ``[3, H, W]`` normalised with CLIP's mean and std."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
