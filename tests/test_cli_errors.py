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
from test_models import _lying_safetensors, _zip_without_torch

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
    assert_one_line_refusal(*run_main(capfd, ["report", "--samples-count", "-1"]), "--samples-count -1")


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
