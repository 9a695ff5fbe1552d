"""The PTB-XL pool build: exclusions first, rate from the header, resumable chunks (issue 26).

Runs on hand-made WFDB records written with ``wfdb.wrsamp`` in ``tmp_path``; the held-out and validation
records there have unreadable files, so a build that opened them would fail.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgmon.errors import DataError
from models.datasets import ptbxl_full
from models.datasets.ptbxl import LEADS
from models.datasets.ptbxl_full import build_cache, load_pool, read_exclusions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WFDB_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
CSV_HEADER = ["ecg_id", "patient_id", "age", "sex", "strat_fold", "rhythm", "scp_codes", "source_fs"]
HELDOUT, Z_VAL, P100_VAL, Z_TRAIN, P100_TRAIN = 2, 3, 4, 5, 6
KEPT = [1, 5, 6, 7, 8, 9, 10]


def _signal(ecg_id: int, fs_hz: float, seconds: float = 10.0) -> np.ndarray:
    """``[samples, 12]`` mV: a distinct sine per record and lead, rounded to whole µV."""
    t = np.arange(int(seconds * fs_hz)) / fs_hz
    lead = np.arange(12)[None, :]
    x = 0.5 * np.sin(2 * np.pi * (1.0 + 0.1 * ecg_id) * t[:, None] + lead) + 0.01 * lead
    return np.round(x * 1000) / 1000


def _write(folder: Path, ecg_id: int, fs_hz: float = 100.0) -> None:
    name = f"{ecg_id:05d}_lr"
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs_hz,
        units=["mV"] * 12,
        sig_name=WFDB_LEADS,
        p_signal=_signal(ecg_id, fs_hz),
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(folder),
    )


def _csv(path: Path, rows: list[tuple[int, int, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for eid, pid, age, sex in rows:
            w.writerow([eid, pid, age, sex, 9, "SR", "{}", 100])


@pytest.fixture
def fixture(tmp_path: Path) -> tuple[Path, Path]:
    """``(records folder, shared-data folder)``: 10 records, two folders, one at 500 Hz."""
    src = tmp_path / "records100"
    for eid in range(1, 11):
        _write(src / ("00000" if eid < 6 else "01000"), eid, 500.0 if eid == 7 else 100.0)
    for eid in (HELDOUT, Z_VAL, P100_VAL):  # unreadable: the build must never open them
        folder = src / "00000"
        (folder / f"{eid:05d}_lr.hea").write_text("not a header\n")
        (folder / f"{eid:05d}_lr.dat").write_bytes(b"\x00")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ptbxl_heldout_ids.txt").write_text(f"# held out\n{HELDOUT}\n\n")
    _csv(shared / "ptbxl_z" / "val.csv", [(Z_VAL, 300, "50", "0")])
    _csv(shared / "ptbxl_z" / "train.csv", [(Z_TRAIN, 500, "61", "1")])
    _csv(shared / "ptbxl100" / "val.csv", [(P100_VAL, 400, "", "")])
    _csv(shared / "ptbxl100" / "train.csv", [(P100_TRAIN, 600, "70", "0")])
    return src, shared


def test_exclusions_before_reading_and_metadata_kept_only_for_train(fixture: tuple[Path, Path], tmp_path: Path) -> None:
    src, shared = fixture
    summary = build_cache(src, tmp_path / "cache", read_exclusions(shared), chunk_records=3)
    assert summary.excluded == {"heldout": 1, "val": 2}
    pool = load_pool(tmp_path / "cache")
    assert pool.ecg_ids.tolist() == KEPT
    assert not {HELDOUT, Z_VAL, P100_VAL} & set(pool.ecg_ids.tolist())
    assert pool.x.shape == (len(KEPT), 12, 1000) and pool.x.dtype == np.int16
    row = {int(e): i for i, e in enumerate(pool.ecg_ids)}
    assert (pool.age[row[Z_TRAIN]], pool.sex[row[Z_TRAIN]]) == (61.0, 1.0)
    assert (pool.age[row[P100_TRAIN]], pool.sex[row[P100_TRAIN]]) == (70.0, 0.0)
    assert np.isnan(pool.age[row[1]]) and np.isnan(pool.sex[row[1]])
    # µV, leads in LEADS order, exactly what was written
    np.testing.assert_array_equal(pool.x[row[1]], np.round(_signal(1, 100.0).T * 1000).astype(np.int16))
    # 500 Hz record: rate from its header, resampled to 100 Hz, 10 s kept
    ref = _signal(7, 500.0)[::5].T * 1000
    assert np.corrcoef(pool.x[row[7], 0, 50:-50], ref[0, 50:-50])[0, 1] > 0.99
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["records_kept"] == len(KEPT) and manifest["records_with_metadata"] == 2
    assert manifest["leads"] == list(LEADS)
    assert manifest["leak"]["val_patients"] == 2


def test_interrupted_build_resumes_reading_only_missing_chunks(
    fixture: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, shared = fixture
    ex = read_exclusions(shared)
    fresh = build_cache(src, tmp_path / "fresh", ex, chunk_records=2)
    assert (fresh.chunks_read, fresh.chunks_reused) == (4, 0)

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        if done >= 4:
            raise Stop

    with pytest.raises(Stop):
        build_cache(src, tmp_path / "cache", ex, chunk_records=2, progress=stop_after_two)
    assert not (tmp_path / "cache" / "signals_100hz.npy").exists()
    reads: list[str] = []
    real = ptbxl_full.read_record

    def counting(path: Path, *args: float) -> np.ndarray:
        reads.append(Path(path).name)
        return real(path, *args)

    monkeypatch.setattr(ptbxl_full, "read_record", counting)
    resumed = build_cache(src, tmp_path / "cache", ex, chunk_records=2)
    assert (resumed.chunks_read, resumed.chunks_reused) == (2, 2)
    assert reads == ["00008_lr", "00009_lr", "00010_lr"]
    np.testing.assert_array_equal(load_pool(tmp_path / "cache").x, load_pool(tmp_path / "fresh").x)
    again = build_cache(src, tmp_path / "cache", ex, chunk_records=2)
    assert again.chunks_read == 0 and len(reads) == 3


def test_user_errors_are_one_line_data_errors(fixture: tuple[Path, Path], tmp_path: Path) -> None:
    _src, shared = fixture
    with pytest.raises(DataError, match="does not exist"):
        build_cache(tmp_path / "nowhere", tmp_path / "c", read_exclusions(shared))
    (shared / "ptbxl_heldout_ids.txt").unlink()
    with pytest.raises(DataError, match="Held-out id list"):
        read_exclusions(shared)
    with pytest.raises(DataError, match="run `ecgmon data ptbxl-full`"):
        load_pool(tmp_path / "empty")


def test_real_lists_exclude_heldout_and_both_val_splits() -> None:
    ex = read_exclusions(SHARED)
    heldout = ptbxl_full.read_heldout_ids(SHARED / "ptbxl_heldout_ids.txt")
    assert len(heldout) == 130 and ex.heldout == heldout
    assert ex.reason(9) == "heldout"  # first id of the held-out list
    assert ex.reason(8) == "val" and ex.reason(18) == "val"  # ptbxl_z val, ptbxl100 val
    assert ex.reason(1) is None and ex.train_meta[1][2] == "ptbxl_z/train.csv"
    assert not set(ex.train_meta) & (ex.val | ex.heldout)


def test_pool_arrays_are_z_units_with_unknown_metadata(fixture: tuple[Path, Path], tmp_path: Path) -> None:
    from models.reconstructor.data import pool_arrays

    src, shared = fixture
    build_cache(src, tmp_path / "cache", read_exclusions(shared))
    z = pool_arrays(tmp_path / "cache", 100.0, 1000)
    assert z.x.shape == (len(KEPT), 12, 1000) and z.x.dtype == np.float16
    x = z.x.astype(np.float32)
    np.testing.assert_allclose(x.mean(axis=-1), 0.0, atol=2e-3)
    np.testing.assert_allclose(x.std(axis=-1), 1.0, atol=2e-3)
    assert int(np.isnan(z.age).sum()) == len(KEPT) - 2


def test_chunked_linear_fit_matches_one_shot() -> None:
    from models.reconstructor.linear import fit_fir

    x = np.random.default_rng(0).standard_normal((9, 12, 200)).astype(np.float32)
    one = fit_fir(x, taps=11, chunk_records=100)
    many = fit_fir(x, taps=11, chunk_records=2)
    np.testing.assert_allclose(one[0], many[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(one[1], many[1], rtol=1e-4, atol=1e-6)


def _select_folder(path: Path) -> Path:
    """A three-record ptbxl100-style selection split (``val_100hz.npy`` int16 µV + ``val.csv``)."""
    _csv(path / "val.csv", [(900 + i, 900 + i, "50", "1") for i in range(3)])
    x = np.stack([np.round(_signal(20 + i, 100.0).T * 1000) for i in range(3)]).astype(np.int16)
    np.save(path / "val_100hz.npy", x)
    return path


def test_pretrain_on_pool_then_fine_tune_from_it(fixture: tuple[Path, Path], tmp_path: Path) -> None:
    import torch

    from models.reconstructor.common import load_weights
    from models.reconstructor.train import TrainConfig, train_model

    src, shared = fixture
    build_cache(src, tmp_path / "cache", read_exclusions(shared))
    sel = _select_folder(tmp_path / "sel")
    small = {"width": 4, "hidden": 4, "meta_dim": 4}
    pre = TrainConfig(
        "dual_branch",
        pool=tmp_path / "cache",
        epoch_windows=4,
        epochs=2,
        batch_size=4,
        select_path=sel,
        arch=small,
        run_dir=tmp_path / "pre",
        out=tmp_path / "pre.pt",
        cache_dir=tmp_path / "c",
    )
    rows: list[dict[str, object]] = []
    assert train_model(pre, rows.append)["epochs"] == 2
    config, _ = load_weights(tmp_path / "pre.pt")
    assert config["train_records"] == len(KEPT) and config["train"]["epoch_windows"] == 4
    # resume: a second run with the same checkpoint trains no further epochs
    assert train_model(pre)["epochs"] == 2 and len(rows) == 2
    fine = TrainConfig(
        "dual_branch",
        init=tmp_path / "pre.pt",
        pool=tmp_path / "cache",
        epochs=1,
        batch_size=4,
        epoch_windows=4,
        select_path=sel,
        run_dir=tmp_path / "fine",
        out=tmp_path / "fine.pt",
        cache_dir=tmp_path / "c",
    )
    train_model(fine)
    config, state = load_weights(tmp_path / "fine.pt")
    assert config["arch"] == small and config["pretrained"]["train_records"] == len(KEPT)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_student_pool_arrays_are_lead_i_and_teacher_tokens(fixture: tuple[Path, Path], tmp_path: Path) -> None:
    from models.classifier.pool import pool_student_arrays

    teacher = Path(__file__).resolve().parents[1] / "models" / "weights" / "classifier_teacher.pt"
    src, shared = fixture
    build_cache(src, tmp_path / "cache", read_exclusions(shared))
    lead_i, tokens = pool_student_arrays(tmp_path / "cache", teacher, 100.0, 1000, tmp_path / "c", log=lambda _m: None)
    assert lead_i.shape == (len(KEPT), 1, 1000) and tokens.shape[0] == len(KEPT) and tokens.ndim == 3
    again = pool_student_arrays(tmp_path / "cache", teacher, 100.0, 1000, tmp_path / "c", log=lambda _m: None)
    np.testing.assert_array_equal(again[1], tokens)


def test_default_cache_follows_the_cache_dir_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgmon.settings import get_settings

    monkeypatch.setenv("ECGMON_CACHE_DIR", str(tmp_path / "caches"))
    get_settings.cache_clear()
    assert ptbxl_full.default_cache_dir() == tmp_path / "caches" / "ptbxl_full"
    monkeypatch.delenv("ECGMON_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    get_settings.cache_clear()
    assert ptbxl_full.default_cache_dir() == tmp_path / "xdg" / "ecgmon" / "ptbxl_full"
    get_settings.cache_clear()
