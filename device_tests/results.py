"""How every device test ends: its JSON written where asked, and the exit code of its verdict."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(res: dict[str, Any], json_path: str | None) -> None:
    """A device test's result as JSON at ``json_path`` (its folder made), when one is given."""
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res, indent=2) + "\n")


def finish(res: dict[str, Any], json_path: str | None, line: str) -> int:
    """Write ``res`` to ``json_path`` (when given), print the one-line verdict, 0 if passed else 1."""
    write_json(res, json_path)
    print(line)
    return 0 if res["passed"] else 1
