"""``python -m runtime COMMAND ...``: the runtime's own commands (``runtime.cli.COMMANDS``).

The ``au-edge`` console script (``au_edge_cli``) runs these and the board checks above the runtime;
prefer it in scripts and services: it imports the installed au-edge, so a ``runtime/`` folder in the
working directory cannot shadow it (``python -m`` puts the working directory first on ``sys.path``).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from runtime.cli import COMMANDS, dispatch


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(COMMANDS, argv, prog="python -m runtime", elsewhere="the board checks: au-edge --help")


if __name__ == "__main__":
    sys.exit(main())
