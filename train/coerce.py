"""One type-checked coercion of config values (YAML or ``key=value`` text) to a field's type.

Used by ``TrainConfig`` (run options) and ``TeacherConfig`` (model options), so both accept and
reject the same spellings: ``true/false/yes/no/on/off/1/0`` for booleans, no booleans for numbers,
no fractional value for an integer, comma-separated text for a list.
"""
from __future__ import annotations

from typing import Any

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def coerce(value: Any, default: Any, where: str) -> Any:
    """``value`` as the type of ``default``.

    Raises:
        ValueError: naming ``where``, the expected type and the value.
    """
    typ = type(default)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE + FALSE:
            return value.lower() in TRUE
        raise ValueError(f"{where}: expected a boolean, got {value!r}")
    if typ in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{where}: expected {typ.__name__}, got {value!r}")
        try:
            out = typ(value)
        except ValueError:
            raise ValueError(f"{where}: expected {typ.__name__}, got {value!r}") from None
        if typ is int and isinstance(value, float) and out != value:
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return out
    if typ in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return typ(value)
    if typ is dict and not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    if not isinstance(value, typ):  # config errors are ValueErrors throughout
        raise ValueError(f"{where}: expected {typ.__name__}, got {value!r}")  # noqa: TRY004
    return value
