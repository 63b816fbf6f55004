"""``python -m export.install --export DIR [--dest runtime/models/default]``: ship an export's default model.

Copies the two engines ``--engine default`` runs (``runtime.engines.default.DEFAULT_MODELS``) from an
export folder (``python -m export ... --out DIR``), each with its card and its parity reference,
into the runtime package, and writes ``MANIFEST.json`` (sha256 and size of every file). LiteRT INT8
for boards; the FP32 ONNX, not the INT8 one, for ONNX Runtime (its INT8 kernels can saturate on AVX2).

Files are copied byte for byte under their new names: a card's sha256 is of the engine file, and the
card the ONNX embeds (metadata_props) holds no file name, so both stay valid. Nothing is written
unless every check passes (files and cards present, sha256 equal, the parity gate passed, sizes
within the wheel's budget); the new set then replaces the old one in one rename.
Exit 2 with one line when a check fails.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from export.formats import FORMATS
from runtime.card import ModelCard, card_path, file_sha256
from runtime.engines.default import DEFAULT_DIR
from runtime.errors import AUEdgeError, CardError
from train.cli import OneLineParser, guarded

MB = 1_000_000
MAX_INT8_TFLITE_BYTES = 3 * MB  # the LiteRT engine every board loads
MAX_TOTAL_BYTES = 15 * MB  # everything installed: it rides in every wheel
# installed name -> export artifact name (export.formats decides the latter)
SOURCES = {"au_default_int8.tflite": FORMATS["tflite-int8"].suffix, "au_default.onnx": FORMATS["onnx"].suffix}
REFERENCE_SUFFIX = ".parity.npz"  # export.parity.write_reference
REEXPORT = "re-run python -m export --out DIR with onnx,tflite-int8 in --formats"


class InstallError(AUEdgeError):
    """A check that failed: one line naming the file and the fix."""


@dataclass(frozen=True)
class Planned:
    source: Path  # in the export folder
    name: str  # in the destination


def _read_parity(export_dir: Path) -> dict[str, dict]:
    path = export_dir / "parity.json"
    if not path.is_file():
        raise InstallError(f"{path} not found: the export's parity report says whether each artifact passed; "
                           f"{REEXPORT}")
    try:
        report = json.loads(path.read_text())
        return {e["file"]: e for e in report["artifacts"]}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise InstallError(f"{path} is not an export parity report ({type(e).__name__}: {e}); {REEXPORT}") from None


def _gate_line(entry: dict) -> str:
    from export.parity import failure_line

    try:
        return failure_line(entry)
    except (KeyError, TypeError, ValueError):
        return f"parity FAILED {entry.get('file')}"


def check_engine(export_dir: Path, source_name: str, parity: dict[str, dict]) -> None:
    """Raise InstallError unless the artifact, its card (valid, same sha256) and reference are there
    and the parity gate passed for it."""
    engine = export_dir / source_name
    if not engine.is_file():
        raise InstallError(f"{engine} not found: the default model ships {', '.join(SOURCES.values())}; {REEXPORT}")
    card = card_path(engine)
    if not card.is_file():
        raise InstallError(f"model card {card} not found: every shipped engine needs its card; {REEXPORT}")
    try:
        parsed = ModelCard.from_dict(json.loads(card.read_text()), where=f"model card {card}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InstallError(f"model card {card} is not valid JSON ({e}); {REEXPORT}") from None
    except CardError as e:
        raise InstallError(str(e)) from None
    actual = file_sha256(engine)
    if parsed.sha256 != actual:
        raise InstallError(f"model card {card} has sha256 {parsed.sha256[:12]}… but {engine.name} is "
                           f"{actual[:12]}…: the card is for another engine file; {REEXPORT}")
    reference = engine.with_name(engine.name + REFERENCE_SUFFIX)
    if not reference.is_file():
        raise InstallError(f"parity reference {reference} not found (device_tests.parity checks the shipped "
                           f"engine against it); {REEXPORT}")
    entry = parity.get(source_name)
    if entry is None:
        raise InstallError(f"{export_dir / 'parity.json'} has no entry for {source_name}: it was not gated; "
                           f"{REEXPORT}")
    if entry.get("passed") is not True:
        raise InstallError(f"{_gate_line(entry)} (parity.json); not shipping a model that failed the gate")


def plan(export_dir: Path) -> list[Planned]:
    """Every file to install, all checks passed.

    Raises:
        InstallError: the first failed check, one line.
    """
    if not export_dir.is_dir():
        raise InstallError(f"export folder {export_dir} not found; {REEXPORT}")
    parity = _read_parity(export_dir)
    files: list[Planned] = []
    for name, source_name in SOURCES.items():
        check_engine(export_dir, source_name, parity)
        engine = export_dir / source_name
        for extra in ("", ".json", REFERENCE_SUFFIX):
            files.append(Planned(engine.with_name(engine.name + extra), name + extra))
    sizes = {f.name: f.source.stat().st_size for f in files}
    total, tflite = sum(sizes.values()), sizes["au_default_int8.tflite"]
    summary = (f"au_default_int8.tflite {tflite / MB:.2f} MB (limit {MAX_INT8_TFLITE_BYTES / MB:.0f} MB), "
               f"the whole set {total / MB:.2f} MB (limit {MAX_TOTAL_BYTES / MB:.0f} MB; MB = 10^6 bytes)")
    if tflite > MAX_INT8_TFLITE_BYTES or total > MAX_TOTAL_BYTES:
        raise InstallError(f"the default model is too large to ship in the wheel: {summary}; export a smaller "
                           "student (fewer parameters or a smaller input size)")
    return files


def manifest(dest: Path, files: list[Planned]) -> dict:
    """``MANIFEST.json``: sha256 and size of every installed file (read back from ``dest``)."""
    entries = {f.name: {"sha256": file_sha256(dest / f.name), "size": (dest / f.name).stat().st_size,
                        "from": f.source.name} for f in files}
    return {"files": entries, "total_size": sum(e["size"] for e in entries.values())}


def _check_dest(dest: Path) -> None:
    """Refuse a --dest that holds anything but a previous install: it is replaced as a whole."""
    ours = set(SOURCES) | {f"{n}{x}" for n in SOURCES for x in (".json", REFERENCE_SUFFIX)} | {"MANIFEST.json"}
    if dest.exists() and not dest.is_dir():
        raise InstallError(f"--dest {dest} is a file; pass a folder (default {DEFAULT_DIR})")
    foreign = sorted(p.name for p in dest.iterdir() if p.name not in ours) if dest.is_dir() else []
    if foreign:
        raise InstallError(f"--dest {dest} holds other files ({', '.join(foreign[:3])}"
                           f"{', …' if len(foreign) > 3 else ''}); the install replaces the whole folder, so pass "
                           "an empty or previously installed one")


def install(export_dir: Path, dest: Path = DEFAULT_DIR) -> dict:
    """Check, then copy into ``dest`` (replacing a previous install there); returns the manifest.

    Raises:
        InstallError: a failed check (nothing written) or a folder that cannot be written.
    """
    files = plan(Path(export_dir))
    dest = Path(dest)
    _check_dest(dest)
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    staging = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
        for f in files:
            shutil.copyfile(f.source, staging / f.name)  # bytes only: the card's sha256 stays true
        data = manifest(staging, files)
        (staging / "MANIFEST.json").write_text(json.dumps(data, indent=2) + "\n")
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a package folder is readable by all
        moved = dest.exists()
        if moved:
            os.replace(dest, old)
        try:
            os.replace(staging, dest)
        except OSError:
            if moved:
                os.replace(old, dest)
            raise
    except OSError as e:
        raise InstallError(f"cannot write {dest}: {e.strerror or e}; pass a writable --dest") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return data


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m export.install", description=__doc__.splitlines()[0])
    p.add_argument("--export", required=True, type=Path, help="folder written by python -m export --out DIR")
    p.add_argument("--dest", type=Path, default=DEFAULT_DIR, help=f"default: {DEFAULT_DIR}")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    data = install(args.export, args.dest)
    for name, e in data["files"].items():
        print(f"  {name:34s} {e['size'] / MB:7.3f} MB  sha256 {e['sha256'][:12]}…  (from {e['from']})")
    print(f"installed {len(data['files'])} files, {data['total_size'] / MB:.3f} MB, into {args.dest} "
          f"(with MANIFEST.json); commit that folder to ship it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
