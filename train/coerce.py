"""The one config loader: a mapping (YAML or ``key=value`` text) onto a config dataclass.

Used by every config class (``TrainConfig``, ``TeacherConfig``, ``StudentConfig``), so all accept
and reject the same spellings: unknown keys with the closest known one, ``true/false/yes/no/on/off/1/0``
for booleans, no booleans for numbers, no fractional value for an integer, comma-separated text
for a list, quoted numbers (``temperature: "2"``) as numbers. Values are then validated by the
class's ``__post_init__``; every fault is a one-line ``ValueError`` naming the key.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

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


def config_from_dict(cls: type[T], raw: Mapping[str, Any] | None, section: str = "", source: str = "") -> T:
    """``cls(**raw)`` with every value coerced to its field's type (the type of its default).

    Args:
        cls: a dataclass whose fields all have defaults and whose ``__post_init__`` validates.
        raw: the mapping (None = all defaults).
        section: the key prefix errors name (``"model"`` -> ``model.temperature``).
        source: where the mapping came from (a config file), prefixed to errors.

    Raises:
        ValueError: an unknown key (with the closest known one), a wrong type or a bad value.
    """
    raw = dict(raw or {})
    where = f"{source}: " if source else ""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}unknown {cls.__name__} key {key!r}{hint}; known: {sorted(fields)}")
    defaults = cls()
    values = {k: coerce(v, getattr(defaults, k), f"{where}{section + '.' if section else ''}{k}")
              for k, v in raw.items()}
    return cls(**values)


class SectionConfig:
    """A mixin for dataclass config sections (a YAML ``model:``): ``from_dict`` with the one loader."""

    @classmethod
    def from_dict(cls: type[T], raw: Mapping[str, Any] | None, where: str = "model") -> T:
        """Build from a plain mapping (a YAML section) with the one config loader.

        Raises:
            ValueError: an unknown key (with the closest known one), a wrong type or a bad value.
        """
        return config_from_dict(cls, raw, section=where)
