"""Drive an alert evaluation: evidence per record (cached when asked), replay, score, report.

``ecgmon eval alerts`` is a thin layer over ``evaluate``; tests call it too.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ecgmon.errors import ConfigError, DataError
from ecgmon.settings import Settings
from tools.evaluation.alerts.scoring import (
    EVIDENCE_VERSION,
    TOLERANCE_S,
    Evidence,
    Truth,
    by_evidence,
    compute_evidence,
    evaluate_settings,
)

Dataset = Literal["cpsc2021", "ltafdb"]
Progress = Callable[[str, int, int], None]
"""``progress(record, windows_done, windows_total)``."""


@dataclass
class EvalOptions:
    """What to evaluate and how (CLI options)."""

    dataset: Dataset
    path: Path
    min_episode_s: float = 30.0
    records: Sequence[str] | None = None
    hours: float | None = None
    classifier: bool = True
    mc_samples: int | None = None
    cache_dir: Path | None = None
    render_fs_hz: float = 128.0
    seed: int = 0
    jobs: int = 1


def _load_classifier(settings: Settings, seed: int = 0) -> Any:
    import torch

    from models import registry

    threads = settings.torch_threads or max(1, (os.cpu_count() or 2))
    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # MC dropout masks: the same run gives the same figures
    device = registry.resolve_device(settings.device)
    return registry.load(settings.classifier, device=device, mc_mode=settings.classifier_mc_mode)


def _cached(cache_dir: Path | None, key: str, make: Callable[[], Evidence]) -> tuple[Evidence, bool]:
    if cache_dir is None:
        return make(), False
    f = cache_dir / f"{key}.npz"
    if f.is_file():
        return Evidence.load(f), True
    ev = make()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"{key}.tmp.npz"
    ev.save(tmp)
    tmp.replace(f)
    return ev, False


def collect(
    opts: EvalOptions, settings: Settings, *, classifier: Any | None = None, progress: Progress | None = None
) -> tuple[list[tuple[Evidence, Truth]], float, int]:
    """Evidence and truth for every selected record; returns ``(pairs, compute_seconds, windows_computed)``."""
    if opts.classifier and classifier is None and (opts.dataset != "ltafdb" or opts.jobs <= 1):
        classifier = _load_classifier(settings, opts.seed)
    clf = classifier if opts.classifier else None
    mc = settings.mc_samples if opts.mc_samples is None else opts.mc_samples
    pairs: list[tuple[Evidence, Truth]] = []
    seconds, computed = 0.0, 0
    if opts.dataset == "cpsc2021":
        from tools.evaluation.alerts import cpsc2021

        names = _select(cpsc2021.list_records(opts.path), opts.records)
        episodes = cpsc2021.load_episodes(opts.path)
        for name in names:
            windows, fs, t_end, secs = cpsc2021.load_record(
                opts.path, name, window_s=settings.window_s, hop_s=settings.hop_s
            )
            if not len(windows):
                continue
            version = "rr" if clf is None else str(getattr(clf, "version", settings.classifier))
            key = (f"cpsc2021-{_folder_tag(opts.path)}-{name}-{version}-mc{mc}"
                   f"-w{settings.window_s:g}-h{settings.hop_s:g}-v{EVIDENCE_VERSION}")

            def make(name: str = name, windows: Any = windows, fs: float = fs, t_end: Any = t_end) -> Evidence:
                return compute_evidence(name, windows, fs, t_end, clf, window_s=settings.window_s, mc_samples=mc)

            t0 = time.perf_counter()
            ev, hit = _cached(opts.cache_dir, key, make)
            if not hit:
                seconds += time.perf_counter() - t0
                computed += len(windows)
            if progress:
                progress(name, len(windows), len(windows))
            pairs.append((ev, cpsc2021.truth_for(name, episodes, secs)))
    elif opts.dataset == "ltafdb":
        from tools.evaluation.alerts import ltafdb

        names = _select(ltafdb.list_records(opts.path), opts.records)
        wall = time.perf_counter()
        if opts.jobs <= 1:
            results = [_ltafdb_job(opts, settings, name, mc, clf, progress) for name in names]
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=opts.jobs, mp_context=ctx) as pool:
                futures = [pool.submit(_ltafdb_job, opts, settings, name, mc, None, None) for name in names]
                results = []
                for name, fut in zip(names, futures, strict=True):
                    results.append(fut.result())
                    if progress:
                        progress(name, len(results[-1][0].t_end_s), len(results[-1][0].t_end_s))
        for ev, truth, n_computed in results:
            pairs.append((ev, truth))
            computed += n_computed
        seconds = time.perf_counter() - wall if computed else 0.0
    else:
        raise ConfigError(f"Dataset {opts.dataset!r} is unknown; use cpsc2021 or ltafdb.")
    if not pairs:
        raise DataError(f"No record in {opts.path} gave a full {settings.window_s:g} s window; nothing to evaluate.")
    return pairs, seconds, computed


_CHILD_CLASSIFIER: dict[str, Any] = {}


def _ltafdb_job(
    opts: EvalOptions, settings: Settings, name: str, mc: int, clf: Any | None, progress: Progress | None
) -> tuple[Evidence, Truth, int]:
    """One LTAFDB record's evidence (from the cache when there): ``(evidence, truth, windows computed)``.

    Runs in the caller's process (``clf`` given) or in a pool worker, which loads the classifier once with
    ``torch_threads`` split between the jobs.
    """
    from tools.evaluation.alerts import ltafdb

    timeline = ltafdb.load(opts.path, name)
    truth = ltafdb.truth_for(timeline, hours=opts.hours)
    version = "rr" if not opts.classifier else (clf.version if clf is not None else _classifier_version(settings))
    key = (f"ltafdb-{_folder_tag(opts.path)}-{name}-{version}-mc{mc}-w{settings.window_s:g}-h{settings.hop_s:g}"
           f"-fs{opts.render_fs_hz:g}-s{opts.seed}-h{opts.hours or 'all'}-v{EVIDENCE_VERSION}")

    def make() -> Evidence:
        model = clf
        if opts.classifier and model is None:
            if "model" not in _CHILD_CLASSIFIER:
                threads = max(1, (settings.torch_threads or (os.cpu_count() or 2)) // max(1, opts.jobs))
                _CHILD_CLASSIFIER["model"] = _load_classifier(
                    settings.model_copy(update={"torch_threads": threads}), opts.seed
                )
            model = _CHILD_CLASSIFIER["model"]
        return ltafdb.evidence(timeline, truth, model, settings=settings, fs_hz=opts.render_fs_hz, seed=opts.seed,
                               mc_samples=mc, progress=progress)

    ev, hit = _cached(opts.cache_dir, key, make)
    if hit and progress:
        progress(name, len(ev.t_end_s), len(ev.t_end_s))
    return ev, truth, 0 if hit else len(ev.t_end_s)


def _classifier_version(settings: Settings) -> str:
    """The weights' version tag without building the network twice: name plus the weight file's hash."""
    import hashlib

    from models.classifier.builders import weights_path

    path = weights_path(settings.classifier)
    if not path.is_file():
        return f"{settings.classifier}-untrained"
    return f"{settings.classifier}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def _folder_tag(path: Path) -> str:
    """A short tag of the dataset folder, so caches of same-named records in other folders never mix."""
    return f"{zlib.crc32(str(Path(path).resolve()).encode()):08x}"


def _select(available: list[str], wanted: Sequence[str] | None) -> list[str]:
    if not wanted:
        return available
    missing = [w for w in wanted if w not in available]
    if missing:
        raise DataError(f"Records {', '.join(missing)} are not in the folder; it has {', '.join(available[:10])} ...")
    return list(wanted)


def report(
    pairs: Sequence[tuple[Evidence, Truth]], settings: Settings, opts: EvalOptions, *, seconds: float, computed: int
) -> dict[str, Any]:
    """The JSON report: headline figures with the configured settings, per record, by evidence."""
    mode = settings.alert_af_evidence
    if not all(e.has_classifier for e, _ in pairs) and mode != "rr":
        settings = settings.model_copy(update={"alert_af_evidence": "rr"})
    summary = evaluate_settings(pairs, settings, min_episode_s=opts.min_episode_s)
    out: dict[str, Any] = {"dataset": opts.dataset, **summary.figures()}
    out["per_record"] = summary.per_record
    out["by_evidence"] = by_evidence(pairs, settings, min_episode_s=opts.min_episode_s)
    out["configured_evidence"] = settings.alert_af_evidence
    out["windows"] = int(sum(len(e.t_end_s) for e, _ in pairs))
    out["windows_per_s"] = round(computed / seconds, 1) if seconds > 0 else None
    out["rules"] = {
        "evidence": settings.alert_af_evidence,
        "min_episode_s": opts.min_episode_s,
        "false_alert": f"no annotated AF within the alert's span +- {TOLERANCE_S:g} s",
        "detected": "an AF alert's span (start of opening window to resolution) overlaps the episode",
        "onset_delay": "alert open time (end of opening window) - episode onset, floored at 0",
        "af_burden": "share of the span's windows whose evidence counts as AF (configured mode and gates) vs the "
        "share of the span annotated AF; alert_burden_error_pp uses the time an AF alert was open instead",
        "fresh_onset_delay": "onset delay over episodes whose alert opened at or after the onset",
    }
    out["settings"] = {k: v for k, v in settings.model_dump().items() if k.startswith("alert_")}
    out["classifier"] = (
        None if not opts.classifier else {"name": settings.classifier, "mc_samples": opts.mc_samples
                                          if opts.mc_samples is not None else settings.mc_samples}
    )
    return out
