"""The 12-lead readers on the real shared folders and on small copies laid out the same way."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgmon.errors import DataError
from models.datasets.ptbxl import load_ptbxl100, load_ptbxl_z
from models.datasets.wfdb12 import load_cinc2021, load_cpsc2018, load_ludb
from tests.conftest import DATA


def _subset_ptbxl(src: Path, dst: Path, split: str, suffix: str, rows: int) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for tail in (suffix, "scale"):
        npy = src / f"{split}_{tail}.npy"
        if npy.is_file():
            np.save(dst / npy.name, np.load(npy)[:rows])
    with (src / f"{split}.csv").open(newline="") as f:
        lines = list(csv.reader(f))[: rows + 1]
    with (dst / f"{split}.csv").open("w", newline="") as f:
        csv.writer(f).writerows(lines)


def test_ptbxl_z_restores_mv_from_scale(tmp_path: Path) -> None:
    _subset_ptbxl(DATA / "ptbxl_z", tmp_path, "val", "250hz", 5)
    t = load_ptbxl_z(tmp_path, "val")
    z = load_ptbxl_z(tmp_path, "val", restore_mv=False)
    assert t.signals.shape == (5, 12, 2500) and t.signals.dtype == np.float32 and t.fs_hz == 250.0
    assert len(t.rhythm) == len(t.record_ids) == len(t.patient_ids) == 5
    np.testing.assert_allclose(z.signals.std(axis=-1), 1.0, atol=0.02)  # z-scored per record-lead
    assert 0.01 < float(np.median(t.signals.std(axis=-1))) < 2.0  # mV-sized


def test_ptbxl100_in_mv(tmp_path: Path) -> None:
    _subset_ptbxl(DATA / "ptbxl100", tmp_path, "val", "100hz", 4)
    t = load_ptbxl100(tmp_path, "val")
    assert t.signals.shape == (4, 12, 1000) and t.fs_hz == 100.0
    assert set(t.rhythm) <= {"AF", "SR", "OTHER"}


def test_missing_files_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        load_ptbxl_z(tmp_path, "val")
    with pytest.raises(DataError):
        load_ludb(tmp_path / "absent")


def test_ludb_copy_reads_multiline_csv(tmp_path: Path) -> None:
    for name in ("1", "3"):
        for ext in ("hea", "dat"):
            shutil.copy(DATA / "ludb" / f"{name}.{ext}", tmp_path)
    shutil.copy(DATA / "ludb" / "ludb.csv", tmp_path)
    t = load_ludb(tmp_path)
    assert t.signals.shape == (2, 12, 5000) and t.fs_hz == 500.0
    assert t.sex.tolist() == [1.0, 0.0] and t.age.tolist() == [51.0, 53.0]
    assert t.rhythm[0] == "Sinus bradycardia"


def test_cinc2021_mixed_rates_and_lengths_stack() -> None:
    t = load_cinc2021(DATA / "cinc2021_sample")
    assert t.signals.shape == (18, 12, 5000) and t.fs_hz == 500.0  # PTB 1000 Hz records resampled and cut
    assert set(t.rhythm) <= {"A", "N", "O"} and np.isfinite(t.signals).all()


def test_cpsc2018_labels_mapped() -> None:
    t = load_cpsc2018(DATA / "cpsc2018_sample")
    assert len(t) == 10 and set(t.rhythm) <= {"A", "N", "O"}
    assert t.rhythm[t.record_ids.index("A0003")] == "A" and t.rhythm[t.record_ids.index("A0002")] == "N"
