"""The package's layers hold: a test that walks every import of ``surgery_core`` (AST, without importing it).

Layers, lowest first (a layer may import the ones before it, never the ones after):

* common: ``errors``, ``files``, ``lru``, ``progress``, ``parallel``, ``plugins`` (stdlib and small libraries only);
* ``data/``: classes, ground truth, dataset readers, images: numpy and OpenCV, never torch;
* ``eval/``: maps, boxes, matching, AP, quality, scoring: numpy and OpenCV, never torch;
* ``model/``: loading, prompts, the forward, the method registry: the torch layer;
* ``run/``: configuration, store, engine, the ``Run`` facade;
* ``share/``: figures, reports, the bundle, snapshots;
* clients: ``cli`` and ``__main__``, and the extensions under ``demo/``, which register themselves through an
  entry point (``surgery_core.plugins``): nothing else imports them. Nothing in the package imports the dashboard.

Besides the order: torch, torchvision and open_clip are imported only in ``model/``, in the run modules that
drive the model (``TORCH_IN_RUN``) and in the clients; importing the configuration, the store or the snapshot
store loads none of them, nor does anything import streamlit.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "surgery_core"

ORDER = ("common", "data", "eval", "model", "run", "share", "client")
COMMON = {"errors", "files", "lru", "progress", "parallel", "plugins"}
CLIENTS = {"cli", "__main__", "__init__"}
HEAVY = ("torch", "torchvision", "open_clip")
TORCH_IN_RUN = {"engine", "device_images", "distributed", "explore"}
#: Modules whose whole import closure must stay free of HEAVY: what a config reader, a store browser or a
#: snapshot viewer loads.
LIGHT = ("surgery_core.run.config", "surgery_core.run.store", "surgery_core.run.grids",
         "surgery_core.share.snapshots")
#: Deferred (function-level) imports of HEAVY that a torch-free layer may make, with the reason.
DEFERRED_OK = {
    ("surgery_core.eval.boxes", "torch"): "NMS is torchvision.ops.nms, imported only by runs that ask for NMS",
    ("surgery_core.eval.boxes", "torchvision.ops"): "the same",
}


def deferred_ok(i: "Import") -> bool:
    return i.deferred and any(i.module == m and (i.target == t or i.target.startswith(t + "."))
                              for m, t in DEFERRED_OK)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (absolute)
    line: int
    deferred: bool  # inside a function: loaded when called, not when imported


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[Import]:
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    out = []

    def walk(node, deferred):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # imports for annotations only: never executed
            inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend(Import(name, a.name, child.lineno, deferred) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                out.append(Import(name, mod, child.lineno, deferred))
                # `from surgery_core.x import y` may import the submodule y
                out.extend(Import(name, f"{mod}.{a.name}", child.lineno, deferred) for a in child.names)
            walk(child, inner)

    walk(tree, False)
    return out


def layer_of(module: str) -> str | None:
    """The layer of a surgery_core module (None for modules outside the package)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return "common"  # the package itself (its __version__); its public API is imported lazily (__getattr__)
    if parts[1] in CLIENTS or parts[1] == "demo":
        return "client"
    if parts[1] in COMMON:
        return "common"
    return parts[1] if parts[1] in ORDER else "client"


def all_imports(root: Path) -> list[Import]:
    return [i for p in sorted((root / PACKAGE).rglob("*.py")) for i in imports_of(p, root)]


def existing_modules(root: Path) -> set[str]:
    return {module_name(p, root) for p in (root / PACKAGE).rglob("*.py")}


def crossings(root: Path) -> list[str]:
    """Every import that breaks a rule of the module docstring, as ``module:line imports target (rule)``."""
    mods = existing_modules(root)
    imps = [i for i in all_imports(root) if not i.target.startswith(PACKAGE) or i.target in mods]
    bad = []
    for i in imps:
        src = "client" if i.module == PACKAGE else layer_of(i.module)  # __init__ exports the public API
        dst = layer_of(i.target)
        where = f"{i.module}:{i.line} imports {i.target}"
        top = i.target.split(".")[0]
        sub = i.module.split(".")
        if top == "dashboard" or top == "streamlit":
            bad.append(f"{where} (the library never imports the dashboard or streamlit)")
        if i.target.startswith(f"{PACKAGE}.demo") and not (src == "client"):
            bad.append(f"{where} (the core never imports the demo: it registers itself, see plugins.py)")
        if dst is not None and src != "client" and ORDER.index(dst) > ORDER.index(src):
            bad.append(f"{where} ({src} may not import the {dst} layer above it)")
        if top in HEAVY and src in ("common", "data", "eval", "share") and \
                not deferred_ok(i):
            bad.append(f"{where} (the {src} layer never imports {top})")
        if top in HEAVY and src == "run" and sub[2] not in TORCH_IN_RUN and not i.deferred:
            bad.append(f"{where} (run.{sub[2]} is not a torch module of the run layer)")
    # closures of the light modules (module-level imports only: what `import X` loads)
    graph: dict[str, set[str]] = {}
    for i in imps:
        if not i.deferred:
            graph.setdefault(i.module, set()).add(i.target)
    for light in LIGHT:
        if light not in mods:
            continue
        seen, stack, via = {light}, [light], {}
        while stack:
            m = stack.pop()
            # importing a.b.c runs a/__init__ and a/b/__init__ too
            parents = {".".join(m.split(".")[:k]) for k in range(1, len(m.split(".")))} & mods
            for t in graph.get(m, set()) | parents:
                if t.split(".")[0] in HEAVY:
                    chain = [t, m]
                    while chain[-1] in via:
                        chain.append(via[chain[-1]])
                    bad.append(f"{light} loads {t.split('.')[0]}: {' <- '.join(chain)}")
                elif t in mods and t not in seen:
                    seen.add(t)
                    via[t] = m
                    stack.append(t)
    return sorted(set(bad))


def test_no_layer_is_crossed():
    found = crossings(ROOT)
    assert not found, "layer crossings:\n" + "\n".join(found)


@pytest.mark.parametrize("module, source, rule", [
    ("eval/ap.py", "import torch\n", "the eval layer never imports torch"),
    ("data/datasets.py", "from surgery_core.eval.boxes import BoxParams\n", "data may not import the eval layer"),
    ("run/engine.py", "from surgery_core.demo.scenes import DEMO_CLASSES\n", "the core never imports the demo"),
    ("eval/matching.py", "from surgery_core.model.methods import METHODS\n", "eval may not import the model layer"),
    ("run/store.py", "from surgery_core.model.heatmaps import compute_heatmaps\n", "surgery_core.run.store loads torch"),
    ("share/drawing.py", "import streamlit as st\n", "never imports the dashboard or streamlit"),
    ("run/pairs.py", "import torch\n", "run.pairs is not a torch module"),
])
def test_the_check_fails_on_a_crossing(tmp_path, module, source, rule):
    """The rule is not vacuous: one added import of each kind is reported, naming the rule."""
    import shutil

    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("weights", "samples",
                                                                                     "__pycache__"))
    assert crossings(tmp_path) == []
    target = tmp_path / PACKAGE / module
    target.write_text(target.read_text() + "\n" + source)
    found = crossings(tmp_path)
    assert any(rule in f for f in found), found


def test_light_modules_load_no_torch_at_run_time():
    """The same rule, measured: a fresh interpreter imports the light modules and never loads torch."""
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LIGHT if m in existing_modules(ROOT)) +
            f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY + ('streamlit',)!r})\n" +
            "print(heavy)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout
