"""``au-edge COMMAND ...``: the console script, one table of every command of every package.

It sits above all the packages (runtime <- train <- distill <- export <- device_tests), so it may
name any of them while the runtime names none above itself: the runtime's commands come from
``runtime.cli.COMMANDS``, the board checks from ``device_tests``. A new command is one table entry,
``"name": Command("package.module", "one-line help")``: in ``runtime.cli.COMMANDS`` for a runtime
command (then ``python -m runtime name`` runs it too), here for anything else.
"""
from __future__ import annotations

from collections.abc import Sequence

from runtime.cli import COMMANDS as RUNTIME_COMMANDS
from runtime.cli import Command, dispatch

COMMANDS: dict[str, Command] = {
    **RUNTIME_COMMANDS,
    "bench": Command("device_tests.bench", "latency of one AU engine"),
    "pipeline": Command("device_tests.pipeline", "end-to-end fps and per-stage ms, next to MediaPipe"),
    "stages": Command("device_tests.stages", "each part of a frame timed alone, on a clip's faces"),
    "parity": Command("device_tests.parity", "an engine's outputs against its exported reference"),
    "soak": Command("device_tests.soak", "memory and latency drift over many frames"),
    "jitter": Command("device_tests.jitter", "AU-probability jitter on a clip, smoothing on and off"),
    "report": Command("device_tests.report", "the JSON results as one markdown report"),
    "facts": Command("device_tests.sysinfo", "what this board is (CPU, Jetson/Raspberry Pi facts), read only"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """``au-edge COMMAND [options]`` (see ``runtime.cli.dispatch``)."""
    return dispatch(COMMANDS, argv, prog="au-edge")
