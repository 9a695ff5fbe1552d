"""What one window costs InfluxDB, by what the pipeline decided for it (``streams.inference``).

A patient without an open alert: one prediction and one packed lead I (2 points). A reconstructed
window adds one packed point per reconstructed lead. Only a live window (an open alert, by
``ECGMON_LIVE_WAVEFORM``) adds the per-sample display points of lead I Grafana draws, and those of the
11 reconstructed leads only with ``ECGMON_LIVE_RECONSTRUCTION``.
"""

from __future__ import annotations

import numpy as np

from ecgmon.points import count_points
from ecgmon.settings import Settings
from models.interfaces import OUTPUT_LEADS
from streams.inference import Inference, Request
from tests.test_replay_determinism import _window


def test_points_per_window_by_decision() -> None:
    s = Settings(mc_samples=2, reconstruction_policy="every", torch_threads=1)
    engine = Inference.load(s)
    rng = np.random.default_rng(3)
    windows = [_window(f"p{i}", i, rng) for i in range(4)]
    decisions = [(False, False), (True, False), (False, True), (True, True)]  # (reconstruct, live)
    results = engine([Request(w, rec, 0.0, live=live) for w, (rec, live) in zip(windows, decisions, strict=True)])
    display = int(10 * s.display_hz)
    counts = [count_points(r.lines) for r in results]
    leads = len(OUTPUT_LEADS)
    assert counts == [2, 2 + leads, 2 + display, 2 + leads + display]  # no live reconstruction points by default
    engine.settings = s.model_copy(update={"live_reconstruction": True})
    live = engine([Request(windows[3], True, 0.0, live=True)])
    assert count_points(live[0].lines) == 2 + leads + display + leads * display
    quiet = [line for line in results[0].lines if isinstance(line, str)]
    assert [line.split(",", 1)[0] for line in quiet] == ["prediction", "ecg_strip"]
    assert all(r.reconstruction is not None for r, (rec, _) in zip(results, decisions, strict=True) if rec)
