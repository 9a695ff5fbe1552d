"""Every data set's rhythm label mapped onto the CinC 2017 classes N, A, O, ``~``.

The task is CinC 2017's: N normal sinus rhythm, A atrial fibrillation or flutter, O any other rhythm,
``~`` too noisy to classify. The 12-lead sets never say "noisy", so they only ever map into N/A/O.

| source | source label | class | why |
| --- | --- | --- | --- |
| cinc2017 ``REFERENCE.csv`` | ``N``, ``A``, ``O``, ``~`` | same | the task's own labels (v3) |
| ptbxl_z, ptbxl100 ``rhythm`` | ``AF`` | A | AFIB (ptbxl100 also files AFLT here) |
| | ``SR`` | N | sinus rhythm statement, whatever the morphology (blocks, infarcts stay N) |
| | ``OTHER`` | O | SARRH, STACH, SBRAD, PACE, SVTAC, BIGU, ... (ptbxl_z files AFLT-only here) |
| ludb ``Rhythms`` (first line) | ``Atrial fibrillation``, ``Atrial flutter...`` | A | |
| | ``Sinus rhythm`` | N | |
| | anything else (sinus brady-/tachycardia, sinus arrhythmia, ...) | O | as PTB-XL's SBRAD/STACH |
| cinc2021 ``rhythm_nao`` | ``A``, ``N``, ``O`` | same | AF 164889003, flutter 164890007 -> A; |
| | | | sinus 426783006 -> N (the folder's own column) |
| cpsc2018 ``First_label`` | 1 Normal -> N, 2 AF -> A, 3-9 -> O | | as ``wfdb12.load_cpsc2018`` does |

Sinus brady- and tachycardia go to O because PTB-XL's rhythm column puts them outside SR; CinC 2017's
annotators were not given a rule for them, so this is a choice, written down here so that every reader
of a 12-lead set uses the same one.
"""

from __future__ import annotations

from ecgmon.errors import DataError
from models.interfaces import CLASSES

_PTBXL = {"AF": "A", "SR": "N", "OTHER": "O"}


def class_index(label: str) -> int:
    """Index of a CinC 2017 class label (``N``, ``A``, ``O``, ``~``) in ``CLASSES``."""
    try:
        return CLASSES.index(label)
    except ValueError:
        raise DataError(f"Unknown rhythm class {label!r}; expected one of {', '.join(CLASSES)}.") from None


def cinc2017_label(label: str) -> str:
    """CinC 2017 REFERENCE label, checked."""
    label = label.strip()
    class_index(label)
    return label


def ptbxl_label(rhythm: str) -> str:
    """PTB-XL rhythm column (``AF``, ``SR``, ``OTHER``) -> ``A``, ``N``, ``O``."""
    try:
        return _PTBXL[rhythm.strip().upper()]
    except KeyError:
        raise DataError(f"Unknown PTB-XL rhythm {rhythm!r}; expected AF, SR or OTHER.") from None


def ludb_label(rhythms: str) -> str:
    """LUDB ``Rhythms`` text (first line decides) -> ``A``, ``N`` or ``O``."""
    first = rhythms.strip().splitlines()[0].strip().lower() if rhythms.strip() else ""
    if not first:
        raise DataError("An LUDB record has an empty Rhythms field; its class cannot be known.")
    if first.startswith("atrial fibrillation") or first.startswith("atrial flutter"):
        return "A"
    if first == "sinus rhythm":
        return "N"
    return "O"


def nao_label(label: str) -> str:
    """CinC 2021 ``rhythm_nao`` or the CPSC 2018 loader's mapped label (``A``, ``N``, ``O``), checked."""
    label = label.strip()
    if label not in ("N", "A", "O"):
        raise DataError(f"Unknown rhythm label {label!r}; expected N, A or O.")
    return label


def to_class(dataset: str, label: str) -> str:
    """Map ``label`` from ``dataset`` (cinc2017, ptbxl_z, ptbxl100, ludb, cinc2021, cpsc2018) to a class."""
    mappers = {
        "cinc2017": cinc2017_label,
        "ptbxl_z": ptbxl_label,
        "ptbxl100": ptbxl_label,
        "ludb": ludb_label,
        "cinc2021": nao_label,
        "cpsc2018": nao_label,
    }
    try:
        mapper = mappers[dataset]
    except KeyError:
        raise DataError(f"Unknown dataset {dataset!r}; known: {', '.join(sorted(mappers))}.") from None
    return mapper(label)
