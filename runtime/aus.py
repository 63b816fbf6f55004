"""The FACS action unit catalog: the single source of AU names, labels, regions and AU sets.

Names are ``AU01``-style (two digits) everywhere in au-edge: model cards, JSONL, CSV, metrics.
``centre_mesh`` lists MediaPipe face-mesh landmark indices (valid for the 468- and 478-point
meshes) whose positions mark where the AU acts, one entry per side (or one for midline AUs); the
teacher pools AU regions around them and the synthetic warps displace around them. They are
approximate anatomical anchors, not part of FACS.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionUnit:
    number: int
    label: str
    region: str  # brow | eye | nose | cheek | mouth | chin | jaw
    centre_mesh: tuple[int, ...]

    @property
    def name(self) -> str:
        return au_name(self.number)


def au_name(number: int) -> str:
    """``12`` -> ``"AU12"``."""
    return f"AU{int(number):02d}"


def au_number(name: str | int) -> int:
    """``"AU12"``, ``"AU_12"``, ``"au12"``, ``"12"`` or ``12`` -> ``12``.

    Raises:
        ValueError: the value names no AU in the catalog.
    """
    if isinstance(name, int):
        number = name
    else:
        text = str(name).strip().upper().replace("AU", "").replace("_", "").strip()
        if not text.isdigit():
            raise ValueError(f"not an AU name: {name!r} (expected e.g. 'AU12')")
        number = int(text)
    if number not in CATALOG:
        raise ValueError(f"AU{number} is not in the au-edge catalog (runtime/aus.py)")
    return number


_AUS = [
    ActionUnit(1, "Inner brow raiser", "brow", (107, 336)),
    ActionUnit(2, "Outer brow raiser", "brow", (70, 300)),
    ActionUnit(4, "Brow lowerer", "brow", (55, 285)),
    ActionUnit(5, "Upper lid raiser", "eye", (159, 386)),
    ActionUnit(6, "Cheek raiser", "cheek", (118, 347)),
    ActionUnit(7, "Lid tightener", "eye", (145, 374)),
    ActionUnit(9, "Nose wrinkler", "nose", (198, 420)),
    ActionUnit(10, "Upper lip raiser", "mouth", (37, 267)),
    ActionUnit(11, "Nasolabial deepener", "cheek", (206, 426)),
    ActionUnit(12, "Lip corner puller", "mouth", (61, 291)),
    ActionUnit(14, "Dimpler", "mouth", (212, 432)),
    ActionUnit(15, "Lip corner depressor", "mouth", (146, 375)),
    ActionUnit(16, "Lower lip depressor", "mouth", (84, 314)),
    ActionUnit(17, "Chin raiser", "chin", (199,)),
    ActionUnit(18, "Lip pucker", "mouth", (0, 17)),
    ActionUnit(20, "Lip stretcher", "mouth", (57, 287)),
    ActionUnit(22, "Lip funneler", "mouth", (0, 17)),
    ActionUnit(23, "Lip tightener", "mouth", (0, 17)),
    ActionUnit(24, "Lip pressor", "mouth", (13, 14)),
    ActionUnit(25, "Lips part", "mouth", (13, 14)),
    ActionUnit(26, "Jaw drop", "jaw", (17, 200)),
    ActionUnit(27, "Mouth stretch", "jaw", (17, 152)),
    ActionUnit(28, "Lip suck", "mouth", (13, 14)),
    ActionUnit(43, "Eyes closed", "eye", (159, 386)),
    ActionUnit(45, "Blink", "eye", (159, 386)),
]
CATALOG: dict[int, ActionUnit] = {au.number: au for au in _AUS}


def names(numbers: list[int] | tuple[int, ...]) -> list[str]:
    return [au_name(n) for n in numbers]


# AU sets as the benchmarks code and the literature evaluates them.
BP4D_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_CODED_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
DISFA_AUS = (1, 2, 4, 6, 9, 12, 25, 26)  # the usual 8 for evaluation
AFFWILD2_AUS = (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)
GFT_AUS = (1, 2, 4, 6, 10, 12, 14, 15, 23, 24)  # the 10 AUs used in the GFT literature
DEFAULT_MODEL_AUS = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)

DATASET_AUS: dict[str, tuple[int, ...]] = {
    "bp4d": BP4D_AUS,
    "disfa": DISFA_AUS,
    "disfa_coded": DISFA_CODED_AUS,
    "affwild2": AFFWILD2_AUS,
    "gft": GFT_AUS,
    "default": DEFAULT_MODEL_AUS,
}
