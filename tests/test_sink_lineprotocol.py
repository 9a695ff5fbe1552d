"""Line protocol: escaping in ``ecgmon.influx.line`` and the pipeline's point builders agree with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecgmon import points
from ecgmon.contracts import Alert
from ecgmon.influx import escape_tag, line


def test_escapes_tags_measurements_and_string_fields() -> None:
    out = line("my meas,x", {"patient id": "a,b=c d"}, {"msg": 'say "hi"\\\nbye', "n": 3, "ok": True, "v": 1.5}, 12)
    assert out == r'my\ meas\,x,patient\ id=a\,b\=c\ d msg="say \"hi\"\\\nbye",n=3i,ok=true,v=1.5 12'


def test_drops_none_and_non_finite_fields_and_refuses_empty_points() -> None:
    assert line("m", {}, {"a": math.nan, "b": None, "c": 2.0}, 1) == "m c=2.0 1"
    with pytest.raises(ValueError, match="no finite field"):
        line("m", {}, {"a": math.inf}, 1)


def test_tags_are_sorted_and_empty_tags_left_out() -> None:
    assert line("m", {"z": "1", "a": "2", "e": ""}, {"v": 1}, 5) == "m,a=2,z=1 v=1i 5"


@given(st.text(min_size=1, max_size=20))
def test_escaped_tag_has_no_bare_separators(value: str) -> None:
    escaped = escape_tag(value.replace("\\", ""))
    for sep in (",", "=", " "):
        bare = escaped.replace("\\" + sep, "")
        assert sep not in bare


def test_waveform_lines_match_line_point_by_point() -> None:
    values = np.array([0.1, np.nan, -0.25, 1e-7])
    unc = np.array([0.01, 0.02, np.nan, 0.04])
    got = points.waveform_lines(
        "reconstruction",
        {"patient_id": "p 1", "lead": "V1"},
        {"value": values, "uncertainty": unc},
        fs_hz=50.0,
        t_start_ns=1_000_000_000_007,
    )
    expected = []
    for i in range(4):
        fields = {"value": round(float(values[i]), 5), "uncertainty": round(float(unc[i]), 5)}
        expected.append(line("reconstruction", {"patient_id": "p 1", "lead": "V1"}, fields, 1_000_000 + 20 * i))
    assert got == expected


def test_prediction_and_alert_points_follow_the_schema() -> None:
    pred = points.prediction_line(
        patient_id="p1",
        t_end_ns=10_000_000_000,
        label="A",
        confidence=0.9,
        uncertainty=0.1,
        probs={"N": 0.05, "A": 0.9, "O": 0.03, "~": 0.02},
        hr_bpm=None,
        sqi=0.8,
        seq=4,
        model="student:1",
        extra={"truth": "AF"},
    )
    assert pred.startswith('prediction,patient_id=p1 label="A",confidence=0.9,uncertainty=0.1,p_N=0.05,p_A=0.9,')
    assert 'p_~=0.02,sqi=0.8,seq=4i,model="student:1",truth="AF" 10000' in pred and "hr_bpm" not in pred
    alert = Alert(
        patient_id="p1",
        type="af",
        state="opened",
        severity="medium",
        confidence=0.8,
        message="AF in 3 of 4",
        t_ns=20_000_000,
        alert_id="p1:af:3",
        seq=3,
    )
    assert points.alert_line(alert) == (
        'alert,patient_id=p1,type=af state="opened",severity="medium",confidence=0.8,'
        'message="AF in 3 of 4",alert_id="p1:af:3",seq=3i 20'
    )


def test_strip_points_pack_one_window_per_lead_and_decode_back() -> None:
    from ecgmon.full_disclosure import decode_point

    x = np.sin(np.linspace(0, 20, 2500))
    (lead_i,) = points.strip_lines(patient_id="p 1", lead="I", t_start_ns=10_000_000_123, fs_hz=250.0, samples=x)
    assert lead_i.startswith(r'ecg_strip,lead=I,patient_id=p\ 1 fs_hz=250.0,n=2500i,scale=0.001,data="')
    assert lead_i.endswith('" 10000') and "sd" not in lead_i
    (v1,) = points.strip_lines(
        patient_id="p1", lead="V1", t_start_ns=0, fs_hz=100.0, samples=x[:1000], sd=np.abs(x[:1000]) / 10, model="m:1"
    )
    assert ',sd_scale=0.001,sd="' in v1 and 'model="m:1" 0' in v1
    fields = dict(part.split("=", 1) for part in v1.split(" ")[1].split(","))
    row = {
        "time": 0, "fs_hz": float(fields["fs_hz"]), "n": int(fields["n"][:-1]), "scale": float(fields["scale"]),
        "data": fields["data"].strip('"'), "sd_scale": float(fields["sd_scale"]), "sd": fields["sd"].strip('"'),
    }  # fmt: skip
    point = decode_point(row)
    assert point.sd is not None and np.max(np.abs(point.values - x[:1000])) <= 0.0005
    assert points.count_points([lead_i, v1]) == 2


def test_action_points_follow_the_schema() -> None:
    from ecgmon.contracts import AlertAction

    action = AlertAction(
        action_id="a1", kind="reject", patient_id="p1", user="tess", role="technician", t_ns=5_000_000,
        alert_id="p1:af:3", alert_type="af", text="artefact",
    )  # fmt: skip
    got = points.action_line(action)
    assert got.startswith("alert_action,action=reject,patient_id=p1,type=af,user=tess ")
    assert 'summary="reject by tess: artefact"' in got and got.endswith(" 5")
