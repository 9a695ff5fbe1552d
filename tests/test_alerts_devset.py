"""The development-set builder on a tiny hand-made CinC 2017-like folder (seconds, no real data)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgmon.errors import DataError
from tools.evaluation.alerts import cpsc2021
from tools.evaluation.alerts.devset import CROSSFADE_S, Piece, build, read_list, splice

FS = 300.0
ROOT = Path(__file__).resolve().parents[1]
LABELS = {"A01": "A", "A02": "A", "A03": "A", "A04": "A", "A05": "A",
          "N01": "N", "N02": "N", "N03": "N", "N04": "N", "N05": "N", "N06": "N",
          "O01": "O", "O02": "O", "X01": "~"}  # fmt: skip


@pytest.fixture
def cinc(tmp_path: Path) -> Path:
    src = tmp_path / "cinc"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i, (name, _) in enumerate(LABELS.items()):
        n = int(FS * (20 + 5 * (i % 3)))
        sig = 0.5 + 0.1 * i + 0.05 * rng.standard_normal(n)  # an offset each, so the median removal shows
        wfdb.wrsamp(name, fs=FS, units=["mV"], sig_name=["I"], p_signal=sig[:, None], fmt=["16"],
                    adc_gain=[1000.0], baseline=[0], write_dir=str(src))  # fmt: skip
    pd.DataFrame(list(LABELS.items())).to_csv(src / "REFERENCE.csv", header=False, index=False)
    (tmp_path / "val.txt").write_text("# validation records\n" + "\n".join(LABELS) + "\n")
    return src


def test_splice_crossfades_and_places_boundaries_mid_fade() -> None:
    a, b = Piece("a", "N", np.zeros(300)), Piece("b", "A", np.ones(600))
    sig, bounds = splice([a, b], FS)
    fade = int(CROSSFADE_S * FS)
    assert len(sig) == 900 - fade
    assert np.all(np.diff(sig[300 - fade : 300]) > 0) and sig[0] == 0 and sig[-1] == 1  # a ramp, no step
    assert bounds[1, 0] == pytest.approx((300 - fade / 2) / FS) and bounds[-1, 1] == pytest.approx(len(sig) / FS)


def test_build_writes_streams_the_evaluator_reads(cinc: Path, tmp_path: Path) -> None:
    names = read_list(tmp_path / "val.txt")
    out = tmp_path / "dev"
    built = build(cinc, names, out, streams=2, seed=3, with_af=True)
    assert built.streams == 2 and built.folder == out / "mixed"
    pieces = pd.read_csv(out / "mixed" / "pieces.csv", dtype=str)
    assert sorted(pieces["source"]) == sorted(LABELS)  # every record once, none twice
    episodes = cpsc2021.load_episodes(out / "mixed")
    assert len(episodes) == built.episodes >= 2
    for rec in cpsc2021.list_records(out / "mixed"):
        p = pieces[pieces["record"] == rec].reset_index(drop=True)
        labels = "".join(p["label"])
        assert labels[0] != "A" and labels[-1] != "A" and "A" in labels  # episodes lie between non-AF records
        runs = [r for r in labels.replace("N", " ").replace("O", " ").replace("~", " ").split() if r]
        assert all(2 <= len(r) <= 4 for r in runs)
        eps = episodes[episodes["record"] == rec]
        starts = p[(p["label"] == "A") & (p["label"].shift(fill_value="N") != "A")]["start_s"].astype(float)
        assert np.allclose(sorted(eps["onset_s"]), sorted(starts), atol=1e-3)
        windows, fs, _, seconds = cpsc2021.load_record(out / "mixed", rec, window_s=10.0, hop_s=10.0)
        assert fs == FS and len(windows) == int(seconds // 10)
        assert abs(np.median(windows)) < 0.05  # each piece's median (0.5-1.8 mV) removed
    other = build(cinc, names, out, streams=2, seed=3, with_af=False)
    assert other.episodes == 0
    assert set(pd.read_csv(out / "other" / "pieces.csv")["label"]) <= {"O", "~"}


def test_build_is_seeded(cinc: Path, tmp_path: Path) -> None:
    names = read_list(tmp_path / "val.txt")
    build(cinc, names, tmp_path / "a", streams=2, seed=5, with_af=True)
    build(cinc, names, tmp_path / "b", streams=2, seed=5, with_af=True)
    assert (tmp_path / "a/mixed/pieces.csv").read_text() == (tmp_path / "b/mixed/pieces.csv").read_text()


def test_user_errors_end_in_one_line(cinc: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not in"):
        build(cinc, ["Z99"], tmp_path / "x", streams=1, seed=0, with_af=True)
    with pytest.raises(DataError, match="fewer --streams"):
        build(cinc, list(LABELS), tmp_path / "x", streams=9, seed=0, with_af=True)
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli.main", "eval", "build-devset", "--out", str(tmp_path / "y"),
         "--source", str(cinc), "--records", str(tmp_path / "missing.txt")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.strip().startswith("DataError:") and len(done.stderr.splitlines()) == 1
