"""Subcommand groups of the ``surgery`` command line, one module each (a client layer, like ``cli``).

``cli.build_parser`` imports every module named in ``MODULES`` and calls its ``add_parser(sub)`` with the
top-level subparsers; the module adds its subcommand (and its own subcommands) and sets ``func`` on each, a
callable ``(args) -> exit code``. Shared option groups and helpers (run arguments, progress, opening a run)
stay in ``surgery_core.cli`` and are imported from there. Keeping each group in its own module keeps
``cli.py`` small and lets groups be added without touching each other.
"""

#: Module names under ``surgery_core.commands``, in the order their subcommands appear in ``surgery --help``.
MODULES: tuple[str, ...] = ("dataset", "score", "models", "export", "runs", "demo")
