"""``ecgmon chaos`` at CI size: faults against two real workers, then the delivery audit.

The long run (30 minutes, 30 faults) is in docs/reliability.md with its command; here 90 s of six
patients at 4x with three faults (seed 14: a kill -9, an InfluxDB outage, a SIGTERM) must end with
every window stored once, no replay judged differently and no alert episode opened twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgmon.settings import Settings
from tools.chaos import FAULT_KINDS, ChaosOptions, compare_alerts, plan_faults, run_chaos


def _opts(tmp_path: Path, **kw: object) -> ChaosOptions:
    base = {"minutes": 1.5, "faults": 3, "patients": 6, "speed": 4.0, "seed": 14, "out_dir": tmp_path}
    return ChaosOptions(**{**base, **kw})  # type: ignore[arg-type]


def test_the_same_seed_plans_the_same_faults(tmp_path: Path) -> None:
    opts = _opts(tmp_path, faults=40)
    a = plan_faults(np.random.default_rng(5), 1800.0, 40, opts)
    assert a == plan_faults(np.random.default_rng(5), 1800.0, 40, opts)
    assert a != plan_faults(np.random.default_rng(6), 1800.0, 40, opts)
    assert {f.kind for f in a} == set(FAULT_KINDS)
    assert all(90.0 <= f.at_s <= 1710.0 for f in a) and [f.at_s for f in a] == sorted(f.at_s for f in a)
    assert all(f.target == "influxdb" for f in a if f.kind == "influx_outage")


def test_compare_alerts_names_what_differs() -> None:
    a = {"alerts_opened": [["p1", "af", "p1:af:3"], ["p2", "brady", "p2:brady:7"]]}
    b = {"alerts_opened": [["p1", "af", "p1:af:3"], ["p2", "brady", "p2:brady:8"]]}
    assert compare_alerts(a, a) == []
    assert compare_alerts(a, b) == [
        "only in first: ('p2', 'brady', 'p2:brady:7')",
        "only in second: ('p2', 'brady', 'p2:brady:8')",
    ]


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_chaos_run_loses_and_duplicates_nothing(stack_settings: Settings, tmp_path: Path) -> None:
    result = run_chaos(stack_settings, _opts(tmp_path), say=print)
    assert result["faults"] == 3 and result["windows_sent"] == 6 * 90 * 4 // 10
    audit = {k: result[k] for k in ("lost", "duplicated_rows", "conflicting_predictions", "duplicated_alert_episodes")}
    assert audit == dict.fromkeys(audit, 0), (audit, result["alert_problems"], result["fault_log"])
    assert result["prediction_rows"] == result["windows_sent"]
