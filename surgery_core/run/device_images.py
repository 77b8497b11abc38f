"""Image batches decoded, squashed and normalised on the GPU, the next batch prepared while the current runs.

On a GPU server the CPU path (OpenCV decode and resize in DataLoader workers) caps throughput at a few
hundred 800 px JPEGs per second per core, far below what the model pass does. Here JPEGs are decoded by
nvJPEG in one batched ``torchvision.io.decode_jpeg(..., device="cuda")`` call, squashed with bicubic
interpolation and normalised on the card. File reads and the hardening checks of ``images.check_image_bytes``
(truncation, header, decompression bomb) stay on the CPU, in threads. Anything nvJPEG cannot take (PNG, TIFF,
a JPEG it refuses) goes through the CPU decoder of ``images.decode_image`` and is uploaded: same checks,
same error texts.

The pixels differ slightly from the CPU path (another JPEG decoder, torch's bicubic instead of OpenCV's), so
the run store keys these grids apart (:data:`RESIZE`); the CPU path stays what it was and is chosen
automatically when no GPU is present. The iterator speaks the CPU loader's language: ``(local indices,
batch [B, 3, S, S] float32 on the device, [(local index, error text)])``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from surgery_core.data.images import check_image_bytes, decode_image
from surgery_core.errors import ImageError

#: What the run store's heatmap key records for grids made from these batches.
RESIZE = "squash, torch bicubic on the device (nvJPEG decode)"

_JPEG = b"\xff\xd8"


def _read(path: Path | None) -> tuple[bytes | None, str]:
    if path is None:
        return None, "image file not found next to its annotation"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, str(ImageError(path, f"cannot read ({exc.strerror or exc})"))
    try:
        check_image_bytes(data, path)
    except ImageError as exc:
        return None, str(exc)
    return data, ""


def _decode(datas: list[bytes], paths: list[Path], device: torch.device) -> list[torch.Tensor | str]:
    """uint8 ``[3, H, W]`` on ``device`` per image, or the error text of an image that cannot be decoded."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list[torch.Tensor | str | None] = [None] * len(datas)
    jpegs = [i for i, d in enumerate(datas) if d[:2] == _JPEG]
    if jpegs:
        raw = [torch.frombuffer(bytearray(datas[i]), dtype=torch.uint8) for i in jpegs]
        try:
            decoded = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # one bad file fails the batched call: decode one by one, the rest on the CPU
            decoded = []
            for t in raw:
                try:
                    decoded.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
                except RuntimeError:
                    decoded.append(None)
        for i, img in zip(jpegs, decoded):
            out[i] = img
    for i, img in enumerate(out):
        if img is None:
            try:
                rgb = decode_image(datas[i], paths[i])
                out[i] = torch.from_numpy(rgb).permute(2, 0, 1).contiguous().to(device, non_blocking=True)
            except ImageError as exc:
                out[i] = str(exc)
    return out


def squash_normalise(images: list[torch.Tensor], size: int, mean, std) -> torch.Tensor:
    """uint8 ``[3, H, W]`` images -> float32 ``[B, 3, size, size]``, squashed (bicubic, rounded to 8 bits as
    the CPU path's uint8 resize is) and normalised with ``mean``/``std`` (0-1 scale, per channel)."""
    device = images[0].device
    m = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    rows = []
    for img in images:
        x = img.unsqueeze(0).float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).round_().clamp_(0, 255)
        rows.append(x)
    return (torch.cat(rows) / 255.0 - m) / s


class DeviceImageBatches:
    """Iterate batches of ``paths`` decoded and preprocessed on ``device``, one batch ahead.

    The next batch's files are read and checked in ``read_threads`` threads and decoded on a side CUDA stream
    while the caller works on the current batch; the caller's stream waits for that work before using it.
    On a CPU device (tests) the same code runs without streams.
    """

    def __init__(self, paths: list[Path | None], size: int, mean, std, batch_size: int,
                 device: torch.device | str, read_threads: int = 8):
        self.paths, self.size, self.mean, self.std = paths, size, mean, std
        self.batch_size, self.device, self.read_threads = batch_size, torch.device(device), read_threads

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def _prepare(self, start: int, reader: ThreadPoolExecutor, stream):
        idx = list(range(start, min(start + self.batch_size, len(self.paths))))
        read = list(reader.map(_read, [self.paths[i] for i in idx]))
        bad = [(j, err) for j, (data, err) in zip(idx, read) if data is None]
        ok = [(j, data) for j, (data, _) in zip(idx, read) if data is not None]
        event = None
        batch, local = None, []
        ctx = torch.cuda.stream(stream) if stream is not None else nullcontext()
        with ctx:
            decoded = _decode([d for _, d in ok], [self.paths[j] for j, _ in ok], self.device) if ok else []
            good = []
            for (j, _), img in zip(ok, decoded):
                if isinstance(img, str):
                    bad.append((j, img))
                else:
                    local.append(j)
                    good.append(img)
            if good:
                batch = squash_normalise(good, self.size, self.mean, self.std)
            if stream is not None:
                event = torch.cuda.Event()
                event.record(stream)
        return local, batch, sorted(bad), event

    def __iter__(self):
        cuda = self.device.type == "cuda"
        stream = torch.cuda.Stream(device=self.device) if cuda else None
        starts = list(range(0, len(self.paths), self.batch_size))
        with ThreadPoolExecutor(self.read_threads) as reader, ThreadPoolExecutor(1) as ahead:
            pending = ahead.submit(self._prepare, starts[0], reader, stream) if starts else None
            for k in range(len(starts)):
                local, batch, bad, event = pending.result()
                pending = ahead.submit(self._prepare, starts[k + 1], reader, stream) if k + 1 < len(starts) \
                    else None
                if event is not None:
                    current = torch.cuda.current_stream(self.device)
                    current.wait_event(event)
                    if batch is not None:
                        batch.record_stream(current)  # made on the side stream, freed only after the caller's use
                yield local, batch, bad

