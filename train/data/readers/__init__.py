"""AU benchmark readers: a table of dataset name -> reader, one small module per dataset.

Every reader is ``read(root, **options) -> ReadResult`` (records, AU list, counted skips); the
error/skip policy they share is in ``common``. ``read_dataset`` picks one by name and rejects
unknown names and options with the list of known ones.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from functools import partial
from pathlib import Path

from train.data.readers import affwild2, bp4d, csv_manifest, disfa, gft
from train.data.readers.common import DatasetError
from train.data.records import FrameRecord, ReadResult

Reader = Callable[..., ReadResult]

READERS: dict[str, Reader] = {
    "bp4d": bp4d.read,
    "bp4dplus": partial(bp4d.read, dataset="bp4dplus"),  # BP4D+: same layout, other subjects
    "disfa": disfa.read,
    "affwild2": affwild2.read,
    "gft": gft.read,
    "manifest": csv_manifest.read,
}


def read_dataset(name: str, root: str | Path, **options) -> ReadResult:
    """Read dataset ``name`` under ``root`` with reader ``options`` (see each reader's ``read``).

    Raises:
        DatasetError: an unknown dataset name or option, or anything the reader raises.
    """
    reader = READERS.get(name)
    if reader is None:
        close = difflib.get_close_matches(name, READERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DatasetError(f"dataset {name!r} has no reader; {hint}known: {', '.join(READERS)}")
    known = [p for p in inspect.signature(reader).parameters if p != "root"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DatasetError(f"{name} reader: unknown option(s) {unknown}; known: {', '.join(known)}")
    return reader(root, **options)


__all__ = ["READERS", "DatasetError", "FrameRecord", "ReadResult", "read_dataset"]
