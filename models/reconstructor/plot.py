"""The picture clinicians look at: true vs reconstructed 12 leads with the uncertainty band."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgmon.errors import ConfigError
from models.interfaces import OUTPUT_LEADS, PatientMeta, Reconstructor
from models.reconstructor.data import ZArrays
from models.reconstructor.metrics import pearson

BAND_SIGMAS = 2.0


def plot_record(
    model: Reconstructor, data: ZArrays, record: str | int, out: Path, *, samples: int, title: str = ""
) -> Path:
    """Write a PNG of record ``record`` (an id from the CSV, or a row number): lead I input, then 11 leads.

    Each reconstructed lead is drawn with a +/-2 std band; the panel label gives its Pearson r.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = str(record)
    if key in data.record_ids:
        row = data.record_ids.index(key)
    elif key.isdigit() and int(key) < len(data):
        row = int(key)
    else:
        raise ConfigError(f"Record {record!r} is neither a record id nor a row number of this folder.")
    x = data.x[row : row + 1]
    meta = PatientMeta(data.age[row : row + 1], data.sex[row : row + 1])
    mean, std = model.reconstruct(x[0:1, 0], meta, samples)
    r = pearson(x[:, 1:], mean)[0]
    t_s = np.arange(x.shape[-1]) / data.fs_hz
    fig, axes = plt.subplots(12, 1, figsize=(11, 15), sharex=True)
    axes[0].plot(t_s, x[0, 0], color="black", lw=0.8)
    axes[0].set_ylabel("I\n(input)", rotation=0, ha="right", va="center")
    for k, lead in enumerate(OUTPUT_LEADS):
        ax = axes[k + 1]
        lo, hi = mean[0, k] - BAND_SIGMAS * std[0, k], mean[0, k] + BAND_SIGMAS * std[0, k]
        ax.fill_between(t_s, lo, hi, color="tab:orange", alpha=0.3, lw=0, label=f"±{BAND_SIGMAS:g} std")
        ax.plot(t_s, x[0, k + 1], color="black", lw=0.8, label="true")
        ax.plot(t_s, mean[0, k], color="tab:red", lw=0.8, label="reconstructed")
        ax.set_ylabel(f"{lead}\nr={r[k]:.2f}", rotation=0, ha="right", va="center")
        both = np.concatenate([x[0, k + 1], mean[0, k]])
        pad = 0.15 * float(np.ptp(both)) + 0.1
        ax.set_ylim(float(both.min()) - pad, float(both.max()) + pad)  # the band may be clipped at peaks
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[1].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1].set_xlabel("time (s)")
    age, sex = data.age[row], data.sex[row]
    who = f"age {age:g}" if np.isfinite(age) else "age unknown"
    who += ", " + (
        {0.0: "male", 1.0: "female"}.get(float(sex), "sex unknown") if np.isfinite(sex) else "sex unknown"
    )
    fig.suptitle(
        f"{title or model.name}: record {data.record_ids[row]} ({who}); z units per lead, {data.fs_hz:g} Hz; "
        f"mean r = {r.mean():.2f}, MC samples = {samples}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
