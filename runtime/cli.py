"""What every au-edge command line shares: the one-line argument parser, number options, the guarded
``main`` (expected faults as one line, exit codes), and the sub-command dispatcher.

``COMMANDS`` is the runtime's own table (``python -m runtime COMMAND``); the ``au-edge`` console script
(``au_edge_cli``) adds the commands of the packages above the runtime to it. A new runtime command is one
entry here: ``"name": Command("runtime.module", "one-line help")``, where the module has
``main(argv, prog=None) -> int`` (``prog`` optional).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runtime.errors import AUEdgeError, print_error


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``au-edge: error: ...``) and exit 2, no usage block."""

    def error(self, message: str):
        self.exit(print_error(f"{message} (see {self.prog} --help)"))


def number(kind: type, lo: float, lo_open: bool = False, what: str = "") -> Callable[[str], float]:
    """An argparse ``type``: ``kind`` (int | float), finite, >= lo (> lo when ``lo_open``).

    ``what`` is appended to the out-of-range message (e.g. ``" (CPU threads for inference)"``).
    """
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < lo or (lo_open and value == lo):
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {'>' if lo_open else '>='} "
                                             f"{kind(lo)}{what}")
        return value
    parse.__name__ = kind.__name__
    return parse


def guarded(run: Callable[..., int], *args, **kwargs) -> int:
    """``run(*args, **kwargs)`` as a command's body: its exit code, or an expected fault as one line.

    Ctrl-C and SIGTERM reach the body as ``KeyboardInterrupt`` / ``Terminated`` (``runtime.interrupts``);
    one that escapes it ends with 130 / 143. ``AUEdgeError`` and ``ValueError`` (bad option values caught
    by the constructors) are printed by ``print_error`` and end with exit 2.
    """
    from runtime.interrupts import exit_code, handled

    # FFmpeg's own log lines ("moov atom not found") would come before our one-line error.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        with handled():
            return int(run(*args, **kwargs) or 0)
    except (AUEdgeError, ValueError) as e:
        return print_error(e)
    except KeyboardInterrupt as e:
        return exit_code(e)


# --- sub-commands ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One sub-command: the module whose ``main`` runs it (imported only then) and its help line."""

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "camera": Command("runtime.camera", "live AU detection from a camera, file, folder, URL or gst: pipeline"),
    "ros2": Command("runtime.ros2.node", "live ROS 2 node: REP-155 face topics (needs a sourced ROS 2)"),
}


def usage(commands: Mapping[str, Command], prog: str) -> str:
    from runtime import __version__

    lines = [f"au-edge {__version__}: facial action units on the edge", "", f"usage: {prog} COMMAND [options]",
             f"       {prog} --version", "", "commands:"]
    lines += [f"  {name:<9} {cmd.help}" for name, cmd in commands.items()]
    lines += ["", f"{prog} COMMAND --help shows a command's options."]
    return "\n".join(lines)


def dispatch(commands: Mapping[str, Command], argv: Sequence[str] | None = None, prog: str = "au-edge",
             elsewhere: str = "") -> int:
    """Run ``prog COMMAND [options]``: ``--help``, ``--version``, or the command's ``main(options)``.

    ``elsewhere`` ends the unknown-command line (where other commands are, e.g. ``"au-edge --help"``).

    Returns:
        The command's exit code; 2 with one line for an unknown command, 0 for ``--help``/``--version``.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(commands, prog))
        return 0 if argv else 2
    if argv[0] == "--version":
        from runtime import __version__

        print(f"au-edge {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        more = f"; {elsewhere}" if elsewhere else ""
        return print_error(f"unknown command {name!r}; use one of {', '.join(commands)} ({prog} --help{more})")
    main = importlib.import_module(commands[name].module).main
    takes_prog = "prog" in inspect.signature(main).parameters
    return int((main(rest, prog=f"{prog} {name}") if takes_prog else main(rest)) or 0)
