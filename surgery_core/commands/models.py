"""``surgery models``: the model catalog, what is on this machine, ``pull`` (the only download) and ``add``.

``surgery models`` lists every catalog entry and registered model with its architecture, QuickGELU, size and
whether its file is here (models folder, Hugging Face cache, or the registered file). ``surgery models info NAME``
prints every fact of one entry with its source. ``surgery models pull NAME [NAME ...]`` downloads and checks
(size, sha256), ``surgery models add NAME --arch A --checkpoint FILE [--quickgelu]`` registers a user's file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from surgery_core.cli import _Parser

    m = sub.add_parser("models", help="the model catalog: list, what is here, pull (download), add your own")
    m.add_argument("--json", action="store_true", help="print the list as JSON")
    msub = m.add_subparsers(dest="models_command", parser_class=_Parser)
    m.set_defaults(func=_cmd_list)
    info = msub.add_parser("info", help="every fact of one model, with its source")
    info.add_argument("name")
    info.set_defaults(func=_cmd_info)
    pull = msub.add_parser("pull", help="download models (Hugging Face hub or HTTPS), check size and sha256")
    pull.add_argument("names", nargs="+", metavar="NAME")
    pull.set_defaults(func=_cmd_pull)
    add = msub.add_parser("add", help="register your own checkpoint under a name (kept in the models folder's index)")
    add.add_argument("name")
    add.add_argument("--arch", required=True, help="open_clip architecture, e.g. ViT-B-32")
    add.add_argument("--checkpoint", required=True, help="the checkpoint file (state dict)")
    add.add_argument("--quickgelu", action="store_true", help="QuickGELU activations (OpenAI-initialised weights)")
    add.set_defaults(func=_cmd_add)


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _cmd_list(args) -> int:
    from surgery_core.model.local_models import model_rows, models_dir

    rows = model_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':<18} {'ARCH':<13} {'QuickGELU':<9} {'SIZE':>9}  HERE")
    for r in rows:
        here = (f"yes: {r['where']}{', sha256 verified' if r['sha256_verified'] else ''}" if r["present"]
                else "no (surgery models pull " + r["name"] + ")" if not r["registered"] else "no: file gone")
        print(f"{r['name']:<18} {r['arch']:<13} {'yes' if r['quickgelu'] else 'no':<9} {_size(r['size']):>9}  {here}")
    print(f"models folder: {models_dir()} ($SURGERY_MODELS); 'surgery models info NAME' for sources, licence, "
          "citation")
    return 0


def _cmd_info(args) -> int:
    from surgery_core.model.local_models import find_model, locate, target_path

    e = find_model(args.name)
    found = locate(e)
    facts = {"name": e.name, "title": e.title, "architecture": e.arch,
             "QuickGELU": f"{'yes' if e.quickgelu else 'no'} (initialised from {e.init})",
             "input": f"{e.input_size} px, mean {e.mean}, std {e.std}" if e.input_size else "the architecture's",
             "weights": e.source, "download URL": e.download_url or "-",
             "size": f"{e.size:,} bytes" if e.size is not None else "unconfirmed",
             "sha256": e.sha256 or "unconfirmed", "licence": e.licence or "-", "citation": e.citation or "-",
             "note": e.note or "-", "here": f"{found.where}: {found.path}" if found else "not on this machine",
             "hand-copied file goes to": str(target_path(e))}
    for k, v in facts.items():
        print(f"{k + ':':<26} {v}")
    return 0


def _cmd_pull(args) -> int:
    from surgery_core.model.local_models import find_model
    from surgery_core.model.pull import pull

    entries = [find_model(n) for n in dict.fromkeys(args.names)]  # every name checked before any download
    for entry in entries:
        found = pull(entry)
        sha = "sha256 verified" if entry.sha256 else "sha256 not published: size and hash unchecked"
        print(f"{entry.name}: {found.path.stat().st_size:,} bytes, {sha}, in the {found.where}: {found.path}")
    return 0


def _cmd_add(args) -> int:
    from surgery_core.model.loading import load_model
    from surgery_core.model.local_models import check_new_name, register

    check_new_name(args.name)  # before reading a large file
    path = Path(args.checkpoint)
    loaded = load_model(args.arch, path, args.quickgelu)  # the file must load strictly into the architecture
    entry = register(args.name, args.arch, path, args.quickgelu, loaded.checkpoint_sha256, path.stat().st_size,
                     loaded.image_size)
    if loaded.note:
        print(f"WARNING: {loaded.note}", file=sys.stderr)
    print(f"registered {entry.name}: {entry.arch}, QuickGELU {'on' if entry.quickgelu else 'off'}, "
          f"{entry.checkpoint} (sha256 {entry.sha256[:16]}...); use --model {entry.name}")
    return 0

