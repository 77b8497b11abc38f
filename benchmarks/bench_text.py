"""Text features of a class list: open_clip's padded pass (every prompt over the whole context, as before) vs the
short pass (each batch on its longest prompt, ``surgery_core.model.text.encode_names``), and the disk cache.

Prints, per architecture, the seconds of each (median over interleaved repetitions), the speed-up, and whether
the features are equal to the bit (they must be: ``tests/model/test_text_tower.py``); then the time to read the
same features back from the disk cache in a fresh model (what a second ``surgery evaluate`` spends on text).
Random weights (speed does not depend on them), DIOR's 20 classes with the 85-template ensemble: 1,700 prompts.

    .venv/bin/python benchmarks/bench_text.py [--archs Demo-ViT-32,ViT-B-32] [--reps 3] [--prompt-set surgery85]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _machine import load_line, machine_line  # noqa: E402  (benchmarks/ is sys.path[0] when this file runs)

from surgery_core.data.classes import DIOR_CLASSES  # noqa: E402
from surgery_core.model.loading import load_model  # noqa: E402
from surgery_core.model.prompts import PROMPT_SETS, prompt_texts  # noqa: E402
from surgery_core.model.text import encode_names  # noqa: E402
from surgery_core.model.text_cache import TextDiskCache  # noqa: E402


@torch.no_grad()
def padded(loaded, names, prompt_set, batch=256):
    """The computation before the short pass: batches of 256 in template order, each padded to the context."""
    texts = [t for n in names for t in prompt_texts(n, prompt_set)]
    feats = [F.normalize(loaded.model.encode_text(loaded.tokenizer(texts[i:i + batch])).float(), dim=-1)
             for i in range(0, len(texts), batch)]
    feats = torch.cat(feats).view(len(names), len(PROMPT_SETS[prompt_set]), -1).mean(dim=1)
    return F.normalize(feats, dim=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default="Demo-ViT-32,ViT-B-32")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt-set", default="surgery85", choices=sorted(PROMPT_SETS))
    args = ap.parse_args()
    print(machine_line(), flush=True)
    torch.set_grad_enabled(False)
    names = list(DIOR_CLASSES)
    n_prompts = len(names) * len(PROMPT_SETS[args.prompt_set])
    print(f"{len(names)} DIOR classes x {len(PROMPT_SETS[args.prompt_set])} templates ({args.prompt_set}) = "
          f"{n_prompts} prompts, CPU, fp32, {torch.get_num_threads()} threads")
    print(f"{'model':<14}{'context':>8}{'padded s':>10}{'short s':>9}{'speed-up':>10}{'equal':>7}{'disk read s':>13}")
    for arch in args.archs.split(","):
        loaded = load_model(arch, random_weights=True)
        times = {"padded": [], "short": []}
        outs = {}
        for _ in range(args.reps):
            for name, fn in (("padded", padded), ("short", encode_names)):
                t = time.perf_counter()
                outs[name] = fn(loaded, names, args.prompt_set)
                times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        with tempfile.TemporaryDirectory(prefix="bench-text-") as tmp:
            disk = TextDiskCache(tmp)
            disk.put("m", {n: f.numpy() for n, f in zip(names, outs["short"])})
            t = time.perf_counter()
            back = torch.stack([torch.from_numpy(disk.get("m", n)) for n in names])
            read = time.perf_counter() - t
        equal = torch.equal(outs["padded"], outs["short"]) and torch.equal(back, outs["short"])
        print(f"{arch:<14}{loaded.model.context_length:>8}{med['padded']:>10.3f}{med['short']:>9.3f}"
              f"{med['padded'] / med['short']:>9.2f}x{str(equal):>7}{read:>13.4f}", flush=True)
    print(load_line())


if __name__ == "__main__":
    main()
