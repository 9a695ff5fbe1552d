"""The technician's console (``ecgmon console``, tools/console): logic, and end to end in a real browser.

The browser test runs Debian's ``chromium`` headless through Playwright against a console
subprocess on the session's embedded broker and InfluxDB. Alerts are produced to the alerts
topic exactly as the worker sends them, with a rendered AF strip and its predictions written
to InfluxDB as the worker writes them, so the test takes seconds instead of the worker's
minute-long start. Screenshots go to the test's tmp_path (out of git), or to
``$ECGMON_CONSOLE_SHOTS`` when set (docs/console.md's pictures).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgmon import stack
from ecgmon.contracts import Alert, AlertAction, ContractError
from ecgmon.dsp import resample
from ecgmon.influx import InfluxClient
from ecgmon.points import MEASURED_LEAD, alert_line, prediction_line, strip_lines
from ecgmon.settings import Settings
from tools.console.auth import UserStore, allowed
from tools.console.escalation import auto_escalates, recipient_for
from tools.console.state import ConsoleState, Criteria, tier_of
from tools.console.strip import Trace, beats_ms, svg_strip
from tools.processes import Child, ecgmon_argv, stack_env, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"


def _alert(pid: str, kind: str, state: str, seq: int, severity: str = "medium", t_s: float = 1_700_000_000.0) -> Alert:
    return Alert(
        patient_id=pid, type=kind, state=state,  # type: ignore[arg-type]
        severity=severity, confidence=0.9, message=f"{kind} {state}", t_ns=int((t_s + seq * 10) * 1e9),
        alert_id=f"{pid}:{kind}:{seq if state == 'opened' else 0}", seq=seq,
    )  # fmt: skip


def _action(alert: Alert, kind: str, action_id: str, t_ns: int = 1) -> AlertAction:
    return AlertAction(
        action_id=action_id, kind=kind, patient_id=alert.patient_id, user="tess", role="technician", t_ns=t_ns,
        alert_id=alert.alert_id, alert_type=alert.type,
    )  # fmt: skip


# --- logic -------------------------------------------------------------------------------------


def test_tiers_and_queue_order() -> None:
    assert [tier_of("brady", "critical"), tier_of("af", "high"), tier_of("af", "medium"), tier_of("technical", "low")] \
        == ["emergency", "urgent", "routine", "technical"]  # fmt: skip
    state = ConsoleState()
    old_routine = _alert("p1", "af", "opened", 1)
    new_emergency = _alert("p2", "pause", "opened", 5, "critical")
    technical = _alert("p3", "technical", "opened", 0, "low")
    old_urgent = _alert("p4", "tachy", "opened", 2, "high")
    for a in (old_routine, new_emergency, technical, old_urgent):
        state.apply_alert(a)
    assert [v.patient_id for v in state.queue()] == ["p2", "p4", "p1", "p3"]
    state.apply_action(_action(new_emergency, "acknowledge", "x1"))
    assert [v.patient_id for v in state.queue()] == ["p4", "p1", "p3"]
    assert state.listed("open")[0].patient_id == "p2"  # still open in the engine, acknowledged
    assert state.listed("open")[0].summary()["acknowledged"] is True


def test_replay_in_any_order_gives_the_same_state() -> None:
    opened = _alert("p1", "af", "opened", 3)
    updated = Alert(**{**opened.__dict__, "state": "updated", "severity": "high", "seq": 5})
    resolved = Alert(**{**opened.__dict__, "state": "resolved", "seq": 9})
    reject = _action(opened, "reject", "a1", t_ns=10)
    note = _action(opened, "annotate", "a2", t_ns=20)
    events: list[Any] = [opened, updated, resolved, reject, note]

    def fold(order: list[Any]) -> dict[str, Any]:
        state = ConsoleState()
        for item in order + order:  # every record twice: a replay over a replay
            (state.apply_alert if isinstance(item, Alert) else state.apply_action)(item)
        view = state.alerts["p1:af:3"]
        return {**view.summary(), "actions": [a.action_id for a in view.actions]}

    expected = fold(events)
    assert expected["severity"] == "high" and expected["open"] is False and expected["disposition"] == "rejected"
    assert expected["tier"] == "urgent" and expected["actions"] == ["a1", "a2"]
    assert fold([reject, note, opened, updated, resolved]) == expected  # actions read before their alert


def test_criteria_choose_the_recipient() -> None:
    state = ConsoleState()
    state.apply_alert(_alert("p1", "af", "opened", 1, "high"))
    state.apply_alert(_alert("p1", "brady", "opened", 2, "high"))
    af, brady = state.alerts["p1:af:1"], state.alerts["p1:brady:2"]
    criteria = Criteria(notify="dr.house", types=("af",), min_tier="urgent", auto=True)
    assert recipient_for(criteria, af, "on-call") == "dr.house"
    assert recipient_for(criteria, brady, "on-call") == "on-call"  # type not listed
    assert recipient_for(None, af, "on-call") == "on-call"
    assert recipient_for(Criteria(notify="dr.house", min_tier="emergency"), af, "on-call") == "on-call"  # tier too low
    assert auto_escalates(criteria, af) and not auto_escalates(criteria, brady)
    assert Criteria.from_detail(criteria.to_detail()) == criteria


def test_users_roles_and_hashes(tmp_path: Path) -> None:
    from ecgmon.errors import ConfigError

    store = UserStore(tmp_path / "users.json")
    store.add("tess", "technician", PASSWORD, min_chars=10)
    text = (tmp_path / "users.json").read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert (tmp_path / "users.json").stat().st_mode & 0o077 == 0
    assert store.verify("tess", PASSWORD) is not None
    assert store.verify("tess", "wrong password") is None and store.verify("nobody", PASSWORD) is None
    for bad in (("x y", "technician", PASSWORD), ("ok", "boss", PASSWORD), ("ok", "admin", "short")):
        with pytest.raises(ConfigError):
            store.add(*bad, min_chars=10)
    assert allowed("technician", "reject") and not allowed("technician", "criteria")
    assert allowed("admin", "criteria") and not allowed("admin", "confirm")


def test_adduser_command_reads_the_password_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgmon.settings import get_settings
    from tools.cli.main import app

    monkeypatch.setenv("ECGMON_CONSOLE_USERS_FILE", str(tmp_path / "u.json"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(app, ["console", "adduser", "phil", "--role", "physician", "--password-stdin"],
                           input=PASSWORD + "\n")  # fmt: skip
        assert ok.exit_code == 0, ok.output
        assert UserStore(tmp_path / "u.json").verify("phil", PASSWORD) is not None
        refused = runner.invoke(app, ["console", "adduser", "phil", "--role", "physician"])
        assert refused.exit_code != 0
    finally:
        get_settings.cache_clear()


def test_action_record_round_trip() -> None:
    action = AlertAction(
        action_id="a", kind="escalate", patient_id="p1", user="tess", role="technician", t_ns=5, alert_id="p1:af:1",
        recipient="dr.house", delivered=True, detail={"webhook": "HTTP 200"},
    )  # fmt: skip
    assert AlertAction.from_bytes(action.to_bytes()) == action
    with pytest.raises(ContractError):
        AlertAction.from_bytes(action.to_bytes().replace(b"escalate", b"delete"))


def _af_strip(t0_s: float, duration_s: float, onset_s: float, fs_hz: float, seed: int = 3) -> tuple[np.ndarray, int]:
    """Lead I in mV at ``fs_hz`` (rendered at 250 Hz, resampled): sinus, AF from ``onset_s``; and the beats."""
    from simulators.render import Morphology, render_beats

    rng = np.random.default_rng(seed)
    beats, t = [], t0_s - 1.0
    while t < t0_s + duration_s + 1.0:
        beats.append(t)
        t += rng.uniform(0.45, 0.95) if t >= onset_s else 0.85
    times = np.array(beats)
    x = render_beats(
        times, ["N"] * len(times), times >= onset_s, fs_hz=250.0, t0_s=t0_s, duration_s=duration_s,
        morphology=Morphology(), rng=rng, wander=False,
    )  # fmt: skip
    inside = int(np.sum((times >= t0_s) & (times < t0_s + duration_s)))
    return resample(x, 250.0, fs_hz), inside


def test_strip_svg_marks_beats_and_bands() -> None:
    fs_hz = 50.0
    x, n_beats = _af_strip(0.0, 30.0, 15.0, fs_hz)
    trace = Trace(np.round(np.arange(len(x)) * 1000 / fs_hz).astype(np.int64), x)
    found = beats_ms(trace)
    assert abs(len(found) - n_beats) <= 3, (len(found), n_beats)
    svg = svg_strip(trace, t0_ms=0, t1_ms=30_000, onset_ms=20_000, window_ms=10_000, beats=found)
    assert svg.count('class="beat"') == len(found) and "<polyline" in svg and 'class="onset"' in svg
    band = svg_strip(Trace(trace.t_ms, x, np.full(len(x), 0.05)), t0_ms=0, t1_ms=30_000)
    assert '<polygon class="band"' in band


# --- end to end --------------------------------------------------------------------------------


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server standing in for the paging gateway; yields its URL and what it received."""
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Webhook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page", received
    server.shutdown()
    server.server_close()


class ConsoleProcess:
    """``ecgmon console`` as a subprocess on the test stack, restartable."""

    def __init__(self, s: Settings, log_dir: Path, webhook_url: str) -> None:
        self.s = s
        self.url = f"http://127.0.0.1:{s.console_port}"
        env = stack_env(s, inherit=False, overrides={
            "ECGMON_CONSOLE_PORT": str(s.console_port),
            "ECGMON_CONSOLE_USERS_FILE": str(s.console_users_path),
            "ECGMON_CONSOLE_WEBHOOK_URL": webhook_url,
            "ECGMON_CONSOLE_ESCALATE_DEFAULT_TO": "on-call physician",
            "ECGMON_CONSOLE_LIVE_REFRESH_S": "1",  # the live ECG's refresh, short so the test waits little
        })  # fmt: skip
        self.child = Child("the console", ecgmon_argv("console"), log_dir / "console.log", env)

    def start(self, timeout_s: float = 60.0) -> None:
        self.child.start()

        def ready() -> bool:
            self.child.check_alive()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(ready, timeout_s, what="the console's /healthz")

    def stop(self) -> None:
        self.child.stop(10.0)


class Client:
    """An HTTP client with a cookie jar, as a script would use the console."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def login(self, user: str, password: str) -> int:
        return self.request("/login", {"username": user, "password": password})[0]

    def csrf(self, path: str) -> str:
        page = self.request(path)[1]
        marker = 'name="csrf_token" value="'
        start = page.index(marker) + len(marker)
        return page[start : page.index('"', start)]


def _produce(s: Settings, alerts: list[Alert]) -> float:
    """Send ``alerts`` to the alerts topic as the worker does; returns the wall time after the send."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=s.bootstrap, acks="all")
    try:
        for a in alerts:
            producer.send(s.topic_alerts, a.to_bytes(), key=a.patient_id.encode())
        producer.flush(timeout=20)
    finally:
        producer.close()
    return time.monotonic()


STRIP_HZ = 250.0


def _lead_i_lines(pid: str, t0_s: float, x: np.ndarray) -> list[str]:
    """Lead I ``x`` (at ``STRIP_HZ`` from ``t0_s``) packed per 10 s window, as the worker stores it."""
    per_window = int(10 * STRIP_HZ)
    return [
        line
        for k in range(0, len(x), per_window)
        for line in strip_lines(
            patient_id=pid, lead=MEASURED_LEAD, t_start_ns=int(t0_s * 1e9) + round(k * 1e9 / STRIP_HZ), fs_hz=STRIP_HZ,
            samples=x[k : k + per_window],
        )
    ]  # fmt: skip


def _write_patient(client: InfluxClient, s: Settings, pid: str, onset_ns: int, af: bool) -> None:
    """What the worker writes for a patient around ``onset_ns``: lead I packed per 10 s window, predictions."""
    t0_s = onset_ns / 1e9 - 40.0
    x, _ = _af_strip(t0_s, 50.0, onset_ns / 1e9 - 25.0 if af else 1e12, STRIP_HZ)
    lines = _lead_i_lines(pid, t0_s, x)
    for k in range(5):
        t_end = onset_ns - (3 - k) * 10**10
        p_a = 0.92 if af and k >= 1 else 0.05
        lines.append(prediction_line(
            patient_id=pid, t_end_ns=t_end, label="A" if p_a > 0.5 else "N", confidence=max(p_a, 1 - p_a),
            uncertainty=0.1, probs={"N": 1 - p_a, "A": p_a, "O": 0.0, "~": 0.0}, hr_bpm=104.0 if af else 38.0,
            sqi=0.93, seq=k, model="student", extra={"max_rr_s": 0.95, "rr_irregularity": 0.8 if af else 0.1},
        ))  # fmt: skip
    client.write_lines(lines)


def _launch(tmp: Path) -> Any:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    ctx = pw.chromium.launch_persistent_context(
        str(tmp / "chromium-profile"), executable_path=CHROMIUM, headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        viewport={"width": 1280, "height": 900},
    )  # fmt: skip
    ctx.set_default_timeout(20_000)
    return pw, ctx


@pytest.mark.integration
@pytest.mark.timeout(170)
def test_console_in_a_browser(
    stack_settings: Settings, influx: InfluxClient, topic_prefix: str, tmp_path: Path, webhook: Any
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make setup` apt-installs chromium and chromium-driver")
    pytest.importorskip("playwright")
    shots = Path(os.environ.get("ECGMON_CONSOLE_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    hook_url, received = webhook
    s = stack_settings.namespaced(topic_prefix).model_copy(
        update={"console_port": stack.free_port(), "console_users_file": tmp_path / "users.json"}
    )
    stack.create_topics(s.bootstrap, s.topics(), s.partitions)
    users = UserStore(s.console_users_path)
    users.add("tess", "technician", PASSWORD, min_chars=10)
    users.add("phil", "physician", PASSWORD, min_chars=10)
    console = ConsoleProcess(s, tmp_path, hook_url)
    console.start()
    pw, ctx = _launch(tmp_path)
    try:
        page = ctx.new_page()
        # a wrong password is refused
        page.goto(console.url + "/")
        assert "/login" in page.url
        page.fill("input[name=username]", "tess")
        page.fill("input[name=password]", "not the password")
        with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 401
        assert "Wrong user name or password" in page.inner_text(".error")
        # the technician logs in and watches the (empty) queue
        page.fill("input[name=username]", "tess")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#queue-rows")
        page.wait_for_selector("#live:has-text('(live)')")

        # an AF alert and a bradycardia alert open while the page is open: they appear without a reload
        now_ns = time.time_ns() - 5 * 10**9
        af = Alert("pt-af-01", "af", "opened", "high", 0.91, "AF: 3 of 4 windows.", now_ns, "pt-af-01:af:12", 12)
        brady = Alert("pt-brady-02", "brady", "opened", "high", 1.0, "Brady: 38 bpm.", now_ns, "pt-brady-02:brady:7", 7)
        _write_patient(influx, s, "pt-af-01", af.t_ns, af=True)
        _write_patient(influx, s, "pt-brady-02", brady.t_ns, af=False)
        influx.write_lines([alert_line(af), alert_line(brady)])
        sent = _produce(s, [af, brady])
        page.wait_for_selector(f'tr[data-alert-id="{af.alert_id}"]', timeout=15_000)
        shown_after_s = time.monotonic() - sent
        page.wait_for_selector(f'tr[data-alert-id="{brady.alert_id}"]')
        print(f"alert visible in the browser's queue {shown_after_s:.2f} s after it was produced")
        assert page.inner_text(f'tr[data-alert-id="{af.alert_id}"] .type') == "af"
        page.screenshot(path=str(shots / "console_queue.png"))

        # the strip of the AF alert: lead I drawn, beats marked, predictions listed
        page.click(f'tr[data-alert-id="{af.alert_id}"] a.open-alert')
        page.wait_for_selector("#strip svg polyline")
        assert int(page.get_attribute("#strip", "data-beats") or 0) >= 20
        assert page.locator("table.preds tbody tr").count() >= 4
        page.screenshot(path=str(shots / "console_alert.png"), full_page=True)

        # reject the AF alert as false, with a reason
        page.select_option("#reject-reason", "artefact or noise")
        page.fill("#reject-text", "motion during walk")
        page.click("#do-reject")
        page.wait_for_selector("#flash")
        assert "reject" in page.inner_text("#actions")
        assert "tess (technician)" in page.inner_text("#actions")

        # a physician sets the brady patient's criteria (a script's session: POST /login, then the CSRF token)
        phil = Client(console.url)
        assert phil.login("phil", PASSWORD) == 200
        token = phil.csrf("/patients/pt-brady-02")
        status, _ = phil.request(
            "/patients/pt-brady-02/criteria",
            {"csrf_token": token, "types": "brady", "min_tier": "urgent", "notify": "dr.house"},
        )
        assert status == 200

        # the technician escalates the brady alert: it goes to dr.house through the webhook
        page.goto(f"{console.url}/alerts/{brady.alert_id}")
        assert "dr.house" in page.inner_text("#do-escalate")
        page.fill("#escalate-text", "38 bpm, symptomatic?")
        page.click("#do-escalate")
        page.wait_for_selector("#flash")
        assert "delivered" in page.inner_text("#flash")
        assert len(received) == 1
        assert received[0]["to"] == "dr.house" and received[0]["alert"]["alert_id"] == brady.alert_id
        assert received[0]["by"] == "tess" and received[0]["note"] == "38 bpm, symptomatic?"

        # a state-changing request without the CSRF token is refused and changes nothing
        tess = Client(console.url)
        assert tess.login("tess", PASSWORD) == 200
        status, body = tess.request(f"/alerts/{brady.alert_id}/actions", {"kind": "acknowledge"})
        assert status == 403 and "CSRF" in body
        status, body = tess.request(f"/alerts/{brady.alert_id}/actions", {"kind": "acknowledge", "csrf_token": "x"})
        assert status == 403
        # roles: a technician may not set notification criteria, even with a good token
        token = tess.csrf("/patients/pt-brady-02")
        status, body = tess.request(
            "/patients/pt-brady-02/criteria", {"csrf_token": token, "min_tier": "routine", "notify": "someone"}
        )
        assert status == 403 and "technician" in body
        # the API answers logged-in clients only
        assert Client(console.url).request("/api/alerts?state=open")[0] == 401
        # full disclosure: the packed lead I, decoded, over a range spanning the windows written
        t0_ms = int((af.t_ns / 1e9 - 40.0) * 1e9) // 1_000_000  # the first window's time, as _write_patient wrote it
        strip_path = f"/api/strip?patient=pt-af-01&start={t0_ms}&end={t0_ms + 49_996}"
        assert Client(console.url).request(strip_path)[0] == 401
        status, body = tess.request(strip_path)
        got = json.loads(body)
        assert status == 200 and got["fs_hz"] == STRIP_HZ and got["points"] == 5 and got["t0_ms"] == t0_ms
        stored, _ = _af_strip(af.t_ns / 1e9 - 40.0, 50.0, af.t_ns / 1e9 - 25.0, STRIP_HZ)
        assert got["samples"] == len(stored) and got["sd"] is None
        assert np.max(np.abs(np.array(got["values"], dtype=float) - stored)) <= 0.0006  # 1 µV steps, 4 decimals
        assert tess.request("/api/strip?patient=pt-af-01&start=-24h&end=now&lead=X1")[0] == 400
        assert tess.request("/api/strip?patient=bad%20id&start=-1h")[0] == 400
        status, body = tess.request(f"/api/strip?patient=pt-af-01&start={t0_ms - 10**9}&end={t0_ms + 10**9}")
        assert status == 400 and "at most" in body  # 23 days at 250 Hz is more than one answer holds
        # the live ECG of a patient without an alert, from the packed strips of the last 30 s
        live_started = time.monotonic()
        live_t_s = time.time()
        x, n_beats = _af_strip(live_t_s - 26.0, 20.0, 1e12, STRIP_HZ)  # two 10 s windows of sinus, 6 s ago
        influx.write_lines(_lead_i_lines("pt-live-04", live_t_s - 26.0, x))
        status, body = Client(console.url).request("/patients/pt-live-04/live")
        assert 'name="password"' in body and "<svg" not in body  # no session: the login page
        status, body = tess.request("/patients/pt-live-04/live")
        assert status == 200 and 'id="live-strip"' in body and "<polyline" in body and "<html" not in body
        assert abs(body.count('class="beat"') - n_beats) <= 2, (body.count('class="beat"'), n_beats)
        status, body = tess.request("/patients/pt-nobody-05/live")
        assert status == 200 and "No data in the last 30 s" in body and "<svg" not in body
        assert tess.request("/patients/bad%20id/live")[0] == 404
        # ... on the patient page, which fetches it again while it is shown: a new window appears
        page.goto(f"{console.url}/patients/pt-live-04")
        page.wait_for_selector("#live-ecg #live-strip svg polyline")
        first_ms = int(page.get_attribute("#live-newest", "data-ms") or 0)
        assert abs(first_ms - (live_t_s - 6.0) * 1000) < 20
        first_text = page.inner_text("#live-newest")
        x, _ = _af_strip(live_t_s - 6.0, 5.0, 1e12, STRIP_HZ)  # the next window (5 s long, so it ends in the past)
        influx.write_lines(_lead_i_lines("pt-live-04", live_t_s - 6.0, x))
        written = time.monotonic()
        page.wait_for_function(
            "ms => Number(document.querySelector('#live-newest')?.dataset.ms) > ms", arg=first_ms, timeout=5_000
        )
        print(f"live ECG: a new window on the open page {time.monotonic() - written:.2f} s after it was written")
        assert int(page.get_attribute("#live-newest", "data-ms") or 0) - first_ms > 4_900
        assert page.inner_text("#live-newest") != first_text
        page.screenshot(path=str(shots / "console_patient_live.png"), full_page=True)
        print(f"live ECG checks took {time.monotonic() - live_started:.2f} s")
        listed = {a["alert_id"]: a for a in json.loads(tess.request("/api/alerts?state=open")[1])}
        assert set(listed) == {af.alert_id, brady.alert_id}
        assert {"alert_id", "patient_id", "type", "tier", "opened_at", "acknowledged"} <= set(listed[af.alert_id])
        assert listed[af.alert_id]["acknowledged"] is True and listed[brady.alert_id]["acknowledged"] is False
        assert listed[brady.alert_id]["tier"] == "urgent" and listed[brady.alert_id]["escalated"] is True

        # the console restarts: both actions are still there (replayed from the actions topic)
        console.stop()
        console.start()
        page.goto(f"{console.url}/alerts/{af.alert_id}")
        assert "/login" in page.url  # sessions are in memory: log in again
        page.fill("input[name=username]", "tess")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#actions")
        assert "artefact or noise: motion during walk" in page.inner_text("#actions")
        page.goto(f"{console.url}/alerts/{brady.alert_id}")
        assert "dr.house: delivered" in page.inner_text("#actions")
        page.goto(f"{console.url}/")
        page.wait_for_selector(f'tr.handled[data-alert-id="{af.alert_id}"]')
        assert page.locator(f'tr[data-alert-id="{brady.alert_id}"]:not(.handled)').count() == 1
        assert len(received) == 1  # a replay does not send again

        # criteria with automatic escalation: a matching alert is escalated as soon as it opens
        phil = Client(console.url)
        assert phil.login("phil", PASSWORD) == 200
        status, _ = phil.request("/patients/pt-tachy-03/criteria", {
            "csrf_token": phil.csrf("/patients/pt-tachy-03"), "types": "tachy", "min_tier": "routine",
            "notify": "dr.auto", "auto": "on",
        })  # fmt: skip
        assert status == 200
        tachy = Alert("pt-tachy-03", "tachy", "opened", "high", 1.0, "Tachy.", now_ns, "pt-tachy-03:tachy:4", 4)
        _produce(s, [tachy])
        wait_until(lambda: len(received) == 2, 20, what="the automatic escalation")
        assert received[1]["to"] == "dr.auto" and received[1]["by"] == "console"
        assert received[1]["alert"]["alert_id"] == tachy.alert_id

        page.goto(f"{console.url}/report")
        report = page.inner_text("#report-actions")
        assert "reject" in report and "escalate" in report and "dr.house" in report
        page.screenshot(path=str(shots / "console_report.png"), full_page=True)
        page.goto(f"{console.url}/patients/pt-brady-02")
        assert "dr.house" in page.inner_text("#criteria")
        page.screenshot(path=str(shots / "console_patient.png"), full_page=True)

        # the actions are in InfluxDB for Grafana's annotations, with who did them
        rows = influx.query(
            'SELECT "alert_id", "summary" FROM "alert_action" WHERE "patient_id" =~ /^pt-(af-01|brady-02)$/ '
            'GROUP BY "action", "user"'
        )
        kinds = {(r["tags"]["action"], r["tags"]["user"]) for r in rows}
        assert {("reject", "tess"), ("escalate", "tess"), ("criteria", "phil")} <= kinds
    finally:
        ctx.close()
        pw.stop()
        console.stop()
