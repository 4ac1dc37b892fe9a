"""Command line: ``python -m deepmt COMMAND ...`` (``python -m deepmt COMMAND --help`` explains each).

Each command lives in the module that owns it; that module exposes ``add_arguments(parser)``
and ``run(args) -> int``. This file only wires them together, importing lazily so that
``--help`` is fast and one broken optional part does not break the others.

:func:`main` is the one error boundary: a :class:`deepmt.errors.DeepMTError`, and an ``OSError`` of the
file system (disk full, read-only or missing folder, a file in the way), are printed as one line
``error: ...`` naming the path, with exit status 1; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from deepmt.errors import DeepMTError, describe_os_error

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("deepmt.data.commands", "make the synthetic benchmark (synth) or validate a real dataset root (check)"),
    "train": ("deepmt.commands", "train DeepMT-DR or a baseline under a profile"),
    "evaluate": ("deepmt.commands", "evaluate a checkpoint on a dataset split"),
    "predict": ("deepmt.commands", "super-resolve, segment and grade fundus photos with a checkpoint"),
    "bench": ("deepmt.bench", "measure training/inference speed against this machine's peak"),
    "plan": ("deepmt.bench.plan_command", "predict how long the notebooks' grid of trainings takes here, before training"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepmt",
        description="DeepMT-DR replication: LR fundus photo -> super-resolution -> lesion segmentation -> DR grade.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module, _command=name)
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # part not installed / not built yet
            p.set_defaults(_unavailable=str(exc))
            continue
        adder = getattr(mod, f"add_{name}_arguments", None) or getattr(mod, "add_arguments")
        adder(p)
    return parser


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line ``warning: ...`` on stderr, without Python's source line and location."""
    print(f"warning: {_one_line(str(message))}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(f"deepmt {args.command}: not available ({args._unavailable})", file=sys.stderr)
        return 2
    mod = importlib.import_module(args._module)
    runner = getattr(mod, f"run_{args._command}", None) or getattr(mod, "run")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # restored on leaving
            return int(runner(args) or 0)
    except DeepMTError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:  # the file system refused: disk full, read-only folder, ...
        print(f"error: {_one_line(describe_os_error(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
