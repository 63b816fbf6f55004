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


def number(kind: type, lo: float, lo_open: bool = False, what: str = "", hi: float | None = None,
           why: str = "") -> Callable[[str], float]:
    """An argparse ``type``: ``kind`` (int | float), finite, >= lo (> lo when ``lo_open``), <= hi when given.

    ``what`` is appended to the too-small message (e.g. ``" (CPU threads for inference)"``), ``why`` to the
    too-large one (the reason for the bound).
    """
    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < lo or (lo_open and value == lo):
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {'>' if lo_open else '>='} "
                                             f"{kind(lo)}{what}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be <= {kind(hi)}{why}")
        return value
    parse.__name__ = kind.__name__
    return parse


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


THREADS_PER_CORE = 2
INT64_MAX = 2 ** 63 - 1


def threads_option() -> Callable[[str], float]:
    """``--threads``: 1 ..  THREADS_PER_CORE x the usable cores (LiteRT and ONNX Runtime start one OS
    thread per requested thread in every model: 1000 made 3,005 threads and a load of ~940 here)."""
    cores = usable_cores()
    return number(int, 1, what=" (CPU threads for inference)", hi=THREADS_PER_CORE * cores,
                  why=f" ({THREADS_PER_CORE} per CPU core, and this process may use {cores}: more inference threads "
                  "than cores only wait on each other and make every frame slower)")


# The bounded numeric options every command shares (argparse ``type``s): one definition each.
MAX_FACES = number(int, 1, hi=256, why=" (each face costs one AU inference per frame)")
MAX_FRAMES = number(int, 1, hi=INT64_MAX, why=" (a 64-bit count)")
DETECT_EVERY = number(int, 0, hi=10_000, why=" (use 0 to run the detector only while a face is missing)")
MESH_EVERY = number(int, 1, hi=1000, why=" (1: the face mesh on every frame; N: flow follows the face between)")
CALIBRATE_NEUTRAL_S = number(float, 0, hi=3600.0, why=" (seconds: at most an hour of each track's start)")
# The benchmarks' and the export's counts.
TIMED_RUNS = number(int, 1, hi=10_000_000, why=" (timed inferences)")
BATCH = number(int, 1, hi=256, why=" (faces per inference)")
REPEATS = number(int, 1, hi=1000, why=" (alternations of ours and the peer)")
FRAME_COUNT = number(int, 0, hi=INT64_MAX, why=" (a 64-bit count)")
CROPS = number(int, 1, hi=10_000_000, why=" (cached crops)")


def run_command(parser: argparse.ArgumentParser, run: Callable[..., int], argv: Sequence[str] | None = None,
                prog: str | None = None) -> int:
    """A subcommand's ``main``: parse ``argv`` (``prog`` names it as ``au-edge X`` does) and run it guarded."""
    if prog:
        parser.prog = prog
    return guarded(run, parser.parse_args(argv))


def guarded(run: Callable[..., int], *args, **kwargs) -> int:
    """``run(*args, **kwargs)`` as a command's body: its exit code, or an expected fault as one line.

    Ctrl-C and SIGTERM reach the body as ``KeyboardInterrupt`` / ``Terminated`` (``runtime.interrupts``);
    one that escapes it ends with 130 / 143. ``AUEdgeError`` and ``ValueError`` (bad option values caught
    by the constructors) are printed by ``print_error`` and end with exit 2.
    """
    from runtime.interrupts import exit_code, handled

    # FFmpeg's and OpenCV's own log lines ("moov atom not found", "Failed to write frame") would come before
    # our one-line error, which says the same with the fix; setting either variable yourself keeps them.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
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
    "batch": Command("runtime.batch.command", "folders of recordings to JSONL + CSV on every core or a Ray cluster"),
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
