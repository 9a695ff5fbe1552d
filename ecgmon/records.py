"""Listing the records of a WFDB-style folder: ``RECORDS`` when present, else every ``*<suffix>``."""

from __future__ import annotations

from pathlib import Path

from ecgmon.errors import DataError


def record_names(path: Path, suffix: str = ".hea") -> list[str]:
    """Record names of ``path`` in ``RECORDS`` order, else the sorted stems of ``*<suffix>``; may be empty.

    Raises ``DataError`` when ``path`` is not a folder; the caller says what an empty folder means.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path} is not a folder of records; check the --path/--replay option.")
    listing = path / "RECORDS"
    if listing.is_file():
        return listing.read_text().split()
    return sorted(p.stem for p in path.glob(f"*{suffix}"))
