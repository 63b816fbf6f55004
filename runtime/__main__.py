"""``au-edge COMMAND ...`` (console script) and ``python -m runtime COMMAND ...``: one entry point.

The console script is the form to document for users: it imports the installed au-edge, so a
``runtime/`` folder or a ``train.py`` in the working directory cannot shadow it (``python -m``
puts the working directory first on ``sys.path``).

Commands: ``camera`` (= ``python -m runtime.camera``), and the board checks ``bench``, ``pipeline``,
``parity``, ``soak``, ``report``, ``facts`` (= ``python -m device_tests.<name>``).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "camera": ("runtime.camera", "live AU detection from a camera, file, folder, URL or gst: pipeline"),
    "bench": ("device_tests.bench", "latency of one AU engine"),
    "pipeline": ("device_tests.pipeline", "end-to-end fps and per-stage ms, next to MediaPipe"),
    "parity": ("device_tests.parity", "an engine's outputs against its exported reference"),
    "soak": ("device_tests.soak", "memory and latency drift over many frames"),
    "jitter": ("device_tests.jitter", "AU-probability jitter on a clip, smoothing on and off"),
    "report": ("device_tests.report", "the JSON results as one markdown report"),
    "facts": ("device_tests.sysinfo", "what this board is (CPU, Jetson/Raspberry Pi facts), read only"),
}


def usage() -> str:
    from runtime import __version__

    lines = [f"au-edge {__version__}: facial action units on the edge", "", "usage: au-edge COMMAND [options]",
             "       au-edge --version", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "au-edge COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from runtime import __version__

        print(f"au-edge {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"au-edge: error: unknown command {name!r}; use one of {', '.join(COMMANDS)} (au-edge --help)",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    if name == "camera":
        return int(module.main(rest, prog="au-edge camera") or 0)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
