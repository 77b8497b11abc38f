"""Runs sharded over processes, GPUs and nodes by PyTorch's own launcher (``torchrun``).

The run store is the only shared state. Every rank computes the raw grids of its share of the images (a
contiguous block, balanced by count) on its own device into the store; one ``torch.distributed`` barrier;
then rank 0 alone opens the run as a single process would (every grid is now in the store, so it computes
none), cuts boxes, computes every metric and writes every report. Other ranks print nothing but their
progress and exit 0.

Why this cannot change a number: grids are keyed by (heatmap key, image content), each entry is written
atomically, and a grid does not depend on which other images shared its batch (checked bit for bit in the
tests), so the files rank 0 writes are the files one process writes. A rank killed mid-run leaves whole
entries only; the same command rerun computes the missing ones.

Before any work the ranks compare, over the process group, the run hash (a rank launched with another
configuration is refused by every rank) and a probe write into the store (a store that some rank cannot
write, e.g. a node-local path on a multi-node job, is refused with the rank and host that failed).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from surgery_core.errors import SurgeryError


class LaunchRefused(SurgeryError):
    """Every rank refuses the launch alike; rank 0 says why, the others exit quietly."""

#: How long a rank waits at the barrier for the slowest one (a whole DIOR split on a slow CPU rank).
BARRIER_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a launch: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None = None) -> torch.device:
        """``cuda:LOCAL_RANK`` when a GPU is present (and not refused), else the CPU."""
        if requested == "cpu" or (requested is None and not torch.cuda.is_available()):
            return torch.device("cpu")
        if requested not in (None, "cuda"):
            raise SurgeryError(f"--device {requested}: under torchrun each rank takes cuda:LOCAL_RANK; "
                               "pass --device cpu or cuda")
        if not torch.cuda.is_available():
            raise SurgeryError("--device cuda: no CUDA GPU is visible to this rank")
        if self.local_rank >= torch.cuda.device_count():
            raise SurgeryError(f"rank {self.rank}: LOCAL_RANK {self.local_rank} but only "
                               f"{torch.cuda.device_count()} GPU(s) on {socket.gethostname()}")
        return torch.device("cuda", self.local_rank)


def launch_from_env(environ=os.environ) -> Launch | None:
    """The launch torchrun (or srun with the same variables) describes, or None for a plain process."""
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local = int(environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise SurgeryError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers, got {environ.get('RANK')!r}/"
                           f"{environ.get('WORLD_SIZE')!r}/{environ.get('LOCAL_RANK')!r}") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise SurgeryError(f"RANK {rank} is outside 0..{world - 1}")
    return Launch(rank, world, local)


def shard(count: int, rank: int, world: int) -> range:
    """Image indices of ``rank``: one contiguous block; block sizes differ by at most one."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def _probe_store(root: Path) -> str:
    """'' when this process can create, write and remove a file under ``root``, else the reason."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"ok")
        probe.unlink()
        return ""
    except OSError as exc:
        return exc.strerror or str(exc)


def _gather(obj) -> list:
    import torch.distributed as dist

    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def check_agreement(run_hash: str, store_root: Path) -> None:
    """Refuse, on every rank alike, a launch whose ranks disagree on the run or cannot all write the store."""
    host = socket.gethostname()
    seen = _gather({"hash": run_hash, "host": host, "store": str(store_root), "problem": _probe_store(store_root)})
    hashes = {s["hash"] for s in seen}
    if len(hashes) > 1:
        listing = ", ".join(f"rank {r} {s['hash']}" for r, s in enumerate(seen))
        raise LaunchRefused(f"ranks disagree on the run configuration (run hashes: {listing}); launch every "
                           "rank with the same arguments and configuration file")
    bad = [(r, s) for r, s in enumerate(seen) if s["problem"]]
    if bad:
        listing = "; ".join(f"rank {r} on {s['host']}: {s['store']}: {s['problem']}" for r, s in bad)
        raise LaunchRefused(f"the run store must be writable by every rank (on a shared file system for "
                           f"several nodes): {listing}")


def compute_shard(cfg, store, launch: Launch, *, device: torch.device, batch_size: int = 64,
                  workers: int | None = None, progress: bool = False, random_weights: bool = False) -> None:
    """Grids of this rank's share of the images, into ``store`` (with ``progress``: a bar on stderr naming the
    rank; nothing on stdout)."""
    from surgery_core.progress import Progress
    from surgery_core.run.engine import compute_grids, load_dataset, require_images, resolve_model

    loaded = resolve_model(cfg, device, random_weights=random_weights)
    dataset = load_dataset(cfg)
    require_images(cfg, dataset)
    mine = shard(len(dataset), launch.rank, launch.world)
    with Progress(progress).bar(f"heatmaps rank {launch.rank}/{launch.world}", len(mine), "img") as bar:
        last = [0]

        def advance(done, total, rate):
            bar.update(done - last[0])
            last[0] = done
            bar.set_postfix_str(f"{rate:.1f} img/s")

        compute_grids(cfg, dataset.subset(list(mine)), loaded, store, batch_size=batch_size, workers=workers,
                      progress=advance)


def run_sharded(cfg, store_root: str | Path, launch: Launch, *, device: str | None = None, batch_size: int = 64,
                workers: int | None = None, progress: bool = False, random_weights: bool = False) -> torch.device:
    """Every rank's part of a sharded run, up to and including the barrier; returns this rank's device.

    Afterwards only rank 0 should go on (open the run: it finds every grid in the store). The store is opened
    only once every rank has shown it can write there, so no rank fails alone while the others wait."""
    import torch.distributed as dist

    from surgery_core.run.store import RunStore

    dev = launch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)
    try:
        check_agreement(cfg.run_hash, Path(store_root).expanduser())
        compute_shard(cfg, RunStore(store_root), launch, device=dev, batch_size=batch_size, workers=workers,
                      progress=progress, random_weights=random_weights)
        dist.barrier()
    except LaunchRefused:
        if not launch.is_main:
            raise SystemExit(2) from None
        raise
    finally:
        dist.destroy_process_group()
    return dev
