"""The >>> examples of ``surgery_core/`` (``--doctest-modules``) run with the tests' isolation: cache (text features
included) and run store in a temporary folder, never in ``~`` (the fixtures are the tests' own)."""

from tests.conftest import _isolated_cache, demo_env  # noqa: F401  (session fixtures; _isolated_cache is autouse)
