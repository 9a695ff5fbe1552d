"""``ecgmon bench``: how much of the model's speed the streaming pipeline keeps, in one run.

1. Model only, in process (``tools.bench.model``): the worker's own ``Inference`` (models from
   ``models.registry.load``) at the pipeline's batch policy (``max_batch``, ``mc_samples``) and at
   batch 1; per-window stage times; FLOPs per window.
2. The whole pipeline (``tools.bench.pipeline``): an embedded broker and influxd on free ports
   under a temporary state dir (or the running stack with ``use_running``), N ``ecgmon worker``
   processes, rising offered loads of synthetic patients until delivered < 90 % of offered.
3. Derived: efficiency = pipeline windows/s at saturation / model-only windows/s (the model-only
   figure weighs the reconstructor by the share of windows the pipeline reconstructed), batching
   speed-up = batched / unbatched, patients watched in real time per worker and per machine
   (p99 <= 1 s), and where one window's CPU goes at saturation (worker, its models, InfluxDB, the
   broker) with the InfluxDB points it costs.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgmon import stack
from ecgmon.errors import ConfigError
from ecgmon.settings import Settings

AUTO_LOAD_START = 20.0
"""The first default offered load, windows/s: well below what a worker here sustains (~170/s at issue 24)."""
AUTO_LOAD_STEP = 1.4
"""Each default load is this many times the one before (a geometric ladder: 20, 28, 39.2, 54.9, ...)."""
AUTO_LOAD_CEILING = 1.3
"""The ladder stops above this multiple of the model-only rate: the pipeline cannot beat its model."""


def default_loads(model_windows_per_s: float) -> list[float]:
    """Rising offered loads from ``AUTO_LOAD_START`` to past saturation (the sweep stops at the first saturated one).

    The model-only rate bounds the pipeline's from above, but the pipeline's non-model work (Kafka,
    decoding, InfluxDB, the broker on the same cores) keeps it far below (0.29 of it in issue 13's
    runs), so loads that start at a fraction of the model's rate saturate at once; a ladder from a
    low start always finds unsaturated loads first.
    """
    ceiling = max(AUTO_LOAD_START, AUTO_LOAD_CEILING * model_windows_per_s)
    loads = [AUTO_LOAD_START]
    while loads[-1] < ceiling:
        loads.append(round(loads[-1] * AUTO_LOAD_STEP, 1))
    return loads


@dataclass
class BenchOptions:
    """What one bench run does; every duration in seconds, every load in windows/s."""

    device: str = "cpu"
    loads: list[float] | None = None
    duration_s: float = 30.0
    workers: list[int] = field(default_factory=lambda: [1])
    torch_threads: int | None = None
    speed: float = 10.0
    """Every patient sends at this multiple of real time; patients = load x hop_s / speed."""
    model_windows: int = 192
    unbatched_windows: int = 24
    model_min_s: float = 4.0
    mc_sweep: tuple[int, ...] = ()
    use_running: bool = False
    worker_timeout_s: float = 240.0
    drain_s: float = 30.0
    log_dir: Path | None = None


class Reporter:
    """Progress callbacks; the CLI gives a rich one, tests the silent default."""

    def phase(self, text: str) -> None:
        """A new step begins."""

    def load_started(self, label: str, total: int) -> None:
        """A load of ``total`` windows begins."""

    def load_tick(self, sent: int, delivered: int) -> None:
        """Windows sent and predictions back so far."""

    def load_done(self, summary: str) -> None:
        """A load ended."""


@contextlib.contextmanager
def _stack(base: Settings, use_running: bool) -> Iterator[Settings]:
    if use_running:
        yield base
        return
    state = Path(tempfile.mkdtemp(prefix="ecgmon-bench-"))
    s = base.model_copy(
        update={
            "state_dir": state,
            "kafka_port": stack.free_port(),
            "influx_port": stack.free_port(),
            "kafka_bootstrap": "",
            "influx_url": "",
            "influx_version": 1,
            "kafka_security_protocol": "PLAINTEXT",
        }
    )
    try:
        stack.up(s)
        yield s
    finally:
        stack.down(s)
        shutil.rmtree(state, ignore_errors=True)


def _group_settings(s: Settings, tag: str) -> Settings:
    # Tansu holds a join for about the rebalance timeout: short ones start the bench sooner.
    return s.namespaced(tag).model_copy(update={"kafka_session_timeout_s": 10.0, "kafka_rebalance_timeout_s": 10.0})


def _run_group(
    s: Settings,
    opts: BenchOptions,
    n_workers: int,
    threads: int,
    rates: list[float],
    *,
    sweep: bool,
    rep: Reporter,
    log_dir: Path,
) -> list[dict[str, Any]]:
    """Start ``n_workers``, warm them up, offer ``rates`` in order (a sweep stops at the first saturated load)."""
    from tools.bench.model import synthetic_windows
    from tools.bench.pipeline import Workers, run_load

    tag = f"bench{n_workers}w{uuid.uuid4().hex[:6]}"
    g = _group_settings(s, tag)
    stack.create_topics(g.bootstrap, g.topics(), g.partitions)
    workers = Workers(g, n_workers, torch_threads=threads, log_dir=log_dir)
    rep.phase(f"starting {n_workers} worker(s) (app id {g.app_id}); a join takes ~15-30 s")
    results: list[dict[str, Any]] = []
    try:
        workers.start(opts.worker_timeout_s)
        warm = synthetic_windows(g, 4 * g.partitions * n_workers, patients=4 * g.partitions, prefix=f"{tag}w")
        rep.load_started("warm-up", len(warm))
        run_load(
            g,
            warm,
            rate=50.0,
            duration_s=0,
            patients=4 * g.partitions,
            prefix=f"{tag}w",
            drain_s=120.0,
            tick=rep.load_tick,
        )
        rep.load_done("warm-up done")
        for i, rate in enumerate(rates):
            # Same pace and same patients (seed 0) at every load; only their number grows. With a fixed
            # number of patients a higher load meant more windows per patient, so more of them in the
            # part of each patient's timeline where alerts are open and windows are reconstructed
            # (5.8 % at 60 /s, 11.6 % at 170 /s): the saturating loads carried more work per window.
            n = max(1, round(rate * opts.duration_s))
            patients = min(n, max(1, round(rate * g.hop_s / opts.speed)))
            prefix = f"{tag}l{i:02d}"
            windows = synthetic_windows(g, n, patients=patients, prefix=prefix, seed=0)
            rep.load_started(f"{n_workers} worker(s), {rate:.1f} windows/s", n)
            res = run_load(
                g,
                windows,
                rate=rate,
                duration_s=opts.duration_s,
                patients=patients,
                prefix=prefix,
                drain_s=opts.drain_s,
                tick=rep.load_tick,
                cpu_parts=workers.cpu_parts(),
                worker_tags=workers.tags(),
            )
            entry = {"workers": n_workers, **res.as_json()}
            results.append(entry)
            rep.load_done(
                f"{rate:.1f}/s offered -> {res.delivered_windows_per_s:.1f}/s delivered, "
                f"p50 {res.p50_ms or float('nan'):.0f} ms, p99 {res.p99_ms or float('nan'):.0f} ms"
                + (" (saturated)" if res.saturated else "")
                + "; CPU ms/window "
                + ", ".join(f"{k} {v:.2f}" for k, v in res.cpu_ms_per_window.items() if k != "cores_busy")
                + f"; {res.influx_points_per_window} InfluxDB points/window"
            )
            if sweep and res.saturated:
                break
    finally:
        workers.stop()
    return results


def saturating_load(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """The one-worker-count sweep's first saturated load, or its highest load when none saturated.

    Its CPU and InfluxDB figures are the bench's top-level ``cpu_ms_per_window`` and
    ``influx_points_per_window``: what one window costs when the pipeline runs flat out.
    """
    saturated = [ld for ld in loads if ld["saturated"]]
    if saturated:
        return saturated[0]
    return max(loads, key=lambda ld: ld["offered_windows_per_s"])


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def run_bench(base: Settings, opts: BenchOptions, rep: Reporter | None = None) -> dict[str, Any]:
    """One full bench run; returns the JSON document (see BENCHMARKS.md for every key)."""
    from streams.inference import Inference
    from tools.bench.model import classifier_rates, measure, model_input, synthetic_windows
    from tools.bench.report import p99_at, realtime_windows_per_s

    rep = rep or Reporter()
    if opts.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked but torch sees no GPU here; use --device cpu.")
    if not opts.workers or min(opts.workers) < 1:
        raise ConfigError("--workers needs one or more counts >= 1, e.g. --workers 1,2.")
    threads = opts.torch_threads if opts.torch_threads is not None else base.torch_threads
    s = base.model_copy(update={"device": opts.device, "torch_threads": threads})

    rep.phase(f"loading {s.classifier} and {s.reconstructor} on {opts.device}")
    engine = Inference.load(s)
    windows = synthetic_windows(s, opts.model_windows, patients=16, prefix="model")
    figures = measure(
        engine,
        windows,
        unbatched_windows=opts.unbatched_windows,
        min_s=opts.model_min_s,
        mc_sweep=opts.mc_sweep,
        progress=rep.phase,
    )
    clf_rate = figures.classifier_windows_per_s
    rates = opts.loads or default_loads(clf_rate)
    log_dir = opts.log_dir or base.state_dir / "bench-logs"

    first, rest = opts.workers[0], opts.workers[1:]
    scaling_rates: dict[int, float] = {}
    scaling_cpu: dict[int, float | None] = {}
    with _stack(s, opts.use_running) as st:
        loads = _run_group(st, opts, first, threads, rates, sweep=True, rep=rep, log_dir=log_dir)
        if not any(ld["saturated"] for ld in loads) and (rest or opts.loads is None):
            over = 2.0 * max(ld["offered_windows_per_s"] for ld in loads)
            loads += _run_group(st, opts, first, threads, [over], sweep=False, rep=rep, log_dir=log_dir)
        saturated = [ld for ld in loads if ld["saturated"]]
        sat_load = saturating_load(loads)
        sat_rate = max(ld["delivered_windows_per_s"] for ld in (saturated or loads))
        scaling_rates[first] = sat_rate
        scaling_cpu[first] = sat_load["cpu_ms_per_window"].get("worker")
        for n in rest:
            over = 1.6 * sat_rate * n / first
            res = _run_group(st, opts, n, threads, [round(over, 1)], sweep=False, rep=rep, log_dir=log_dir)
            scaling_rates[n] = res[0]["delivered_windows_per_s"]
            scaling_cpu[n] = res[0]["cpu_ms_per_window"].get("worker")
            loads += res

    # The machine may be shared: time the model once more after the pipeline and use the median.
    rep.phase("classifier once more, after the pipeline runs")
    again = classifier_rates(
        engine,
        model_input(engine, windows),
        unbatched_windows=opts.unbatched_windows,
        min_s=opts.model_min_s,
        repeats=1,
    )
    clf_samples = figures.samples["batched"] + again[0]
    unbatched_samples = figures.samples["unbatched"] + again[1]
    clf_rate = float(np.median(clf_samples))
    unbatched_rate = float(np.median(unbatched_samples))
    sweep_loads = [ld for ld in loads if ld["workers"] == first]
    delivered = sum(ld["delivered"] for ld in sweep_loads)
    recon_share = sum(ld["reconstructed"] for ld in sweep_loads) / delivered if delivered else 0.0
    rec_rate = figures.reconstructor_windows_per_s
    model_rate = 1.0 / (1.0 / clf_rate + (recon_share / rec_rate if rec_rate else 0.0))
    half = p99_at(sweep_loads, sat_rate / 2)
    unsat = [ld for ld in sweep_loads if not ld["saturated"] and ld["p99_ms"] is not None]
    at = min(unsat, key=lambda ld: abs(ld["offered_windows_per_s"] - sat_rate / 2)) if unsat else None
    realtime = realtime_windows_per_s(sweep_loads)
    out: dict[str, Any] = {
        "device": opts.device,
        "pipeline_windows_per_s": round(sat_rate, 2),
        "model_windows_per_s": round(model_rate, 2),
        "efficiency": round(sat_rate / model_rate, 3),
        "unbatched_windows_per_s": round(unbatched_rate, 2),
        "batching_speedup": round(clf_rate / unbatched_rate, 2),
        "latency_ms": {"p50": at["p50_ms"] if at else None, "p99": at["p99_ms"] if at else None},
        "cpu_ms_per_window": sat_load["cpu_ms_per_window"],
        "influx_points_per_window": sat_load["influx_points_per_window"],
        "loads": loads,
        "patients_realtime_per_worker": round(realtime * s.hop_s / first, 1),
        "patients_realtime_per_machine": round(realtime * s.hop_s, 1),
        "details": {
            "latency_at_offered_windows_per_s": at["offered_windows_per_s"] if at else None,
            "saturating_offered_windows_per_s": sat_load["offered_windows_per_s"],
            "models_cpu_source": "worker CPU x the models' share measured in the workers (model_cpu_s: "
            "time.thread_time around the model calls in the inference thread, over cpu_s, in their pipeline points)",
            "influx_points_source": "InfluxDB's own SHOW STATS httpd pointsWrittenOK, per delivered window",
            "p99_ms_at_half_saturation": None if half is None else round(half, 1),
            "saturation_reached": bool(saturated),
            "workers": first,
            "torch_threads": threads,
            "classifier": s.classifier,
            "reconstructor": s.reconstructor,
            "reconstructor_mc_mode": getattr(s, "reconstructor_mc_mode", "full"),
            "classifier_mc_mode": s.classifier_mc_mode,
            "classifier_precision": "bf16" if engine.classifier_bf16 else "fp32",
            "mc_samples": s.mc_samples,
            "max_batch": s.max_batch,
            "max_delay_ms": s.max_delay_ms,
            "reconstruction_policy": s.reconstruction_policy,
            "model_weights": s.model_weights,
            "classifier_windows_per_s": round(clf_rate, 2),
            "classifier_windows_per_s_samples": [round(v, 2) for v in clf_samples],
            "unbatched_windows_per_s_samples": [round(v, 2) for v in unbatched_samples],
            "reconstructor_windows_per_s": None if rec_rate is None else round(rec_rate, 2),
            "reconstructed_share": round(recon_share, 4),
            "stages_ms_per_window": {k: round(v, 3) for k, v in figures.stages_ms.items()},
            "mc_sweep_windows_per_s": {str(k): round(v, 2) for k, v in figures.mc_sweep.items()},
            "flops_per_window": figures.flops_per_window,
            "hop_s": s.hop_s,
            "partitions": s.partitions,
            "duration_s": opts.duration_s,
            "worker_logs": str(log_dir),
        },
    }
    if rest:
        counts = [first, *rest]
        out["scaling"] = {
            "workers": counts,
            "windows_per_s": [round(scaling_rates[n], 2) for n in counts],
            "speedup": round(scaling_rates[counts[-1]] / scaling_rates[first], 3),
            "worker_cpu_ms_per_window": [scaling_cpu[n] for n in counts],
            "worker_cpu_ratio": _ratio(scaling_cpu[counts[-1]], scaling_cpu[first]),
        }
    return out
