"""Line protocol: escaping per the InfluxDB spec, and a round trip through the real influxd."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecgmon.influx import InfluxClient, escape_tag, line


def test_escaping_of_tags_fields_and_measurement() -> None:
    got = line("my meas,x", {"patient_id": "a b,c=d"}, {"label": 'say "hi"\\', "n": 3, "ok": True, "x": 0.5}, 1234)
    assert got == r'my\ meas\,x,patient_id=a\ b\,c\=d label="say \"hi\"\\",n=3i,ok=true,x=0.5 1234'


def test_non_finite_and_none_fields_are_dropped() -> None:
    assert line("m", {}, {"a": math.nan, "b": None, "c": 1.0}, 1) == "m c=1.0 1"
    with pytest.raises(ValueError):
        line("m", {}, {"a": math.inf}, 1)


def test_tags_are_sorted_and_empty_tags_left_out() -> None:
    assert line("m", {"z": "1", "a": "2", "e": ""}, {"v": 1.0}, 5) == "m,a=2,z=1 v=1.0 5"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\\"), min_size=1))
def test_escaped_tags_have_no_bare_separators(value: str) -> None:
    escaped = escape_tag(value)
    i = 0
    while i < len(escaped):
        if escaped[i] == "\\":
            i += 2
            continue
        assert escaped[i] not in ", ="
        i += 1


@pytest.mark.integration
def test_written_points_come_back(influx: InfluxClient) -> None:
    now_ms = int(time.time() * 1000)
    tag = "weird id,=x"
    influx.write_lines([line("probe", {"patient_id": tag}, {"value": 1.5, "label": 'A "q"'}, now_ms)])
    rows = influx.query(f"SELECT value, label FROM probe WHERE patient_id = '{tag}'")
    assert rows and rows[0]["values"] == [[now_ms, 1.5, 'A "q"']]
    influx.write_lines([line("probe", {"patient_id": tag}, {"value": 2.5, "label": "B"}, now_ms)])
    assert influx.count(f"SELECT COUNT(value) FROM probe WHERE patient_id = '{tag}'") == 1  # same time: overwritten
