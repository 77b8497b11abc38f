"""Bad input on the command line: exit code 2, exactly one line on stderr naming the option, key or file and the
problem, never a traceback (issue 15, points 2-4). Most cases run ``main()`` in this process (torch is imported
once); a few run the real ``surgery`` process end to end, where library warnings would also reach stderr."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from tests.model.test_models import _lying_safetensors, _zip_without_torch

from surgery_core.cli import main

CLI = [sys.executable, "-m", "surgery_core.cli"]
SAMPLE_IMAGE = "surgery_core/samples/dior/JPEGImages-trainval/00001.jpg"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """Cache and run store in a temporary folder; nothing computed must ever land there on bad input."""
    monkeypatch.setenv("SURGERY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SURGERY_STORE", str(tmp_path / "store"))
    return tmp_path


def run_main(capfd, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line_refusal(code: int, out: str, err: str, *needles: str) -> str:
    lines = err.splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    assert "Traceback" not in out + err and "validation error" not in err and "errors.pydantic.dev" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------ checkpoints
def _pickle_of(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


BAD_CHECKPOINTS = {
    "text.pt": (b"this is not a checkpoint", "not a checkpoint: the file is a text file"),  # was IndexError
    "hello.pt": (b"hello world", "not a checkpoint: the file is a text file"),  # was KeyError: 101
    "random.pt": (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not a checkpoint"),
    "empty.pt": (b"", "empty file (0 bytes)"),
    "archive.zip": (_zip_without_torch(), "a zip archive without the data.pkl"),
    "weights.json": (b'{"visual.proj": [1, 2]}', "the file is a JSON file"),
    "list.pt": (_pickle_of([torch.zeros(2)]), "not a state dict (found list"),
    "lies.safetensors": (_lying_safetensors(), "not a readable safetensors file"),
}


@pytest.mark.parametrize("command", ["evaluate", "heatmaps"])
@pytest.mark.parametrize("name", list(BAD_CHECKPOINTS))
def test_unreadable_checkpoints_are_refused_in_one_line(env, capfd, command, name):
    content, problem = BAD_CHECKPOINTS[name]
    ckpt = env / name
    ckpt.write_bytes(content)
    argv = [command, "--checkpoint", str(ckpt)]
    argv += (["--out", str(env / "out")] if command == "evaluate" else
             ["--image", SAMPLE_IMAGE, "--classes", "airplane", "--out", str(env / "hm.npz")])
    line = assert_one_line_refusal(*run_main(capfd, argv), str(ckpt), problem)
    assert line.startswith(f"surgery {command}: error: ")
    assert not (env / "out").exists() and not (env / "hm.npz").exists()
    assert not (env / "cache" / "demo-data").exists()  # refused before the demo scenes are generated


@pytest.mark.parametrize("command", ["evaluate", "heatmaps"])
def test_a_folder_as_checkpoint_is_refused(env, capfd, command):
    argv = [command, "--checkpoint", str(env)]
    argv += (["--out", str(env / "out")] if command == "evaluate" else
             ["--image", SAMPLE_IMAGE, "--classes", "airplane", "--out", str(env / "hm.npz")])
    assert_one_line_refusal(*run_main(capfd, argv), str(env), "is a folder, not a checkpoint file")


# ------------------------------------------------------------------------------------------ random weights
@pytest.mark.parametrize("command", ["evaluate", "heatmaps"])
def test_no_checkpoint_for_a_real_architecture_is_an_error(env, capfd, command):
    argv = [command, "--arch", "ViT-B-32"]
    argv += (["--out", str(env / "out")] if command == "evaluate" else
             ["--image", SAMPLE_IMAGE, "--classes", "airplane", "--out", str(env / "hm.npz")])
    assert_one_line_refusal(*run_main(capfd, argv), "ViT-B-32 needs a checkpoint", "--checkpoint FILE",
                            "--random-weights")


def test_heatmaps_demo_weights_by_default_and_random_weights_only_when_asked(env, capfd):
    code, out, err = run_main(capfd, ["heatmaps", "--image", SAMPLE_IMAGE, "--classes", "airplane,golffield",
                                      "--out", str(env / "demo.npz")])
    assert code == 0 and err == "" and "shipped demo weights" in out
    code, out, err = run_main(capfd, ["heatmaps", "--arch", "ViT-B-32", "--random-weights", "--image", SAMPLE_IMAGE,
                                      "--classes", "airplane", "--out", str(env / "rand.npz")])
    assert code == 0 and "RANDOM weights" in out
    with np.load(env / "rand.npz") as z:
        assert z["standard"].shape == (1, 7, 7)


def test_unknown_class_names_are_named_and_kept_as_queries(env, capfd):
    code, out, err = run_main(capfd, ["heatmaps", "--image", SAMPLE_IMAGE, "--out", str(env / "q.npz"),
                                      "--classes", "airplane,golf course,red roof"])
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and "'red roof' is not a DIOR class" in lines[0] and "free-text query" in lines[0]
    assert "golf course" not in lines[0]  # an accepted spelling of golffield
    with np.load(env / "q.npz") as z:
        assert list(z["classes"]) == ["airplane", "golf course", "red roof"]


# ------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("args,message", [
    (["--percentile", "-5"], "--percentile -5: must be between 0 and 100"),
    (["--percentile", "101"], "--percentile 101: must be between 0 and 100"),
    (["--limit", "0"], "--limit 0: must be at least 1"),
    (["--size", "8"], "--size 8: must be at least 32"),
    (["--nms", "1.5"], "--nms 1.5: must be between 0 and 1"),
    (["--morph-kernel", "4"], "--morph-kernel 4: morph_kernel must be odd"),
    (["--methods", "standard,nonsense"], "--methods standard,nonsense: unknown method(s) nonsense; registered: standard, vv_qk"),
    (["--ious", "0.1,x"], "--ious 0.1,x: must be comma-separated numbers"),
    (["--percentile", "abc"], "argument --percentile: invalid float value: 'abc'"),
    (["--score", "median"], "argument --score: invalid choice: 'median'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_options_are_named_in_the_users_terms(env, capfd, args, message):
    assert_one_line_refusal(*run_main(capfd, ["evaluate", "--out", str(env / "out")] + args), message)


def test_report_refuses_a_negative_sample_count(env, capfd):
    assert_one_line_refusal(*run_main(capfd, ["report", "--samples-count", "-1"]),
                            "argument --samples-count: must be at least 0, got -1")


# ------------------------------------------------------------------------------------------ config files
def test_config_file_errors_name_the_file_and_the_key(env, capfd):
    missing = env / "missing.json"
    assert_one_line_refusal(*run_main(capfd, ["evaluate", "--config", str(missing)]), str(missing),
                            "configuration file not found")
    cases = {
        "broken.json": ('{"boxes": {"percentile": 90,}}', "not valid JSON (line 1"),
        "array.json": ("[1, 2]", "a run configuration is a JSON object"),
        "binary.json": (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        "range.json": ('{"boxes": {"percentile": -5}}', "configuration key boxes.percentile = -5 (in "),
        "unknown.json": ('{"boxes": {"percentil": 80}}', "unknown configuration key boxes.percentil (in "),
        "section.json": ('{"model": "ViT-B-32"}', "configuration key model (in "),
        "kind.json": ('{"data": {"kind": "voc"}}', "configuration key data.kind = \"voc\""),
    }
    for name, (content, message) in cases.items():
        f = env / name
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
        line = assert_one_line_refusal(*run_main(capfd, ["evaluate", "--config", str(f)]), message)
        assert name in line, line
    folder = env / "folder.json"
    folder.mkdir()
    assert_one_line_refusal(*run_main(capfd, ["evaluate", "--config", str(folder)]), "is a folder")


def test_a_flag_fixes_a_bad_value_of_the_file_and_is_named_when_it_is_bad(env, capfd):
    f = env / "run.json"
    f.write_text('{"boxes": {"percentile": 120}, "data": {"limit": 0}}')
    line = assert_one_line_refusal(*run_main(capfd, ["evaluate", "--config", str(f), "--percentile", "-1"]))
    assert "--percentile -1: must be between 0 and 100" in line  # from the command line: the option
    assert "configuration key data.limit = 0 (in " in line and "must be at least 1" in line  # from the file


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("argv,needles", [
    (["evaluate", "--checkpoint", "{tmp}/text.pt"], ["text.pt: not a checkpoint"]),
    (["heatmaps", "--checkpoint", "{tmp}/hello.pt", "--image", SAMPLE_IMAGE, "--classes", "ship", "--out",
      "{tmp}/o.npz"], ["hello.pt: not a checkpoint"]),
    (["heatmaps", "--arch", "ViT-B-32", "--image", SAMPLE_IMAGE, "--classes", "ship", "--out", "{tmp}/o.npz"],
     ["ViT-B-32 needs a checkpoint"]),
    (["evaluate", "--config", "/missing.json"], ["/missing.json: configuration file not found"]),
    (["evaluate", "--percentile", "-5"], ["--percentile -5: must be between 0 and 100"]),
])
def test_the_real_process_prints_one_line_and_no_traceback(tmp_path, demo_env, argv, needles):
    (tmp_path / "text.pt").write_text("this is not a checkpoint")
    (tmp_path / "hello.pt").write_text("hello world")
    res = subprocess.run(CLI + [a.replace("{tmp}", str(tmp_path)) for a in argv], capture_output=True, text=True,
                         env=demo_env, timeout=300)
    assert_one_line_refusal(res.returncode, res.stdout, res.stderr, *needles)
    assert res.stdout == ""


def test_unwritable_outputs_and_unknown_devices_are_one_line(env, capfd):
    assert_one_line_refusal(*run_main(capfd, ["heatmaps", "--image", SAMPLE_IMAGE, "--classes", "ship", "--out",
                                              str(env / "no" / "such" / "folder" / "x.npz")]),
                            "x.npz: No such file or directory")
    assert_one_line_refusal(*run_main(capfd, ["heatmaps", "--image", str(env / "none.jpg"), "--classes", "ship",
                                              "--out", str(env / "x.npz")]), "none.jpg")
    assert_one_line_refusal(*run_main(capfd, ["heatmaps", "--device", "gpu", "--image", SAMPLE_IMAGE,
                                              "--classes", "ship", "--out", str(env / "x.npz")]), "--device gpu")
    if not torch.cuda.is_available():
        assert_one_line_refusal(*run_main(capfd, ["evaluate", "--device", "cuda"]),
                                "--device cuda: no CUDA device is available")


# ------------------------------------------------------------------------------------------ every option
SAMPLES_DIR = "surgery_core/samples/dior"
BASES = {  # a good command line of each subcommand, cheap to refuse; {tmp} is the test's folder
    "dataset": ["dataset", "--dior", SAMPLES_DIR],
    "heatmaps": ["heatmaps", "--image", SAMPLE_IMAGE, "--classes", "airplane", "--methods", "standard",
                 "--out", "{tmp}/h.npz"],
    "evaluate": ["evaluate", "--samples", "--limit", "1", "--methods", "standard", "--figures", "1",
                 "--out", "{tmp}/o", "--no-progress"],
    "report": ["report", "--samples", "--limit", "1", "--methods", "standard", "--samples-count", "1",
               "--out", "{tmp}/r.html", "--no-progress"],
    "score": ["score", "--dior", SAMPLES_DIR, "--split", "all", "--detections", "{tmp}/dets.csv"],
    "demo generate": ["demo", "generate", "--out", "{tmp}/g", "--seed", "1", "--count", "1"],
    "demo train": ["demo", "train", "--out", "{tmp}/t", "--steps", "1", "--scenes", "4", "--batch", "2"],
    "export boxes": ["export", "boxes", "{run}", "--out", "{tmp}/e", "--store", "{store}"],
    "export fiftyone": ["export", "fiftyone", "{run}", "--out", "{tmp}/e", "--store", "{store}"],
    "export grids": ["export", "grids", "{run}", "--out", "{tmp}/e", "--store", "{store}"],
    "models add": ["models", "add", "mine", "--arch", "ViT-B-32", "--checkpoint", "{tmp}/afile"],
    "runs": ["runs", "--store", "{store}"],
    "runs compare": ["runs", "compare", "{run}", "{run2}", "--store", "{store}", "--out", "{tmp}/c"],
    "runs label": ["runs", "label", "{run}", "mine", "--store", "{store}"],
    "runs rm": ["runs", "rm", "{run}", "--store", "{store}"],
}
#: Options that take free text with no value that could be wrong (a filter, a note): nothing to refuse.
FREE_TEXT = {("runs", "--dataset"), ("runs label", "--note")}
SOURCES = {"--dior", "--coco", "--samples"}  # one of a group: a case naming one drops the base's
COCO = "{tmp}/ann/instances.json"
RUN_OPTION_CASES = {  # option: (arguments, what the one line must say); for evaluate and report alike
    "--config": (["--config", "{tmp}/missing.json"], "missing.json: configuration file not found"),
    "--dior": (["--dior", "{tmp}/nodir"], "nodir: dataset root is not a directory"),
    "--coco": (["--coco", "{tmp}/no.json"], "no.json: cannot read COCO JSON"),
    "--images": (["--coco", COCO, "--images", "{tmp}/nope"], "nope: images folder of instances.json does not exist"),
    "--split": (["--split", "nope"], "unknown split 'nope'"),
    "--limit": (["--limit", "0"], "--limit 0: must be at least 1"),
    "--arch": (["--arch", "NoSuch"], "unknown architecture 'NoSuch'"),
    "--checkpoint": (["--checkpoint", "{tmp}/missing.pt"], "missing.pt: checkpoint file not found"),
    "--methods": (["--methods", "nosuch"], "--methods nosuch: unknown method(s) nosuch"),
    "--depth": (["--depth", "-1"], "--depth -1: must be at least 0"),
    "--size": (["--size", "100"], "input size 100 is not a multiple of the patch size 32"),
    "--window": (["--window", "100"], "sliding window 100 px and stride 100 px must be multiples"),
    "--stride": (["--stride", "0"], "--stride 0: must be at least 1"),
    "--percentile": (["--percentile", "150"], "--percentile 150: must be between 0 and 100"),
    "--morph-kernel": (["--morph-kernel", "4"], "--morph-kernel 4: morph_kernel must be odd"),
    "--score": (["--score", "median"], "argument --score: invalid choice: 'median'"),
    "--min-area": (["--min-area", "-1"], "--min-area -1: must be at least 0"),
    "--nms": (["--nms", "2"], "--nms 2: must be between 0 and 1"),
    "--box-resolution": (["--box-resolution", "0"], "--box-resolution 0: must be at least 1"),
    "--refine": (["--refine", "crf"], "argument --refine: invalid choice: 'crf'"),
    "--ious": (["--ious", "0.5,2"], "IoU thresholds must lie in (0, 1], got 2"),
    "--max-dets": (["--max-dets", "-1"], "--max-dets -1: must be at least 0"),
    "--protocols": (["--protocols", "closed"], "--protocols closed: must be 'present' or 'open'"),
    "--sweep-percentiles": (["--sweep-percentiles", "50,200"], "percentiles must be between 0 and 100, got 200"),
    "--figures": (["--figures", "-1"], "--figures -1: must be at least 0"),
    "--store": (["--store", "{tmp}/afile"], "afile: cannot create the run store folder"),
    "--device": (["--device", "tpu"], "--device tpu: not a device name"),
    "--workers": (["--workers", "-1"], "argument --workers: must be at least 0, got -1"),
    "--batch-size": (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    "--box-rule": (["--box-rule", "nope"], "argument --box-rule: invalid choice: 'nope'"),
    "--fixed-value": (["--fixed-value", "2"], "--fixed-value 2: must be between 0 and 1"),
    "--model": (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    "--posembed": (["--posembed", "nope"], "argument --posembed: invalid choice: 'nope'"),
}
BAD_VALUES = {
    **{("evaluate", k): v for k, v in RUN_OPTION_CASES.items()},
    ("evaluate", "--out"): (["--out", "{tmp}/afile"], "afile: File exists"),
    **{("report", k): v for k, v in RUN_OPTION_CASES.items()},
    ("report", "--out"): (["--out", "{tmp}/afile/r.html"], "afile: File exists"),
    ("report", "--zip"): (["--zip", "{tmp}/afile/r.zip"], "afile: File exists"),
    ("report", "--samples-count"): (["--samples-count", "-2"], "argument --samples-count: must be at least 0"),
    ("report", "--runs"): (["--store", "{store}", "--runs", "{run},zzzz"], "no stored run matches 'zzzz'"),
    ("report", "--runs-interp"): (["--store", "{store}", "--runs", "{run},{run2}", "--runs-interp", "nope"], "nope"),
    ("report", "--runs-iou"): (["--store", "{store}", "--runs", "{run},{run2}", "--runs-iou", "2"], "2"),
    ("report", "--runs-protocol"): (["--store", "{store}", "--runs", "{run},{run2}", "--runs-protocol", "closed"], "closed"),
    ("dataset", "--dior"): (["--dior", "{tmp}/nodir"], "nodir: dataset root is not a directory"),
    ("dataset", "--coco"): (["--coco", "{tmp}/no.json"], "no.json: cannot read COCO JSON"),
    ("dataset", "--images"): (["--coco", COCO, "--images", "{tmp}/nope"], "nope: images folder of instances.json"),
    ("dataset", "--split"): (["--split", "nope"], "unknown split 'nope'"),
    ("heatmaps", "--arch"): (["--arch", "NoSuch"], "unknown architecture 'NoSuch'"),
    ("heatmaps", "--checkpoint"): (["--checkpoint", "{tmp}/missing.pt"], "missing.pt: checkpoint file not found"),
    ("heatmaps", "--image"): (["--image", "{tmp}/afile"], "afile: not a readable image"),
    ("heatmaps", "--classes"): (["--classes", " , "], "--classes needs at least one class name"),
    ("heatmaps", "--out"): (["--out", "{tmp}/no/h.npz"], "no/h.npz: No such file or directory"),
    ("heatmaps", "--png"): (["--png", "{tmp}/afile"], "afile: File exists"),
    ("heatmaps", "--size"): (["--size", "0"], "--size 0: must be at least 32"),
    ("heatmaps", "--window"): (["--window", "-64"], "--window -64: must be at least 32"),
    ("heatmaps", "--stride"): (["--stride", "0"], "--stride 0: must be at least 1"),
    ("heatmaps", "--depth"): (["--depth", "-1"], "--depth -1: must be at least 0"),
    ("heatmaps", "--methods"): (["--methods", "nosuch"], "--methods nosuch: unknown method(s) nosuch"),
    ("heatmaps", "--device"): (["--device", "tpu"], "--device tpu: not a device name"),
    ("heatmaps", "--model"): (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    ("heatmaps", "--posembed"): (["--posembed", "nope"], "argument --posembed: invalid choice: 'nope'"),
    ("score", "--dior"): (["--dior", "{tmp}/nodir"], "nodir: dataset root is not a directory"),
    ("score", "--split"): (["--split", "nope"], "unknown split 'nope'"),
    ("score", "--detections"): (["--detections", "{tmp}/none.csv"], "none.csv: cannot read"),
    ("score", "--iou"): (["--iou", "2"], "argument --iou: IoU thresholds must lie in (0, 1]"),
    ("score", "--interp"): (["--interp", "voc12"], "argument --interp: invalid choice: 'voc12'"),
    ("score", "--json"): (["--json", "{tmp}/afile/s.json"], "afile/s.json: cannot write"),
    ("score", "--coco"): (["--coco", "{tmp}/no.json"], "no.json: cannot read COCO JSON"),
    ("score", "--images"): (["--coco", COCO, "--images", "{tmp}/nope"], "nope: images folder of instances.json"),
    **{(f"export {kind}", k): v for kind in ("boxes", "fiftyone", "grids") for k, v in {
        "--out": (["--out", "{tmp}/afile/x"], "afile"),
        "--methods": (["--methods", "nosuch"], "--methods nosuch: unknown method(s) nosuch"),
        "--store": (["--store", "{tmp}/nostore"], "no stored run matches"),
        "--device": (["--device", "tpu"], "--device tpu: not a device name"),
    }.items()},
    **{(f"export {kind}", k): v for kind in ("boxes", "fiftyone") for k, v in {
        "--box-rule": (["--box-rule", "nope"], "argument --box-rule: invalid choice: 'nope'"),
        "--fixed-value": (["--fixed-value", "2"], "--fixed-value 2: must be between 0 and 1"),
    }.items()},
    ("export boxes", "--percentile"): (["--percentile", "150"], "--percentile 150: must be between 0 and 100"),
    ("export boxes", "--protocols"): (["--protocols", "closed"], "has no protocol closed"),
    ("export fiftyone", "--percentile"): (["--percentile", "150"], "--percentile 150: must be between 0 and 100"),
    ("export fiftyone", "--protocol"): (["--protocol", "closed"], "argument --protocol: invalid choice: 'closed'"),
    ("export fiftyone", "--heatmaps"): (["--heatmaps", "nope"], "argument --heatmaps: invalid choice: 'nope'"),
    ("export grids", "--dtype"): (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    ("models add", "--arch"): (["--arch", "NoSuch"], "unknown architecture 'NoSuch'"),
    ("models add", "--checkpoint"): (["--checkpoint", "{tmp}/missing.pt"], "missing.pt: checkpoint file not found"),
    ("runs", "--store"): (["--store", "{tmp}/nostore"], "nostore: no run store here"),
    ("runs", "--method"): (["--method", "nosuch"], "--method nosuch: unknown method"),
    ("runs compare", "--out"): (["--out", "{tmp}/afile/x"], "afile"),
    ("runs compare", "--methods"): (["--methods", "nosuch"], "nosuch"),
    ("runs compare", "--protocol"): (["--protocol", "closed"], "closed"),
    ("runs compare", "--interp"): (["--interp", "nope"], "nope"),
    ("runs compare", "--iou"): (["--iou", "2"], "2"),
    ("runs compare", "--samples"): (["--samples", "-1"], "--samples -1: must be 0 or more"),
    ("runs compare", "--store"): (["--store", "{tmp}/nostore"], "no stored run matches"),
    ("runs label", "--store"): (["--store", "{tmp}/nostore"], "no stored run matches"),
    ("runs rm", "--store"): (["--store", "{tmp}/nostore"], "no stored run matches"),
    ("demo generate", "--out"): (["--out", "{tmp}/afile"], "afile: exists and is not empty; --overwrite"),
    ("demo generate", "--seed"): (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    ("demo generate", "--count"): (["--count", "0"], "argument --count: must be at least 1, got 0"),
    ("demo generate", "--size"): (["--size", "32"], "argument --size: must be at least 64, got 32"),
    ("demo train", "--out"): (["--out", "{tmp}/afile"], "afile: File exists"),
    ("demo train", "--seed"): (["--seed", "x"], "argument --seed: 'x' is not an integer"),
    ("demo train", "--scenes"): (["--scenes", "0"], "argument --scenes: must be at least 1, got 0"),
    ("demo train", "--steps"): (["--steps", "-3"], "argument --steps: must be at least 1, got -3"),
    ("demo train", "--batch"): (["--batch", "0"], "argument --batch: must be at least 1, got 0"),
    ("demo train", "--lr"): (["--lr", "0"], "argument --lr: must be above 0, got 0"),
    ("demo train", "--threads"): (["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    ("demo train", "--device"): (["--device", "tpu"], "--device tpu: not a device name"),
}


def value_options() -> set[tuple[str, str]]:
    """(subcommand, option) of every option of ``surgery`` that takes a value."""
    import argparse

    from surgery_core.cli import build_parser

    out = set()

    def walk(parser, prefix):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, prefix + [name])
            elif a.option_strings and a.nargs != 0:
                out.add((" ".join(prefix), a.option_strings[-1]))
    walk(build_parser(), [])
    return out


def test_the_walk_covers_every_option_that_takes_a_value():
    missing = sorted(value_options() - set(BAD_VALUES) - FREE_TEXT)
    assert not missing, f"add a bad value for these options to BAD_VALUES: {missing}"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> dict[str, str]:
    """A run store with two small stored runs (both have ``standard``), for the commands that name runs."""
    import contextlib

    store = tmp_path_factory.mktemp("walk-store")
    hashes = []
    for methods in ("standard", "standard,gem"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["evaluate", "--samples", "--limit", "1", "--methods", methods, "--figures", "0",
                         "--store", str(store), "--out", str(store / "out" / methods), "--no-progress"]) == 0
        hashes.append(out.getvalue().split("run ", 1)[1].split(":", 1)[0])
    return {"store": str(store), "run": hashes[0], "run2": hashes[1]}


@pytest.mark.parametrize("command,option", sorted(BAD_VALUES))
def test_every_option_with_a_bad_value_is_one_line_and_exit_2(env, capfd, command, option, two_runs):
    from tests.cli.test_trust_cli import coco_of_samples

    (env / "afile").write_text("a file where a folder or an image is expected")
    (env / "dets.csv").write_text("image_id,class,xmin,ymin,xmax,ymax,score\n00001,airplane,1,1,20,20,0.9\n")
    coco_of_samples(env / "ann")
    args, needle = BAD_VALUES[(command, option)]
    base = list(BASES[command])
    if SOURCES & set(args):  # the case names the source: the base's goes
        for k, a in enumerate(base):
            if a in SOURCES:
                del base[k:k + (1 if a == "--samples" else 2)]
                break
    argv = [a.replace("{tmp}", str(env)).replace("{store}", two_runs["store"]).replace("{run2}", two_runs["run2"])
            .replace("{run}", two_runs["run"]) for a in base + args]
    line = assert_one_line_refusal(*run_main(capfd, argv), needle.replace("{tmp}", str(env)))
    assert line.startswith(f"surgery {command}: error: "), line


def test_demo_training_refuses_fewer_scenes_than_one_batch(env, capfd):
    """Each step draws one batch of distinct scenes: fewer scenes than the batch used to end in a shape error
    deep in the loss; it is refused before anything is rendered or written."""
    out = env / "tiny"
    assert_one_line_refusal(*run_main(capfd, ["demo", "train", "--out", str(out), "--scenes", "4", "--batch", "8",
                                              "--steps", "1"]), "a batch of 8 needs at least 8 scenes, got 4")
    assert not out.exists()
