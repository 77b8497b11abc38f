"""The model catalog, ``surgery models`` and ``--model NAME``, without the internet (issue 25).

A local HTTP server (``hub_standin``) stands in for the Hugging Face hub through ``HF_ENDPOINT``. The checkpoint it
serves is a random-weight state dict of the demo architecture (Demo-ViT-32: open_clip ViT, 224 px, 32 px patches,
15 MB) rather than a 605 MB ViT-B-32, so that every test stays a few seconds on a shared CPU; the code paths are the
architecture's own (strict load, sha256, QuickGELU). Commands run in this process through ``cli.main``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from tests.hub_standin import COMMIT, HubStandin

from surgery_core.cli import main
from surgery_core.model.catalog import CATALOG, INITS, OPENAI_MEAN, OPENAI_STD, CatalogEntry
from surgery_core.model.local_models import NAME_RE

SAMPLE_IMAGE = str(Path(__file__).resolve().parents[2] / "surgery_core" / "samples" / "dior" / "JPEGImages-trainval"
                   / "00001.jpg")
REPO, FILE = "standin/demo-clip", "ckpt/random-demo.pt"


@pytest.fixture(scope="module")
def checkpoint_bytes() -> bytes:
    """A random-weight Demo-ViT-32 state dict as ``torch.save`` writes it (a pickle, like RemoteCLIP's files)."""
    import torch

    from surgery_core.demo.model import DEMO_ARCH
    from surgery_core.model.loading import load_model

    buf = io.BytesIO()
    torch.save(load_model(DEMO_ARCH, random_weights=True).model.state_dict(), buf)
    return buf.getvalue()


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """The stand-in hub, with this test's models folder and Hugging Face cache in ``tmp_path``."""
    with HubStandin() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("SURGERY_MODELS", str(tmp_path / "models"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def standin_entry(data: bytes, **changes) -> CatalogEntry:
    """A catalog entry for the stand-in hub's file (published size and sha256 those of ``data``)."""
    entry = CatalogEntry(name="standin-demo", title="stand-in demo CLIP", arch="Demo-ViT-32", quickgelu=False,
                         init="laion", input_size=224, licence="test", citation="test", repo=REPO, file=FILE,
                         revision=COMMIT, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return dataclasses.replace(entry, **changes)


@pytest.fixture()
def served(hub, checkpoint_bytes, monkeypatch) -> CatalogEntry:
    hub.files[f"{REPO}/{FILE}"] = checkpoint_bytes
    entry = standin_entry(checkpoint_bytes)
    monkeypatch.setitem(CATALOG, entry.name, entry)
    return entry


def run(capfd, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, (code, err)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def listing(capfd) -> dict[str, dict]:
    code, out, _ = run(capfd, ["models", "--json"])
    assert code == 0
    return {r["name"]: r for r in json.loads(out)}


def hf_cache_files(tmp_path: Path) -> list[Path]:
    """Model files in the Hugging Face cache (blobs and snapshot links; not its locks, refs or CACHEDIR.TAG)."""
    return sorted(p for p in (tmp_path / "hf").rglob("*") if (p.is_file() or p.is_symlink())
                  and p.parent.name != "refs" and ("blobs" in p.parts or "snapshots" in p.parts))


# ------------------------------------------------------------------------------------------ the catalog itself
def test_every_entry_is_an_open_clip_architecture_with_the_quickgelu_of_its_initialisation():
    import open_clip

    from surgery_core.model.catalog import catalog_entry

    assert {"remoteclip-b32", "remoteclip-l14", "georsclip-b32", "georsclip-l14", "georsclip-l14-336",
            "georsclip-h14", "openai-b32", "openai-b16", "openai-l14", "openai-l14-336", "laion2b-b32"} <= set(CATALOG)
    for e in CATALOG.values():
        assert catalog_entry(e.name) is e and NAME_RE.match(e.name), e.name
        assert e.arch in open_clip.list_models(), e.name
        assert e.init in INITS and e.init != "user", e.name
        assert e.quickgelu == (e.init == "openai"), f"{e.name}: OpenAI-initialised <=> QuickGELU"
        vision = open_clip.get_model_config(e.arch)["vision_cfg"]
        assert e.input_size == vision["image_size"], e.name
        assert (e.mean, e.std) == (OPENAI_MEAN, OPENAI_STD), e.name
        assert bool(e.repo) != bool(e.url), f"{e.name}: a hub file or a URL"
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.name
        assert e.size is None or e.size > 0, e.name
        assert e.licence and e.citation, e.name
    # open_clip's own registry (pretrained.py) agrees where the entry is one of its hub ids
    for name, tag in (("openai-b32", "openai"), ("openai-b16", "openai"), ("openai-l14", "openai"),
                      ("openai-l14-336", "openai"), ("laion2b-b32", "laion2b_s34b_b79k")):
        e, cfg = CATALOG[name], open_clip.get_pretrained_cfg(CATALOG[name].arch, tag)
        assert cfg["hf_hub"].rstrip("/") == e.repo and bool(cfg.get("quick_gelu", False)) == e.quickgelu, name
    # the two hashes issue 25 quotes (head...tail), and the byte count it gives
    assert CATALOG["remoteclip-b32"].size == 605_208_421
    assert CATALOG["remoteclip-b32"].sha256.startswith("60014e39") and CATALOG["remoteclip-b32"].sha256.endswith("85c4")
    assert CATALOG["remoteclip-l14"].sha256.startswith("fcc2a7e2") and CATALOG["remoteclip-l14"].sha256.endswith("cecb")


def test_a_name_sets_the_model_and_quickgelu_cannot_be_switched_off():
    from pydantic import ValidationError

    from surgery_core.run.config import ModelConfig, RunConfig

    cfg = RunConfig(model={"name": "remoteclip-b32"})
    assert (cfg.model.arch, cfg.model.quickgelu, cfg.model.sha256) == (
        "ViT-B-32", True, CATALOG["remoteclip-b32"].sha256)
    for bad in ({"quickgelu": False}, {"arch": "ViT-L-14"}):
        with pytest.raises(ValidationError, match="remoteclip-b32 has"):
            RunConfig(model={"name": "remoteclip-b32", **bad})
    with pytest.raises(ValidationError, match="unknown model 'remoteclip'"):
        RunConfig(model={"name": "remoteclip"})
    # configurations without a name keep their JSON, so their run hash (stored runs, links) is unchanged
    plain = RunConfig(model=ModelConfig(arch="ViT-B-32", checkpoint="/m/x.pt", quickgelu=True))
    assert json.loads(plain.canonical_json())["model"] == {"arch": "ViT-B-32", "checkpoint": "/m/x.pt",
                                                          "quickgelu": True}
    assert plain.run_hash != RunConfig(model={"name": "remoteclip-b32", "checkpoint": "/m/x.pt"}).run_hash


# ------------------------------------------------------------------------------------------ pull
def test_pull_downloads_checks_sha256_and_the_list_shows_it_present(served, hub, capfd, tmp_path, checkpoint_bytes):
    assert listing(capfd)["standin-demo"]["present"] is False
    code, out, err = run(capfd, ["models", "pull", "standin-demo"])
    assert code == 0, err
    assert f"{len(checkpoint_bytes):,} bytes, sha256 verified, in the Hugging Face cache" in out
    row = listing(capfd)["standin-demo"]
    assert row["present"] and row["where"] == "Hugging Face cache" and row["sha256_verified"]
    assert Path(row["path"]).read_bytes() == checkpoint_bytes
    assert f"/snapshots/{COMMIT}/{FILE}" in row["path"]
    gets = [r for r in hub.requests if r[0] == "GET"]
    assert gets == [("GET", f"/{REPO}/resolve/{COMMIT}/{FILE}", "")]
    # a second pull finds the verified file and does not download again
    assert run(capfd, ["models", "pull", "standin-demo"])[0] == 0
    assert [r for r in hub.requests if r[0] == "GET"] == gets


@pytest.mark.parametrize("wrong", ["sha256", "size"])
def test_pull_refuses_a_file_that_is_not_the_published_one_and_keeps_nothing(hub, capfd, tmp_path, monkeypatch,
                                                                              checkpoint_bytes, wrong):
    hub.files[f"{REPO}/{FILE}"] = checkpoint_bytes
    published = standin_entry(checkpoint_bytes[:-1] + bytes([checkpoint_bytes[-1] ^ 1]))  # other bytes, same size
    if wrong == "size":
        published = standin_entry(checkpoint_bytes + b"\0")
    monkeypatch.setitem(CATALOG, published.name, published)
    code, _, err = run(capfd, ["models", "pull", "standin-demo"])
    needle = "differs from standin-demo's published" if wrong == "sha256" else "bytes, but standin-demo's published"
    one_line_error(code, err, needle)
    assert hf_cache_files(tmp_path) == [], "the refused file is removed from the Hugging Face cache"
    assert not (tmp_path / "models" / "standin-demo").exists()
    assert listing(capfd)["standin-demo"]["present"] is False


def test_an_interrupted_download_leaves_nothing_that_passes_as_complete(served, hub, capfd, tmp_path,
                                                                        checkpoint_bytes):
    third = len(checkpoint_bytes) // 3
    hub.drop_after = third  # the connection drops a third of the way, then the server is gone: retries fail too
    code, _, err = run(capfd, ["models", "pull", "standin-demo"])
    one_line_error(code, err, "standin-demo", "was interrupted", "nothing was kept")
    assert hf_cache_files(tmp_path) == [], "no partial file under any name in the Hugging Face cache"
    assert not (tmp_path / "models" / "standin-demo").exists()
    assert listing(capfd)["standin-demo"]["present"] is False
    code, _, err = run(capfd, ["heatmaps", "--model", "standin-demo", "--image", SAMPLE_IMAGE, "--classes", "ship",
                               "--out", str(tmp_path / "h.npz")])
    one_line_error(code, err, "model standin-demo is not on this machine", "surgery models pull standin-demo")
    # a connection that drops once while the server stays up: the pull resumes where it stopped (Range) and
    # the file it keeps is the published one, byte for byte
    # (huggingface_hub writes 10 MiB chunks, so the drop comes after two thirds: one whole chunk kept)
    hub.dead, hub.stay_dead, hub.drop_after = False, False, 2 * third
    hub.requests.clear()
    assert run(capfd, ["models", "pull", "standin-demo"])[0] == 0
    resumed = [int(r[2][6:-1]) for r in hub.requests if r[0] == "GET" and re.fullmatch(r"bytes=\d+-", r[2])]
    assert resumed and 0 < resumed[0] <= 2 * third, hub.requests
    row = listing(capfd)["standin-demo"]
    assert row["sha256_verified"] and Path(row["path"]).read_bytes() == checkpoint_bytes


def test_offline_says_so_in_one_line_with_the_url_and_the_path_for_a_copied_file(served, hub, capfd, tmp_path,
                                                                                 monkeypatch):
    target = tmp_path / "models" / "standin-demo" / "random-demo.pt"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run(capfd, ["models", "pull", "standin-demo"])
    one_line_error(code, err, "no network", "HF_HUB_OFFLINE", f"{hub.url}/{REPO}/resolve/{COMMIT}/{FILE}",
                   f"put it at {target}", served.sha256)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with HubStandin() as gone:  # a port that answers nothing once the server is shut
        closed = gone.url
    monkeypatch.setenv("HF_ENDPOINT", closed)
    code, _, err = run(capfd, ["models", "pull", "standin-demo"])
    one_line_error(code, err, "no network", f"{closed}/{REPO}/resolve/{COMMIT}/{FILE}", f"put it at {target}")
    assert hub.requests == [] and hf_cache_files(tmp_path) == []


# ------------------------------------------------------------------------------------------ --model
def test_model_flag_runs_the_named_model_and_the_run_names_it(served, capfd, tmp_path, checkpoint_bytes):
    code, _, err = run(capfd, ["evaluate", "--model", "standin-demo", "--samples", "--out", str(tmp_path / "o")])
    one_line_error(code, err, "model standin-demo is not on this machine")  # never downloaded behind the user's back
    assert run(capfd, ["models", "pull", "standin-demo"])[0] == 0
    argv = ["evaluate", "--model", "standin-demo", "--samples", "--limit", "2", "--methods", "vv_mixed",
            "--figures", "0", "--out", str(tmp_path / "o")]
    code, out, err = run(capfd, argv)
    assert code == 0, err
    report = (tmp_path / "o" / "evaluation_report.md").read_text()
    assert f"- Model: `standin-demo` (`Demo-ViT-32`, QuickGELU False), checkpoint sha256 `{served.sha256[:16]}`" \
        in report
    head = json.loads((tmp_path / "o" / "map_results.json").read_text())
    assert head["model"]["name"] == "standin-demo" and head["model"]["checkpoint_sha256"] == served.sha256
    assert head["config"]["model"]["name"] == "standin-demo" and head["config"]["model"]["sha256"] == served.sha256
    code, out, err = run(capfd, ["heatmaps", "--model", "standin-demo", "--image", SAMPLE_IMAGE, "--classes", "ship",
                                 "--methods", "vv_mixed", "--out", str(tmp_path / "h.npz")])
    assert code == 0, err
    assert f"model standin-demo, sha256 {served.sha256[:16]}" in out


def test_a_file_that_is_not_the_published_one_loads_only_when_asked_and_the_run_says_so(served, capfd, tmp_path,
                                                                                        checkpoint_bytes):
    target = tmp_path / "models" / "standin-demo" / "random-demo.pt"
    target.parent.mkdir(parents=True)
    import torch

    state = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
    state["logit_scale"] = state["logit_scale"] + 1.0  # a hand-copied file that is not the published one
    torch.save(state, target)
    argv = ["heatmaps", "--model", "standin-demo", "--image", SAMPLE_IMAGE, "--classes", "ship", "--methods",
            "vv_mixed", "--out", str(tmp_path / "h.npz")]
    code, _, err = run(capfd, argv)
    one_line_error(code, err, str(target), "differs from model standin-demo's published", "--allow-sha256-mismatch")
    code, out, err = run(capfd, argv + ["--allow-sha256-mismatch"])
    assert code == 0, err
    assert "WARNING" in err and "is NOT model standin-demo's published file" in err


# ------------------------------------------------------------------------------------------ add, QuickGELU hint
def test_models_add_registers_a_users_checkpoint_under_a_name(hub, capfd, tmp_path, checkpoint_bytes):
    ckpt = tmp_path / "my-rs-clip.pt"
    ckpt.write_bytes(checkpoint_bytes)
    one_line_error(*run(capfd, ["models", "add", "remoteclip-b32", "--arch", "Demo-ViT-32", "--checkpoint",
                                str(ckpt)])[::2], "is a catalog entry")
    one_line_error(*run(capfd, ["models", "add", "mine", "--arch", "ViT-B-32", "--checkpoint", str(ckpt)])[::2],
                   str(ckpt), "does not match architecture ViT-B-32")
    code, out, err = run(capfd, ["models", "add", "mine", "--arch", "Demo-ViT-32", "--checkpoint", str(ckpt)])
    assert code == 0, err
    assert "registered mine" in out and "--model mine" in out
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert index["registered"]["mine"]["sha256"] == hashlib.sha256(checkpoint_bytes).hexdigest()
    row = listing(capfd)["mine"]
    assert row["registered"] and row["present"] and row["where"] == "registered file"
    code, out, err = run(capfd, ["heatmaps", "--model", "mine", "--image", SAMPLE_IMAGE, "--classes", "ship",
                                 "--methods", "vv_mixed", "--out", str(tmp_path / "h.npz")])
    assert code == 0 and "model mine" in out, err


def test_a_bare_checkpoint_named_like_openai_weights_without_quickgelu_gets_one_warning(hub, capfd, tmp_path,
                                                                                       checkpoint_bytes):
    ckpt = tmp_path / "RemoteCLIP-finetuned.pt"
    ckpt.write_bytes(checkpoint_bytes)
    argv = ["heatmaps", "--arch", "Demo-ViT-32", "--checkpoint", str(ckpt), "--image", SAMPLE_IMAGE, "--classes",
            "ship", "--methods", "vv_mixed", "--out", str(tmp_path / "h.npz")]
    code, _, err = run(capfd, argv)
    warning = [ln for ln in err.splitlines() if "WARNING" in ln]
    assert code == 0 and len(warning) == 1 and "without QuickGELU" in warning[0] and "--quickgelu" in warning[0]
    code, _, err = run(capfd, argv + ["--quickgelu"])
    assert code == 0 and "WARNING" not in err
    plain = tmp_path / "weights.pt"
    plain.write_bytes(checkpoint_bytes)
    code, _, err = run(capfd, [a if a != str(ckpt) else str(plain) for a in argv])
    assert code == 0 and "WARNING" not in err


# ------------------------------------------------------------------------------------------ URL entries (SkyCLIP)
def test_a_url_zip_entry_is_downloaded_extracted_and_checked_into_the_models_folder(hub, capfd, tmp_path,
                                                                                    monkeypatch, checkpoint_bytes):
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # SkyCLIP's zips hold one checkpoint (and whatever else)
        z.writestr("SkyCLIP_demo/README.txt", "not weights")
        z.writestr("SkyCLIP_demo/epoch_20.pt", checkpoint_bytes)
    hub.files["files/skyclip-demo.zip"] = buf.getvalue()
    entry = dataclasses.replace(standin_entry(checkpoint_bytes), name="sky-demo", repo=None, file=None,
                                revision=None, url=f"{hub.url}/files/skyclip-demo.zip", archive="zip")
    monkeypatch.setitem(CATALOG, entry.name, entry)
    final = tmp_path / "models" / "sky-demo" / "sky-demo.pt"
    hub.drop_after = 1000  # first an interrupted download: nothing under the final name, no partial file left
    one_line_error(*run(capfd, ["models", "pull", "sky-demo"])[::2], "sky-demo", "interrupted", "nothing was kept")
    assert not final.exists() and list(final.parent.iterdir()) == []
    hub.dead = False
    code, out, err = run(capfd, ["models", "pull", "sky-demo"])
    assert code == 0, err
    assert final.read_bytes() == checkpoint_bytes and "in the models folder" in out
    assert sorted(p.name for p in final.parent.iterdir()) == ["sky-demo.pt"], "the zip and .part files are gone"
    row = listing(capfd)["sky-demo"]
    assert row["where"] == "models folder" and row["sha256_verified"]
