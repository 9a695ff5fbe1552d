"""The teacher's diagnostic-statement head: PTB-XL SCP codes read from the real CSVs, the vocabulary and
multi-hot targets built from them, and a teacher network that trains on both heads."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgmon.errors import DataError
from models.classifier.data import code_targets, code_vocabulary
from models.classifier.nets import NetConfig, TeacherNet
from models.datasets.ptbxl import read_scp_codes
from tests.conftest import DATA

CODE = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/", min_size=1, max_size=6)


def test_real_ptbxl_csv_codes() -> None:
    codes = read_scp_codes(DATA / "ptbxl100" / "val.csv")
    with (DATA / "ptbxl100" / "val.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(codes) == len(rows)
    af = [c for c, r in zip(codes, rows, strict=True) if r["rhythm"] == "AF"]
    assert af and all("AFIB" in c or "AFLT" in c for c in af)  # the rhythm column agrees with the codes
    assert all(list(c) == sorted(c) for c in codes)


def _write_csv(path: Path, cells: list[str]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ecg_id", "scp_codes"])
        w.writerows([[i, c] for i, c in enumerate(cells)])
    return path


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(CODE, st.sampled_from([0.0, 15.0, 100.0]), max_size=5), max_size=6))
def test_codes_round_trip(tmp_path_factory: pytest.TempPathFactory, recs: list[dict[str, float]]) -> None:
    path = _write_csv(tmp_path_factory.mktemp("scp") / "x.csv", [repr(r) for r in recs])
    assert read_scp_codes(path) == [tuple(sorted(r)) for r in recs]


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=30).filter(lambda t: t.strip() and not t.strip().startswith("{")))
def test_bad_cells_raise_one_data_error(tmp_path_factory: pytest.TempPathFactory, cell: str) -> None:
    path = _write_csv(tmp_path_factory.mktemp("scp") / "x.csv", [cell])
    with pytest.raises(DataError, match="scp_codes"):
        read_scp_codes(path)


def test_vocabulary_and_targets() -> None:
    codes = [("AFIB", "IMI"), ("SR", "IMI"), ("IMI", "LVH"), ("SR",), ()]
    vocab = code_vocabulary(codes, min_count=2)
    assert vocab == ["IMI", "SR"]  # most frequent first; AFIB and LVH are below the cut
    t = code_targets(codes, vocab)
    np.testing.assert_array_equal(t, [[1, 0], [1, 1], [1, 0], [0, 1], [0, 0]])


def test_teacher_with_codes_learns_both_heads() -> None:
    torch.manual_seed(0)
    net = TeacherNet(NetConfig(in_leads=12, samples=200, n_codes=3))
    x = torch.randn(8, 12, 200)
    y = torch.randint(0, 4, (8,))
    codes = (torch.rand(8, 3) > 0.5).float()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        rhythm, logits = net.forward_all(x)
        assert logits is not None and logits.shape == (8, 3) and rhythm.shape == (8, 4)
        loss = torch.nn.functional.cross_entropy(rhythm, y) + torch.nn.functional.binary_cross_entropy_with_logits(
            logits, codes
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert TeacherNet(NetConfig(in_leads=12, samples=200)).forward_all(x)[1] is None  # old teachers unchanged
