"""The package layers, read from the code's own imports: runtime <- train <- distill <- export <-
device_tests, demo on the runtime only. A package imports only packages below it, static imports
and module names handed to importlib as strings alike; the runtime never imports torch; no source
file is over 500 lines."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BELOW = {  # what each package may import (itself included)
    "runtime": {"runtime"},
    "demo": {"runtime", "demo"},
    "train": {"runtime", "train"},
    "distill": {"runtime", "train", "distill"},
    "export": {"runtime", "train", "distill", "export"},
    "device_tests": {"runtime", "train", "distill", "export", "device_tests"},
    # the ``au-edge`` console script's dispatcher: above every layer, so it sees every command
    "au_edge_cli": {"runtime", "train", "distill", "export", "device_tests", "demo", "au_edge_cli"},
}
MODULE_NAME = re.compile(r"^(%s)\.[A-Za-z_][\w.]*$" % "|".join(BELOW))  # "device_tests.bench" in a string
MAX_LINES = 500


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of ``path`` and every string that names one of our modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            found.append((node.lineno, node.value))
    return found


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_every_package_imports_only_downwards():
    upward = [f"{path.relative_to(REPO)}:{line} {package} -> {module}"
              for package, allowed in BELOW.items() for path in sources(package)
              for line, module in imported_modules(path)
              if module.split(".")[0] in BELOW and module.split(".")[0] not in allowed]
    assert not upward, "imports that run upwards:\n" + "\n".join(upward)


def test_every_package_has_its_layer():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(BELOW), f"give {sorted(packages - set(BELOW))} a layer in BELOW"


def test_the_runtime_never_imports_torch():
    torch = [f"{path.relative_to(REPO)}:{line} {module}" for path in sources("runtime")
             for line, module in imported_modules(path) if module.split(".")[0] == "torch"]
    assert not torch, torch


def test_no_source_file_is_over_500_lines():
    long = [f"{path.relative_to(REPO)} ({n})" for package in BELOW for path in sources(package)
            if (n := path.read_text().count("\n")) > MAX_LINES]
    assert not long, long


def test_the_walk_sees_importlib_strings_and_lazy_imports(tmp_path):
    """The check itself: a string naming a module and an import inside a function both count."""
    f = tmp_path / "m.py"
    f.write_text("import importlib\n\ndef f():\n    from export.run import export\n"
                 "    return importlib.import_module('device_tests.bench')\n")
    assert imported_modules(f) == [(1, "importlib"), (4, "export.run"), (5, "device_tests.bench")]
