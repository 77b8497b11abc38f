"""The second ``surgery evaluate`` in a fresh process spends no time on text: its class features come from the
disk cache, the text encoder is never called, and the results are the same bytes (issue #27 item 3)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

ARGS = ["evaluate", "--no-progress", "--limit", "6", "--figures", "0", "--device", "cpu"]
RESULTS = ("map_results.json", "sweep_results.json")


def test_second_evaluate_encodes_no_text(tmp_path, demo_env):
    env = {**demo_env, "SURGERY_CACHE": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-m", "surgery_core", *ARGS, "--store", str(tmp_path / "s1"),
                            "--out", str(tmp_path / "o1")], cwd=REPO, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert list((tmp_path / "cache" / "text-features").glob("*/*.npy"))
    # A fresh process and a fresh store (so every heatmap is computed again), the text encoder made to fail.
    guarded = textwrap.dedent("""
        import sys
        import surgery_core.model.text as text
        def refuse(*args, **kwargs):
            raise SystemExit("the text encoder was called")
        text.encode_names = refuse
        from surgery_core.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    second = subprocess.run([sys.executable, "-c", guarded, *ARGS, "--store", str(tmp_path / "s2"),
                             "--out", str(tmp_path / "o2")], cwd=REPO, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    for name in RESULTS:
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes(), name
