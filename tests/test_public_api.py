"""The public API: one import place for the dashboard and a notebook user."""

import subprocess
import sys

import surgery_core


def test_every_public_name_resolves_to_its_definition():
    for name in surgery_core.__all__:
        value = getattr(surgery_core, name)
        if name != "__version__" and hasattr(value, "__module__") and callable(value):
            # defined where _API says, not re-exported from somewhere else
            assert value.__module__ == surgery_core._API[name], name


def test_importing_the_package_or_a_light_name_loads_no_torch():
    code = ("import sys, surgery_core\n"
            "from surgery_core import RunConfig, Detections, evaluate, BoxParams, METHODS\n"
            "RunConfig().run_hash\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'open_clip', 'streamlit')))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_unknown_names_raise_attribute_error():
    try:
        surgery_core.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")
