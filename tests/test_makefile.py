"""The Makefile's set-up logic, run by the real ``make`` (dry runs and the venv step's first line only:
nothing is installed): which Python a new venv gets, the one line without one, what the stamp covers."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def make(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"PATH": path} if path else {})}
    for key in ("PYTHON", "MAKELEVEL", "MAKEFLAGS", "MFLAGS"):  # run as a user would, also under `make test`
        env.pop(key, None)
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def variable(name: str, *args: str, cwd: Path = ROOT) -> str:
    """A simply expanded variable's value (``PYTHON=x``: no Python lookup for this)."""
    proc = subprocess.run(["make", "-p", "-n", "demo-venv", "PYTHON=x", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)
    return re.search(rf"^{name} := (.*)$", proc.stdout, re.MULTILINE).group(1)


def chosen(venv: Path, *args: str, path: str | None = None) -> str:
    """The Python the venv step would create ``venv`` with (a dry run: nothing is created)."""
    proc = make("-n", "demo-venv", f"DEMO_VENV={venv}", *args, path=path)
    return re.search(rf"creating {re.escape(str(venv))} with (\S+) ", proc.stdout).group(1)


def test_a_new_venv_takes_the_first_python_of_at_least_3_10_and_says_which(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3.12").symlink_to(sys.executable)  # a Python >= 3.10 under another name
    old = fake / "python3.9"
    old.write_text("#!/bin/sh\nexit 1\n")  # a Python that is too old (or a pyenv shim that does not run)
    old.chmod(0o755)
    path = f"{fake}:{os.environ['PATH']}"
    tried = "PYTHON_CANDIDATES=python3.9 python3.12 python3.11"
    assert chosen(tmp_path / "v", tried, path=path) == "python3.12"
    assert chosen(tmp_path / "v", "PYTHON=/opt/py/bin/python3") == "/opt/py/bin/python3"  # given: kept
    assert not (tmp_path / "v").exists()


def test_without_a_python_3_10_the_venv_step_is_one_line(tmp_path):
    for args, words in ((["PYTHON_CANDIDATES=python3.9-absent python2-absent"], "no Python >= 3.10 found"),
                        (["PYTHON=python3.9-absent"], "PYTHON=python3.9-absent is not a Python >= 3.10")):
        proc = make("demo-venv", f"DEMO_VENV={tmp_path / 'v'}", *args)
        assert proc.returncode == 2
        lines = [line for line in proc.stderr.splitlines() if not line.startswith("make: ***")]
        assert len(lines) == 1 and words in lines[0] and "3.11" in lines[0], proc.stderr
        assert not (tmp_path / "v").exists()


def test_the_venv_stamp_covers_pyproject_and_the_extras(tmp_path):
    stamp = variable("STAMP")
    assert variable("STAMP", "VENV_EXTRAS=runtime,dev") != stamp
    assert variable("DEMO_STAMP", "DEMO_EXTRAS=demo,ros") != variable("DEMO_STAMP")
    # the same pyproject.toml and extras in another checkout give the same stamp; another pyproject does not
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "Makefile", copy)
    shutil.copy(ROOT / "pyproject.toml", copy)
    assert variable("STAMP", cwd=copy) == stamp
    with open(copy / "pyproject.toml", "a") as f:
        f.write("\n# a new dependency somewhere\n")
    assert variable("STAMP", cwd=copy) != stamp
