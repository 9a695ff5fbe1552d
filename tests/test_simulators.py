"""Synthetic patients, replay and ltafdb timelines without a broker (issue 6, issue 14 item 2)."""

from __future__ import annotations

import csv
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
import wfdb
from hypothesis import given
from hypothesis import strategies as st

from ecgmon.contracts import Window, decode_window, encode_window
from ecgmon.errors import ConfigError, DataError
from ecgmon.settings import Settings
from simulators.gateway import windows_for_duration
from simulators.ltafdb import LtafdbDevice, load_timeline
from simulators.replay import ReplayDevice, _header_meta, canonical_lead, discover
from simulators.rhythms import Episode
from simulators.run import SimulateOptions, build_devices, parse_records
from simulators.synthetic import SyntheticPatient, WindowData

FS_HZ = 250.0


def _rr_s(x: np.ndarray, fs_hz: float = FS_HZ) -> np.ndarray:
    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs_hz), sampling_rate=fs_hz)
    return np.diff(np.asarray(info["ECG_R_Peaks"])) / fs_hz


def _w(device: ReplayDevice | LtafdbDevice, seq: int) -> WindowData:
    data = device.window(seq)
    assert data is not None
    return data


def _patient(seed: int, schedule: list[Episode], **kw: object) -> SyntheticPatient:
    return SyntheticPatient(
        f"p{seed}", np.random.default_rng(seed), fs_hz=FS_HZ, window_s=10.0, hop_s=10.0,
        schedule=schedule, artefact_rate_per_h=0.0, **kw,  # type: ignore[arg-type]
    )


# --- synthetic patients ----------------------------------------------------------------------


def test_af_windows_are_irregularly_irregular_and_sinus_windows_are_not() -> None:
    """RR of NeuroKit2-detected peaks: AF has a high coefficient of variation and RMSSD, sinus low."""
    schedule = [Episode(0, 60, "N"), Episode(60, 120, "AF")]
    cv: dict[str | None, list[float]] = {"N": [], "AF": []}
    rmssd: dict[str | None, list[float]] = {"N": [], "AF": []}
    for seed in range(6):
        patient = _patient(seed, schedule)
        for seq in range(12):
            w = patient.window(seq)
            if seq in (0, 5, 6, 11):  # windows entirely inside one rhythm
                continue
            rr = _rr_s(w.samples)
            cv[w.truth].append(rr.std() / rr.mean())
            rmssd[w.truth].append(np.sqrt(np.mean(np.diff(rr) ** 2)))
    assert max(cv["N"]) < 0.08 and min(cv["AF"]) > 0.12
    assert np.median(rmssd["AF"]) > 4 * np.median(rmssd["N"])


def test_synthetic_windows_carry_the_scheduled_truth() -> None:
    schedule = [
        Episode(0, 30, "N"), Episode(30, 60, "AFL"), Episode(60, 90, "BRADY"), Episode(90, 120, "TACHY"),
        Episode(120, 150, "PVC"), Episode(150, 180, "N"),
    ]
    patient = _patient(1, schedule)
    truths = [patient.window(seq).truth for seq in range(18)]
    assert truths[0:3] == ["N"] * 3
    assert truths[3:6] == ["AFL"] * 3
    assert truths[6:9] == ["BRADY"] * 3
    assert truths[9:12] == ["TACHY"] * 3
    assert truths[12:15] == ["PVC"] * 3
    rates = _patient(1, schedule)
    hr = {}
    for seq in range(12):
        w = rates.window(seq)
        if seq in (4, 7, 10):  # the beats the window was drawn from
            beats = rates.rhythm.beats.between(w.t0_s, w.t0_s + 10.0).times_s
            hr[w.truth] = 60.0 / np.median(np.diff(beats))
    assert hr["BRADY"] <= 45 and hr["TACHY"] >= 110
    assert 60 < hr["AFL"] < 170  # 250-330 /min atrial rate with 2:1 to 4:1 block


def test_pause_and_vt_events_mark_their_window() -> None:
    schedule = [Episode(0, 34, "N"), Episode(34, 38, "PAUSE"), Episode(38, 55, "N"), Episode(55, 58, "VT"),
                Episode(58, 100, "N")]
    patient = _patient(2, schedule)
    windows = [patient.window(seq) for seq in range(8)]
    assert [w.truth for w in windows][:3] == ["N", "N", "N"]
    assert "PAUSE" in {windows[3].truth, windows[4].truth}
    assert windows[5].truth == "VT"
    beats = patient.rhythm.beats
    assert beats.types.size  # memory is bounded: old beats are forgotten
    assert beats.times_s[0] > 50


def test_artefacts_set_truth_and_look_like_themselves() -> None:
    patient = SyntheticPatient(
        "a1", np.random.default_rng(4), fs_hz=FS_HZ, window_s=10.0, hop_s=10.0, schedule=[Episode(0, 1e9, "N")],
        artefacts=[(10.0, 20.0, "LEAD_OFF"), (30.0, 40.0, "NOISE")],
    )
    w = [patient.window(seq) for seq in range(5)]
    assert [x.truth for x in w] == ["N", "LEAD_OFF", "N", "NOISE", "N"]
    assert w[1].samples.std() < 0.01
    assert w[3].samples.std() > 2 * w[2].samples.std()


def test_same_seed_same_patient_and_random_schedules_produce_events() -> None:
    a = SyntheticPatient("s", np.random.default_rng(11), fs_hz=FS_HZ, window_s=10, hop_s=10, event_rate_per_h=30)
    b = SyntheticPatient("s", np.random.default_rng(11), fs_hz=FS_HZ, window_s=10, hop_s=10, event_rate_per_h=30)
    truths = set()
    for seq in range(360):
        wa, wb = a.window(seq), b.window(seq)
        assert np.array_equal(wa.samples, wb.samples) and wa.truth == wb.truth
        truths.add(wa.truth)
    assert len(truths) >= 3


def test_overlapping_windows_share_their_samples() -> None:
    patient = SyntheticPatient("o", np.random.default_rng(0), fs_hz=FS_HZ, window_s=10.0, hop_s=5.0,
                               noise_mv=0.0, artefact_rate_per_h=0.0)
    w0, w1 = patient.window(0), patient.window(1)
    assert w0.samples.shape == (2500,)
    assert np.allclose(w0.samples[1250:], w1.samples[:1250], atol=1e-4)


# --- replay ----------------------------------------------------------------------------------


def test_cinc2017_replay_is_sample_exact_within_int16_quantisation(data_dir: Path) -> None:
    record = data_dir / "cinc2017" / "A00001"
    source = wfdb.rdrecord(str(record)).p_signal[:, 0]
    (item,) = discover(record)
    assert item.truth == "N"
    device = ReplayDevice("A00001", item, window_s=10.0, hop_s=10.0)
    windows = []
    seq = 0
    while (data := device.window(seq)) is not None:
        windows.append(data)
        seq += 1
    assert device.fs_hz == 300.0 and len(windows) == source.size // 3000
    for data in windows:
        w = decode_window(encode_window(Window("A00001", "gw", data.seq, 0, 300.0, data.samples)))
        start = data.seq * 3000
        assert np.max(np.abs(w.samples - source[start : start + 3000])) <= 0.0005


def test_replay_loops_to_fill_the_duration_and_short_records_send_one_window(data_dir: Path) -> None:
    (item,) = discover(data_dir / "cinc2017" / "A00001")  # 30 s: 3 windows per pass
    device = ReplayDevice("A00001", item, window_s=10.0, hop_s=10.0, max_windows=7)
    got = [_w(device, s) for s in range(7)]
    assert device.window(7) is None
    assert np.array_equal(got[3].samples, got[0].samples) and got[6].t0_s == pytest.approx(60.0)
    (short,) = discover(data_dir / "cinc2017" / "A00001")
    device = ReplayDevice("x", short, window_s=40.0, hop_s=40.0)
    first = device.window(0)
    assert first is not None and first.samples.size == 9000 and device.window(1) is None


def test_replay_resamples_with_resample_poly(data_dir: Path) -> None:
    (item,) = discover(data_dir / "cinc2017" / "A00001")
    device = ReplayDevice("r", item, window_s=10.0, hop_s=10.0, fs_out_hz=250.0)
    w = _w(device, 0)
    assert device.fs_hz == 250.0 and w.samples.size == 2500
    hr_300 = 60 / np.median(_rr_s(_w(ReplayDevice("q", item, window_s=10, hop_s=10), 0).samples, 300.0))
    hr_250 = 60 / np.median(_rr_s(w.samples, 250.0))
    assert abs(hr_300 - hr_250) < 1.0


def test_ludb_replay_takes_lead_i_age_and_sex_and_rhythm(data_dir: Path) -> None:
    items = discover(data_dir / "ludb")
    by_name = {i.name: i for i in items}
    with (data_dir / "ludb" / "ludb.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    item = by_name[row["ID"].strip()]
    assert item.age == float(row["Age"].strip()) and item.sex == (1 if row["Sex"].strip() == "F" else 0)
    assert item.truth == "BRADY"  # record 1: sinus bradycardia
    lead_i = wfdb.rdrecord(str(data_dir / "ludb" / "1"), channel_names=["i"]).p_signal[:, 0]
    device = ReplayDevice("ludb-1", item, window_s=10.0, hop_s=10.0)
    assert np.allclose(_w(device, 0).samples, lead_i[:5000], atol=1e-6)
    v2 = ReplayDevice("ludb-1", discover(data_dir / "ludb" / "1", lead="V2")[0], window_s=10, hop_s=10, lead="v2")
    assert device.lead == "I" and v2.lead == "V2"
    assert not np.allclose(_w(v2, 0).samples, lead_i[:5000])


def test_ptbxl_z_replay_restores_millivolts(data_dir: Path) -> None:
    items = [i for i in discover(data_dir / "ptbxl_z") if i.name.startswith("val-")]
    z = np.load(data_dir / "ptbxl_z" / "val_250hz.npy", mmap_mode="r")
    scale = np.load(data_dir / "ptbxl_z" / "val_scale.npy", mmap_mode="r")
    loaded = items[0].load()
    expected = z[0, 0].astype(np.float64) * scale[0, 0, 1] + scale[0, 0, 0]
    assert loaded.fs_hz == 250.0 and np.allclose(loaded.samples, expected)
    assert items[0].truth in ("N", "AF", "OTHER") and items[0].sex in (0, 1)


def test_ptbxl100_replay_reads_integer_microvolts(data_dir: Path) -> None:
    items = [i for i in discover(data_dir / "ptbxl100", lead="II") if i.name.startswith("val-")]
    raw = np.load(data_dir / "ptbxl100" / "val_100hz.npy", mmap_mode="r")
    loaded = items[0].load()
    assert loaded.fs_hz == 100.0 and np.allclose(loaded.samples, raw[0, 1] / 1000.0)


@given(st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 200), st.text(max_size=6)),
       st.sampled_from(["M", "Male", "f", "FEMALE", "Unknown", "", "2"]), st.booleans())
def test_header_age_and_sex_parse_or_stay_unknown(age: object, sex: str, ludb_style: bool) -> None:
    fmt = "<{}>: {}" if ludb_style else "{}: {}"
    got_age, got_sex = _header_meta([fmt.format("age", age), fmt.format("sex", sex), "Dx: 164889003"])
    assert got_age is None or (0 <= got_age <= 150 and got_age == float(str(age)))
    assert got_sex == {"m": 0, "male": 0, "f": 1, "female": 1}.get(sex.lower())


def test_replay_errors_say_what_to_do(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(DataError, match="neither a WFDB record"):
        discover(tmp_path / "nothing")
    with pytest.raises(DataError, match="no WFDB records"):
        discover(tmp_path)
    with pytest.raises(ConfigError, match="lead 'X1' is unknown"):
        canonical_lead("X1")
    first = (data_dir / "cpsc2021_sample" / "RECORDS").read_text().split()[0]
    (item,) = discover(data_dir / "cpsc2021_sample" / first, lead="V1")
    with pytest.raises(DataError, match="has no lead V1"):
        item.load()


# --- ltafdb ----------------------------------------------------------------------------------


def test_ltafdb_timeline_matches_the_published_episodes(data_dir: Path) -> None:
    folder = data_dir / "ltafdb"
    tl = load_timeline(folder, "01")
    with (folder / "episodes.csv").open(newline="") as f:
        published = [(float(r["onset_s"]), float(r["offset_s"])) for r in csv.DictReader(f) if r["record"] == "01"]
    assert np.allclose(np.array(tl.af_episodes()), np.array(published), atol=1e-3)
    with (folder / "labels.csv").open(newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["record"] == "01")
    assert tl.labelled_from_s == float(row["rhythm_from_s"]) and tl.labelled_to_s == float(row["rhythm_to_s"])
    assert tl.beat_times_s.size == int(row["beats"])
    assert set(np.unique(tl.beat_types)) <= {"N", "A", "V", "Q"}
    onset, _ = next(e for e in published if e[1] - e[0] > 60)
    assert tl.rhythm_at(np.array([onset + 1.0]))[0] == "(AFIB"
    assert tl.truth_over(onset, onset + 10) == "AF"
    assert tl.truth_over(0.0, 10.0) == "UNLABELLED"


def test_ltafdb_device_streams_real_timing_with_annotated_truth(data_dir: Path) -> None:
    tl = load_timeline(data_dir / "ltafdb", "01")
    onset = next(a for a, b in tl.af_episodes() if b - a > 120)
    start_s = float(np.floor(onset / 10) * 10 - 30)
    dev = LtafdbDevice("ltafdb-01", tl, np.random.default_rng(0), fs_hz=FS_HZ, window_s=10, hop_s=10,
                       start_s=start_s, max_windows=8)
    windows = [_w(dev, s) for s in range(8)]
    assert dev.window(8) is None
    assert [w.t0_s for w in windows] == pytest.approx([start_s + 10 * k for k in range(8)])
    truths = [w.truth for w in windows]
    assert truths[0] != "AF" and truths[-1] == "AF"
    with pytest.raises(ValueError):
        LtafdbDevice("x", tl, np.random.default_rng(0), fs_hz=FS_HZ, window_s=10, hop_s=10).window(3)


# --- options ---------------------------------------------------------------------------------


@given(st.lists(st.from_regex(r"[A-Za-z0-9._-]{1,8}", fullmatch=True), min_size=1, max_size=6),
       st.sampled_from([",", ", ", " ,", ",,"]))
def test_parse_records_round_trips(names: list[str], sep: str) -> None:
    parsed = parse_records(sep.join(names))
    assert parsed == tuple(dict.fromkeys(names))


@given(st.text(min_size=1, max_size=20))
def test_parse_records_rejects_or_accepts_cleanly(text: str) -> None:
    try:
        parsed = parse_records(text)
    except ConfigError as exc:
        assert "--records" in str(exc)
    else:
        assert parsed is None or all(p and "," not in p for p in parsed)


@given(st.floats(min_value=0.1, max_value=1e5), st.sampled_from([(10.0, 10.0), (10.0, 5.0), (30.0, 10.0)]))
def test_windows_for_duration_fit_the_duration(duration_s: float, sizes: tuple[float, float]) -> None:
    window_s, hop_s = sizes
    n = windows_for_duration(duration_s, window_s, hop_s)
    assert n is not None and n >= 1
    if duration_s >= window_s:
        assert (n - 1) * hop_s + window_s <= duration_s + 1e-6 < n * hop_s + window_s


def test_build_devices_checks_options(data_dir: Path) -> None:
    settings = Settings()
    with pytest.raises(ConfigError):
        build_devices(settings, SimulateOptions(patients=0))
    with pytest.raises(DataError, match="not in"):
        build_devices(settings, SimulateOptions(source="ltafdb", path=data_dir / "ltafdb", records=("nope",)))
    devices, extra = build_devices(settings, SimulateOptions(source="ltafdb", path=data_dir / "ltafdb",
                                                             records=("00",), patients=2, start_h=1.0))
    assert [d.patient_id for d in devices] == ["ltafdb-00", "ltafdb-00-1"]
    assert "synthetic morphology on real timing" in str(extra["morphology"])


def test_gateway_falls_back_to_float32_beyond_the_int16_range() -> None:
    from ecgmon.contracts import Window, decode_window, encode_window, wire_encoding

    big = np.array([0.0, 40.0, -35.5], dtype=np.float32)
    assert wire_encoding(big) == "float32"
    assert wire_encoding(np.array([0.0, 30.0], dtype=np.float32)) == "int16"
    w = Window("p1", "d1", 0, 0, 250.0, big)
    assert decode_window(encode_window(w, encoding=wire_encoding(big))) == w
