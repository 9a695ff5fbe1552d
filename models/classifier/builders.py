"""Registry builders ``teacher``, ``student``, ``baseline``: build the network, load its committed
weights from ``models/weights/classifier_NAME.pt``, and wrap it in ``RhythmClassifier``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ecgmon.errors import ModelError
from models.classifier.inference import RhythmClassifier
from models.classifier.nets import NetConfig, build_net
from models.mc_dropout import REPLAY_CHUNK
from models.registry import register

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
FS_HZ = 100.0
WINDOW_SAMPLES = 1000


def weights_path(kind: str) -> Path:
    """Where the committed weights of ``kind`` live."""
    return WEIGHTS_DIR / f"classifier_{kind}.pt"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def from_file(kind: str, path: Path, *, device: str = "cpu") -> RhythmClassifier:
    """A ``kind`` classifier with the weights in ``path`` instead of the committed ones.

    For comparing other training runs (another seed) through the same evaluation code; the registry and the
    stream always use the committed weights.
    """
    leads = 12 if kind == "teacher" else 1
    return _build(kind, leads, device, True, path=Path(path))


def _build(
    kind: str,
    leads: int,
    device: str,
    weights: bool,
    mc_mode: str = "full",
    path: Path | None = None,
    replay_chunk: int = REPLAY_CHUNK,
) -> RhythmClassifier:
    if not weights:
        cfg = NetConfig(in_leads=leads, samples=WINDOW_SAMPLES)
        return RhythmClassifier(
            kind,
            f"{kind}-untrained",
            build_net(kind, cfg),
            fs_hz=FS_HZ,
            window_samples=WINDOW_SAMPLES,
            leads=leads,
            device=device,
            mc_mode=mc_mode,
            replay_chunk=replay_chunk,
        )
    path = weights_path(kind) if path is None else path
    if not path.is_file():
        raise ModelError(f"Weights {path} are missing; train them with `ecgmon train classifier --kind {kind}`.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        cfg = NetConfig.from_dict(ckpt["net_config"])
        meta = json.loads(ckpt["meta"])
        net = build_net(kind, cfg)
        net.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"Weights {path} cannot be loaded into the {kind} network: {exc}.") from None
    return RhythmClassifier(
        kind,
        f"{kind}-{_sha256(path)[:12]}",
        net,
        fs_hz=float(meta["fs_hz"]),
        window_samples=int(meta["window_samples"]),
        leads=cfg.in_leads,
        device=device,
        mc_mode=mc_mode,
        replay_chunk=replay_chunk,
    )


@register("teacher")
def teacher(
    *, device: str = "cpu", weights: bool = True, mc_mode: str = "full", replay_chunk: int = REPLAY_CHUNK
) -> RhythmClassifier:
    """12-lead teacher; ``predict`` takes ``[n, 12, 1000]`` mV at 100 Hz (leads I..V6)."""
    return _build("teacher", 12, device, weights, mc_mode, replay_chunk=replay_chunk)


@register("student")
def student(
    *, device: str = "cpu", weights: bool = True, mc_mode: str = "full", replay_chunk: int = REPLAY_CHUNK
) -> RhythmClassifier:
    """Lead-I student with teacher-feature reconstruction and cross-attention fusion (stream default)."""
    return _build("student", 1, device, weights, mc_mode, replay_chunk=replay_chunk)


@register("baseline")
def baseline(
    *, device: str = "cpu", weights: bool = True, mc_mode: str = "full", replay_chunk: int = REPLAY_CHUNK
) -> RhythmClassifier:
    """The student's backbone and head without reconstruction or fusion, same data and budget."""
    return _build("baseline", 1, device, weights, mc_mode, replay_chunk=replay_chunk)
