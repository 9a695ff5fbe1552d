"""The one settings object: every knob of ecgmon, each with its ``ECGMON_`` variable.

Defaults run the embedded stack on 127.0.0.1. Change a threshold by setting its variable
(for example ``ECGMON_ALERT_BRADY_BPM=45``) or in a ``.env`` file in the working directory.
``ecgmon settings`` prints every setting with its variable and current value (secrets masked).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ReconstructionPolicy = Literal["every", "every_k", "alert_open", "never"]
"""When the worker reconstructs the 12 leads of a window (``streams.reconstruction_policy``)."""
AfEvidence = Literal["classifier", "rr", "both", "combined"]
"""Which evidence opens AF alerts (``streams.alerts``)."""
LiveWaveform = Literal["alert_open", "always", "never"]
"""For which windows the worker also writes the live, per-sample waveform points Grafana draws."""
LogLevel = Literal["crit", "error", "warn", "info", "debug"]
"""Faust's log levels (it rejects ``warning``)."""


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ecgmon"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecgmon"


class Settings(BaseSettings):
    """All of ecgmon's configuration; read from ``ECGMON_*`` variables and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="ECGMON_", env_file=".env", extra="ignore", validate_default=True)

    # --- embedded stack -------------------------------------------------------------------
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where the embedded stack keeps pids, logs and InfluxDB data (ECGMON_STATE_DIR).",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Rebuildable data caches outside git, e.g. the PTB-XL pool (ECGMON_CACHE_DIR).",
    )
    host: str = Field("127.0.0.1", description="Address the embedded stack binds (ECGMON_HOST).")
    kafka_port: int = Field(9092, ge=1, le=65535, description="Embedded broker port (ECGMON_KAFKA_PORT).")
    influx_port: int = Field(8086, ge=1, le=65535, description="Embedded InfluxDB port (ECGMON_INFLUX_PORT).")
    stop_grace_s: float = Field(
        5.0, gt=0, description="Seconds between SIGTERM and SIGKILL on down (ECGMON_STOP_GRACE_S)."
    )
    start_timeout_s: float = Field(
        30.0, gt=0, description="Seconds to wait for a part to answer on up (ECGMON_START_TIMEOUT_S)."
    )

    # --- Kafka ----------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "",
        description="Bootstrap servers; empty means the embedded broker at host:kafka_port (ECGMON_KAFKA_BOOTSTRAP).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol (ECGMON_KAFKA_SECURITY_PROTOCOL)."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism when the protocol uses SASL (ECGMON_KAFKA_SASL_MECHANISM)."
    )
    kafka_sasl_username: str = Field("", description="SASL user name (ECGMON_KAFKA_SASL_USERNAME).")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (ECGMON_KAFKA_SASL_PASSWORD).")
    kafka_ssl_cafile: str = Field("", description="CA bundle for SSL to the broker (ECGMON_KAFKA_SSL_CAFILE).")
    kafka_session_timeout_s: float = Field(
        60.0, gt=0, description="A silent worker leaves its group after this long (ECGMON_KAFKA_SESSION_TIMEOUT_S)."
    )
    kafka_rebalance_timeout_s: float = Field(
        60.0, gt=0, description="How long a rebalance waits for members to rejoin (ECGMON_KAFKA_REBALANCE_TIMEOUT_S)."
    )
    kafka_fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        description="Longest a worker's fetch waits at the broker; Faust's own is 1500 ms "
        "(ECGMON_KAFKA_FETCH_MAX_WAIT_MS).",
    )
    kafka_linger_ms: float = Field(
        20.0,
        ge=0,
        description="How long the worker's producer gathers records into one request; Faust's own is 0. "
        "It delays only the Kafka outputs and the commit, not the InfluxDB write (ECGMON_KAFKA_LINGER_MS).",
    )
    partitions: int = Field(8, ge=1, description="Partitions of every topic; cannot shrink later (ECGMON_PARTITIONS).")
    app_id: str = Field("ecgmon", description="Faust app id = Kafka consumer group (ECGMON_APP_ID).")
    topic_windows: str = Field("ecg.windows", description="Input topic of ECG windows (ECGMON_TOPIC_WINDOWS).")
    topic_predictions: str = Field("ecg.predictions", description="Predictions topic (ECGMON_TOPIC_PREDICTIONS).")
    topic_reconstructions: str = Field(
        "ecg.reconstructions", description="Reconstructions topic (ECGMON_TOPIC_RECONSTRUCTIONS)."
    )
    topic_alerts: str = Field("ecg.alerts", description="Alerts topic (ECGMON_TOPIC_ALERTS).")
    topic_deadletter: str = Field("ecg.deadletter", description="Dead-letter topic (ECGMON_TOPIC_DEADLETTER).")
    topic_actions: str = Field(
        "ecg.actions", description="Technicians' actions on alerts, keyed by patient (ECGMON_TOPIC_ACTIONS)."
    )
    max_message_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Messages larger than this are refused before decoding (ECGMON_MAX_MESSAGE_BYTES).",
    )

    # --- InfluxDB -------------------------------------------------------------------------
    influx_url: str = Field("", description="InfluxDB URL; empty means http://host:influx_port (ECGMON_INFLUX_URL).")
    influx_database: str = Field("ecg", description="Database (1.x) or bucket (2.x) (ECGMON_INFLUX_DATABASE).")
    influx_version: Literal[1, 2] = Field(1, description="1 = no auth, 2 = token header (ECGMON_INFLUX_VERSION).")
    influx_token: SecretStr = Field(
        SecretStr(""), description="InfluxDB 2.x API token, never logged (ECGMON_INFLUX_TOKEN)."
    )
    influx_org: str = Field("ecgmon", description="InfluxDB 2.x organisation (ECGMON_INFLUX_ORG).")
    influx_batch_points: int = Field(5000, ge=1, description="Points per write request (ECGMON_INFLUX_BATCH_POINTS).")
    influx_gzip: bool = Field(
        False,
        description=(
            "Gzip the worker's write bodies (ECGMON_INFLUX_GZIP). Off by default: a window's body is mostly the "
            "packed strip, base64 of deflate, which gzip shrinks by only ~26 % for ~0.1 CPU ms per window in the "
            "worker and a gunzip in InfluxDB; turn it on when InfluxDB is across a slow or metered link."
        ),
    )
    influx_flush_ms: int = Field(
        200, ge=1, description="Flush a partial batch after this long (ECGMON_INFLUX_FLUSH_MS)."
    )
    influx_buffer_points: int = Field(
        200_000, ge=1, description="Bounded sink buffer; when full the consumer waits (ECGMON_INFLUX_BUFFER_POINTS)."
    )
    influx_retry_max_s: float = Field(
        10.0, gt=0, description="Longest back-off between write retries (ECGMON_INFLUX_RETRY_MAX_S)."
    )
    display_hz: float = Field(
        50.0,
        gt=0,
        description="Rate of the live waveforms written for Grafana; 50 Hz shows the rhythm, full "
        "fidelity is in the packed ecg_strip (ECGMON_DISPLAY_HZ).",
    )
    live_waveform: LiveWaveform = Field(
        "alert_open",
        description="Which windows also get live per-sample points (ecg_lead_i, reconstruction) for Grafana: "
        "alert_open = patients with an open alert, always, or never; every window is stored packed in "
        "ecg_strip either way (ECGMON_LIVE_WAVEFORM).",
    )
    live_reconstruction: bool = Field(
        False,
        description="Also write the live per-sample points of the 11 reconstructed leads (the reconstruction "
        "measurement Grafana's 12-lead panel draws; 5,500 points per reconstructed window, most of InfluxDB's "
        "work in the bench). Off: the console's alert page and the report draw the 12-lead from the packed "
        "ecg_strip points (ECGMON_LIVE_RECONSTRUCTION).",
    )

    # --- windows --------------------------------------------------------------------------
    window_s: float = Field(10.0, gt=0, description="Window length a gateway sends, seconds (ECGMON_WINDOW_S).")
    hop_s: float = Field(10.0, gt=0, description="Start-to-start step between windows, seconds (ECGMON_HOP_S).")

    # --- inference ------------------------------------------------------------------------
    device: str = Field("auto", description="Torch device: auto, cpu, cuda or cuda:N (ECGMON_DEVICE).")
    torch_threads: int = Field(
        0, ge=0, description="Torch intra-op threads; 0 = all cores but one (the event loop's) (ECGMON_TORCH_THREADS)."
    )
    classifier: str = Field("student", description="Registry name of the classifier (ECGMON_CLASSIFIER).")
    reconstructor: str = Field("dual_branch", description="Registry name of the reconstructor (ECGMON_RECONSTRUCTOR).")
    mc_samples: int = Field(8, ge=1, description="Monte Carlo dropout passes for uncertainty (ECGMON_MC_SAMPLES).")
    max_batch: int = Field(64, ge=1, description="A batch flushes at this many windows (ECGMON_MAX_BATCH).")
    max_delay_ms: int = Field(
        100, ge=0, description="... or when its oldest window waited this long (ECGMON_MAX_DELAY_MS)."
    )
    queue_windows: int = Field(
        512, ge=1, description="Bounded inference queue; full = consumption waits (ECGMON_QUEUE_WINDOWS)."
    )
    classifier_mc_mode: Literal["full", "head"] = Field(
        "head",
        description="Classifier MC dropout: full (every pass through the whole net) or head (trunk once, "
        "head sampled; measured ~6x the throughput) (ECGMON_CLASSIFIER_MC_MODE).",
    )
    classifier_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Classifier arithmetic on CPU: bf16 autocast (measured 1.2-1.5x at batch 64, same hold-out F1, "
        "99.7 % of records unchanged), fp32, or auto = bf16 where the CPU has native bf16 (AVX512-BF16/AMX); "
        "CUDA always autocasts (ECGMON_CLASSIFIER_PRECISION).",
    )
    reconstructor_mc_mode: Literal["full", "head", "variance"] = Field(
        "variance",
        description="MC dropout over the whole net (full), the trunk once and only the head sampled (head, "
        "2.5x cheaper than full), or no dropout: one pass whose std is the predicted variance (variance; "
        "issue 24: the same ptbxl_z val r and Spearman as head at a quarter of its cost) "
        "(ECGMON_RECONSTRUCTOR_MC_MODE).",
    )
    classifier_replay_chunk: int = Field(
        16,
        ge=1,
        description="Windows per classifier forward pass with replayable MC dropout; a batch is padded to a "
        "multiple of it, so every window gets the same bits whatever batch it is in. 16 is cheapest per window "
        "from batches of ~12 up (saturation); a smaller chunk wastes less on the few-window batches of light "
        "loads (ECGMON_CLASSIFIER_REPLAY_CHUNK).",
    )
    reconstructor_replay_chunk: int = Field(
        4,
        ge=1,
        description="Windows per reconstructor forward pass on the replayable path; a batch's reconstructions "
        "are padded to a multiple of it. 4 suits alert_open (~4 of 64 windows); 16 is cheaper per window for "
        "the every policy (ECGMON_RECONSTRUCTOR_REPLAY_CHUNK).",
    )
    reconstruction_policy: ReconstructionPolicy = Field(
        "alert_open", description="When to reconstruct 12 leads (ECGMON_RECONSTRUCTION_POLICY)."
    )
    reconstruction_every_k: int = Field(
        6, ge=1, description="k for the every_k policy (ECGMON_RECONSTRUCTION_EVERY_K)."
    )
    model_weights: bool = Field(
        True, description="Load committed weights; false = untrained models, for tests (ECGMON_MODEL_WEIGHTS)."
    )
    lead_off_flat_mv: float = Field(
        0.05, gt=0, description="Peak-to-peak below this many mV means lead-off (ECGMON_LEAD_OFF_FLAT_MV)."
    )
    lead_off_clip_fraction: float = Field(
        0.2, gt=0, le=1, description="Share of samples at the extremes = saturation (ECGMON_LEAD_OFF_CLIP_FRACTION)."
    )
    r_peak_min_ratio: float = Field(
        0.4,
        ge=0,
        lt=1,
        description=(
            "R peaks smaller than this share of the window's typical (75th percentile) peak are dropped: T waves "
            "at slow rates and noise inside a pause are not beats (ECGMON_R_PEAK_MIN_RATIO; 0 keeps all)."
        ),
    )

    # --- alerts (every threshold of the alert engine) -----------------------------------
    # AF defaults tuned on real-wearable development streams (`ecgmon eval build-devset`,
    # `python -m tools.evaluation.alerts.devtune`) and checked on LTAFDB and CPSC 2021 (docs/alerts.md).
    alert_af_k: int = Field(3, ge=1, description="AF opens when k of the last n windows are AF (ECGMON_ALERT_AF_K).")
    alert_af_n: int = Field(4, ge=1, description="n of the AF k-of-n rule (ECGMON_ALERT_AF_N).")
    alert_af_confidence: float = Field(
        0.5, ge=0, le=1, description="Least AF probability that counts (ECGMON_ALERT_AF_CONFIDENCE)."
    )
    alert_af_max_uncertainty: float = Field(
        1.0,
        ge=0,
        description="Most predictive uncertainty, normalised entropy 0-1; 1 = no gate "
        "(ECGMON_ALERT_AF_MAX_UNCERTAINTY).",
    )
    alert_af_resolve_m: int = Field(
        6, ge=1, description="AF resolves after m non-AF windows in a row (ECGMON_ALERT_AF_RESOLVE_M)."
    )
    alert_af_evidence: AfEvidence = Field(
        "combined", description="Which evidence opens AF alerts (ECGMON_ALERT_AF_EVIDENCE)."
    )
    alert_brady_bpm: float = Field(
        40.0, gt=0, description="Bradycardia below this heart rate (ECGMON_ALERT_BRADY_BPM)."
    )
    alert_tachy_bpm: float = Field(
        150.0, gt=0, description="Tachycardia above this heart rate (ECGMON_ALERT_TACHY_BPM)."
    )
    alert_rate_sustain_windows: int = Field(
        2, ge=1, description="Windows in a row a brady/tachy rate must last (ECGMON_ALERT_RATE_SUSTAIN_WINDOWS)."
    )
    alert_pause_s: float = Field(
        3.0, gt=0, description="A pause is an RR interval longer than this (ECGMON_ALERT_PAUSE_S)."
    )
    alert_min_sqi: float = Field(
        0.3, ge=0, le=1, description="Below this signal quality a window is poor (ECGMON_ALERT_MIN_SQI)."
    )
    alert_technical_windows: int = Field(
        2, ge=1, description="Poor windows in a row that open a technical alert (ECGMON_ALERT_TECHNICAL_WINDOWS)."
    )
    alert_technical_resolve_windows: int = Field(
        2,
        ge=1,
        description="Good windows in a row that resolve a technical alert (ECGMON_ALERT_TECHNICAL_RESOLVE_WINDOWS).",
    )
    alert_af_rr_min_score: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Least RR-irregularity score (COSEn mapped to 0-1; 0.5 = the published cut-off) that counts as AF "
        "(ECGMON_ALERT_AF_RR_MIN_SCORE).",
    )
    alert_af_combined_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of the classifier's AF probability in combined evidence; RR gets 1 - weight "
        "(ECGMON_ALERT_AF_COMBINED_WEIGHT).",
    )
    alert_af_combined_threshold: float = Field(
        0.75, ge=0, le=1, description="Least combined AF evidence that counts (ECGMON_ALERT_AF_COMBINED_THRESHOLD)."
    )
    alert_af_max_p_coherence: float = Field(
        0.4,
        ge=0,
        le=1,
        description="A window whose P-wave coherence (ecgmon.atrial: the same P wave before every QRS) exceeds "
        "this never counts as AF, whatever the other evidence; 1 turns the veto off "
        "(ECGMON_ALERT_AF_MAX_P_COHERENCE).",
    )
    alert_af_rvr_bpm: float = Field(
        110.0,
        gt=0,
        description="AF above this heart rate (rapid ventricular response) is high severity (ECGMON_ALERT_AF_RVR_BPM).",
    )
    alert_rate_resolve_windows: int = Field(
        2,
        ge=1,
        description="Windows in a row back in range that resolve brady/tachy (ECGMON_ALERT_RATE_RESOLVE_WINDOWS).",
    )
    alert_brady_critical_bpm: float = Field(
        30.0, gt=0, description="Bradycardia below this rate is critical (ECGMON_ALERT_BRADY_CRITICAL_BPM)."
    )
    alert_tachy_critical_bpm: float = Field(
        180.0, gt=0, description="Tachycardia above this rate is critical (ECGMON_ALERT_TACHY_CRITICAL_BPM)."
    )
    alert_pause_critical_s: float = Field(
        5.0, gt=0, description="A pause longer than this is critical (ECGMON_ALERT_PAUSE_CRITICAL_S)."
    )
    alert_pause_resolve_windows: int = Field(
        1, ge=1, description="Windows without a pause that resolve a pause alert (ECGMON_ALERT_PAUSE_RESOLVE_WINDOWS)."
    )

    # --- worker ---------------------------------------------------------------------------
    worker_name: str = Field(
        "", description="Worker tag in the pipeline measurement; empty = host-pid (ECGMON_WORKER_NAME)."
    )
    web_port: int = Field(6066, ge=1, le=65535, description="Faust web port, bound to 127.0.0.1 (ECGMON_WEB_PORT).")
    health_interval_s: float = Field(
        5.0, gt=0, description="Seconds between pipeline health points (ECGMON_HEALTH_INTERVAL_S)."
    )
    standby_replicas: int = Field(0, ge=0, description="Faust table standby replicas (ECGMON_STANDBY_REPLICAS).")
    log_level: LogLevel = Field("warn", description="Worker log level (ECGMON_LOG_LEVEL).")
    worker_web: bool = Field(
        False, description="Serve Faust's web views on 127.0.0.1:web_port; never on all interfaces (ECGMON_WORKER_WEB)."
    )
    deadletter_keep_bytes: int = Field(
        262_144, ge=0, description="Original bytes kept in a dead-letter envelope (ECGMON_DEADLETTER_KEEP_BYTES)."
    )
    worker_processes: int = Field(
        1,
        ge=1,
        description="Worker processes `ecgmon worker` starts in one consumer group; torch threads default to "
        "cores / processes (ECGMON_WORKER_PROCESSES).",
    )

    # --- simulators -----------------------------------------------------------------------
    sim_fs_hz: float = Field(
        250.0, ge=50, le=2000, description="Rate of synthetic and ltafdb-rendered windows, Hz (ECGMON_SIM_FS_HZ)."
    )
    sim_noise_mv: float = Field(0.02, ge=0, description="White noise on synthetic signals, mV (ECGMON_SIM_NOISE_MV).")
    sim_event_rate_per_h: float = Field(
        2.0, ge=0, description="Rhythm events per hour of a synthetic patient (ECGMON_SIM_EVENT_RATE_PER_H)."
    )
    sim_artefact_rate_per_h: float = Field(
        2.0, ge=0, description="Motion bursts and electrode-off spans per hour (ECGMON_SIM_ARTEFACT_RATE_PER_H)."
    )
    sim_clock_jitter_ms: float = Field(
        20.0, ge=0, description="SD of each device's constant clock error, ms (ECGMON_SIM_CLOCK_JITTER_MS)."
    )
    sim_send_jitter_ms: float = Field(
        50.0, ge=0, description="Each window leaves its device up to this late, wall ms (ECGMON_SIM_SEND_JITTER_MS)."
    )
    sim_late_s: float = Field(
        30.0, gt=0, description="How late a 'late' window arrives, simulated seconds (ECGMON_SIM_LATE_S)."
    )
    sim_max_in_flight: int = Field(
        2000, ge=1, description="Unacknowledged sends before the simulator waits (ECGMON_SIM_MAX_IN_FLIGHT)."
    )
    sim_linger_ms: int = Field(20, ge=0, description="Producer linger before a batch leaves (ECGMON_SIM_LINGER_MS).")
    sim_batch_bytes: int = Field(
        262_144, ge=1024, description="Producer batch size per partition, bytes (ECGMON_SIM_BATCH_BYTES)."
    )
    sim_idempotence: bool = Field(
        False,
        description="Idempotent producer; the embedded Tansu refuses it, Kafka accepts it (ECGMON_SIM_IDEMPOTENCE).",
    )

    # --- dashboards and demo --------------------------------------------------------------
    grafana_url: str = Field("", description="Grafana that `ecgmon dashboards push` writes to (ECGMON_GRAFANA_URL).")
    grafana_token: SecretStr = Field(
        SecretStr(""), description="Grafana service-account token for push, never logged (ECGMON_GRAFANA_TOKEN)."
    )
    demo_report_dir: Path = Field(
        Path("reports"), description="Where `ecgmon demo` writes its HTML report (ECGMON_DEMO_REPORT_DIR)."
    )
    demo_worker_ready_s: float = Field(
        180.0, gt=0, description="Seconds the demo allows the worker to start (ECGMON_DEMO_WORKER_READY_S)."
    )
    demo_drain_s: float = Field(
        60.0, gt=0, description="Demo stops waiting after this long without a new prediction (ECGMON_DEMO_DRAIN_S)."
    )
    live_refresh_s: float = Field(1.0, gt=0, description="Refresh period of the live view (ECGMON_LIVE_REFRESH_S).")
    demo_event_rate_per_h: float = Field(
        90.0, gt=0, description="Synthetic events per hour in `ecgmon demo` (ECGMON_DEMO_EVENT_RATE_PER_H)."
    )

    # --- technician's console (``ecgmon console``, tools/console) -------------------------
    console_host: str = Field(
        "127.0.0.1", description="Address the console binds; put a TLS proxy in front of it (ECGMON_CONSOLE_HOST)."
    )
    console_port: int = Field(8090, ge=1, le=65535, description="Port of the console (ECGMON_CONSOLE_PORT).")
    console_users_file: Path | None = Field(
        None,
        description="Console users with argon2 password hashes; empty = <state dir>/console/users.json "
        "(ECGMON_CONSOLE_USERS_FILE).",
    )
    console_password_min_chars: int = Field(
        10, ge=8, description="Shortest password `ecgmon console adduser` accepts (ECGMON_CONSOLE_PASSWORD_MIN_CHARS)."
    )
    console_session_idle_s: float = Field(
        8 * 3600.0,
        gt=0,
        description="A console session ends after this long unused, s (ECGMON_CONSOLE_SESSION_IDLE_S).",
    )
    console_webhook_url: str = Field(
        "", description="Escalations are POSTed here as JSON; empty = recorded only (ECGMON_CONSOLE_WEBHOOK_URL)."
    )
    console_webhook_timeout_s: float = Field(
        5.0, gt=0, description="Longest wait for the escalation webhook to answer (ECGMON_CONSOLE_WEBHOOK_TIMEOUT_S)."
    )
    console_escalate_default_to: str = Field(
        "on-call physician",
        description="Whom an escalation goes to when the patient's criteria name nobody for it "
        "(ECGMON_CONSOLE_ESCALATE_DEFAULT_TO).",
    )
    console_strip_before_s: float = Field(
        30.0, gt=0, description="Seconds of lead I the alert page shows before onset (ECGMON_CONSOLE_STRIP_BEFORE_S)."
    )
    console_strip_after_s: float = Field(
        10.0, ge=0, description="Seconds of lead I the alert page shows after onset (ECGMON_CONSOLE_STRIP_AFTER_S)."
    )
    console_strip_max_samples: int = Field(
        1_000_000,
        ge=1,
        description="Most samples GET /api/strip returns at once (about 67 min at 250 Hz, 24 h at 10 Hz); ask a "
        "shorter range or a lower fs_hz for more (ECGMON_CONSOLE_STRIP_MAX_SAMPLES).",
    )
    console_shift_h: float = Field(
        12.0, gt=0, description="Length of the shift the report covers, hours (ECGMON_CONSOLE_SHIFT_H)."
    )
    console_trend_h: float = Field(
        6.0, gt=0, description="Hours of heart rate and rhythm on the patient page (ECGMON_CONSOLE_TREND_H)."
    )
    console_live_s: float = Field(
        30.0,
        gt=0,
        le=300,
        description="Seconds of lead I the patient page's live ECG shows, up to now; read from the packed strips, "
        "so any patient, alert or not (ECGMON_CONSOLE_LIVE_S; longer spans: GET /api/strip).",
    )
    console_live_refresh_s: float = Field(
        5.0,
        ge=0.5,
        description="How often a patient page on screen fetches its live ECG again, s. Windows arrive every 10 s "
        "(ECGMON_WINDOW_S): half that shows each new window within 5 s of its storage, and a shorter period only "
        "re-reads the same windows (ECGMON_CONSOLE_LIVE_REFRESH_S).",
    )
    console_public_url: str = Field(
        "",
        description="The console's address as others reach it (links in webhooks and Grafana); empty = "
        "http://console_host:console_port (ECGMON_CONSOLE_PUBLIC_URL).",
    )
    console_grafana_url: str = Field(
        "http://localhost:3000",
        description="Grafana the console links to (docker-compose.yml serves it there) (ECGMON_CONSOLE_GRAFANA_URL).",
    )

    # --- derived --------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap servers, ``host:port[,host:port]``."""
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def influx(self) -> str:
        """Base URL of InfluxDB, without a trailing slash."""
        return (self.influx_url or f"http://{self.host}:{self.influx_port}").rstrip("/")

    @property
    def console_url(self) -> str:
        """The console's base URL as links name it, without a trailing slash."""
        return (self.console_public_url or f"http://{self.console_host}:{self.console_port}").rstrip("/")

    @property
    def console_users_path(self) -> Path:
        """The console's users file."""
        return self.console_users_file or self.state_dir / "console" / "users.json"

    def aiokafka_options(self) -> dict[str, Any]:
        """Bootstrap and security options for any aiokafka producer or consumer ecgmon creates."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password.get_secret_value(),
            )
        if self.kafka_security_protocol.endswith("SSL"):
            import ssl

            options["ssl_context"] = ssl.create_default_context(cafile=self.kafka_ssl_cafile or None)
        return options

    def namespaced(self, prefix: str) -> Settings:
        """A copy with its own app id and topic names, so a test or bench run sees only its own messages."""
        return self.model_copy(
            update={
                "app_id": f"{prefix}-app",
                "topic_windows": f"{prefix}.windows",
                "topic_predictions": f"{prefix}.predictions",
                "topic_reconstructions": f"{prefix}.reconstructions",
                "topic_alerts": f"{prefix}.alerts",
                "topic_deadletter": f"{prefix}.deadletter",
                "topic_actions": f"{prefix}.actions",
            }
        )

    def worker_ready_path(self, pid: int | None = None) -> Path:
        """The readiness file of worker process ``pid`` of this app (the group's, with no pid).

        A worker writes ``worker-<app id>.<pid>.ready`` once its partitions are assigned and its
        table recovered, and removes it on shutdown; the supervisor writes ``worker-<app id>.ready``
        once every process of its group is ready. Whatever starts a worker waits on one of these.
        """
        suffix = f".{pid}" if pid is not None else ""
        return self.state_dir / f"worker-{self.app_id}{suffix}.ready"

    def topics(self) -> list[str]:
        """Every topic the embedded stack creates, in data-path order."""
        return [
            self.topic_windows,
            self.topic_predictions,
            self.topic_reconstructions,
            self.topic_alerts,
            self.topic_deadletter,
            self.topic_actions,
        ]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
