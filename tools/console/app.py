"""The console's web application (Starlette, Jinja2 templates rendered on the server, no external assets).

Pages: ``/`` the queue (live: the page listens to ``/events``, server-sent events that fire on
every change of the state, and then fetches ``/queue/rows``), ``/alerts/{id}`` an alert with its
strip and actions, ``/patients/{id}`` a patient's live lead I, trends, alerts, actions and
notification criteria (the live section alone is ``/patients/{id}/live``, which the page fetches
again every ``console_live_refresh_s`` while it is on screen), ``/report`` the shift report.
JSON: ``GET /api/alerts?state=open|unacknowledged|all``, ``GET /api/alerts/{id}``,
``GET /api/strip?patient=P&start=-24h&end=now[&lead=I][&fs_hz=F]`` (full disclosure: any lead of
any patient over a range, decoded from ``ecg_strip``); ``GET /healthz`` answers 200 once the
topics have been replayed (503 before). Every page but ``/login`` and
``/healthz`` needs a session (``tools.console.auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ecgmon.contracts import LEADS, AlertAction, ContractError, check_patient_id
from ecgmon.errors import EcgmonError, SinkError
from ecgmon.full_disclosure import parse_time_ms, read_strip
from ecgmon.influx import InfluxClient
from ecgmon.points import MEASURED_LEAD, STRIP
from ecgmon.settings import Settings
from tools.console import escalation, strip
from tools.console.auth import ROLES, Session, Sessions, UserStore, allowed, csrf_ok
from tools.console.bus import Bus
from tools.console.state import ALERT_ACTIONS, TIERS, AlertView, ConsoleState, Criteria

log = logging.getLogger("ecgmon.console")

HERE = Path(__file__).parent
COOKIE = "ecgmon_console"
MAX_TEXT_CHARS = 500
"""Longest reason, note or recipient a form may carry."""
REJECT_REASONS = ("artefact or noise", "wrong rhythm", "known and treated", "lead off or device problem", "other")
SYSTEM_USER = "console"
"""The name automatic escalations carry."""
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _security_headers(app: ASGI) -> ASGI:
    async def wrapped(
        scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await app(scope, receive, send_with_headers if scope["type"] == "http" else send)

    return wrapped


def _iso(t_ns: int | None) -> str:
    if t_ns is None:
        return ""
    return dt.datetime.fromtimestamp(t_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(t_ns: int) -> str:
    s = max(0, int(time.time() - t_ns / 1e9))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h" if s < 172_800 else f"{s // 86400} d"


class Console:
    """The application and what it holds: settings, users, sessions, state, the bus."""

    def __init__(self, settings: Settings, *, state: ConsoleState | None = None) -> None:
        self.settings = settings
        self.users = UserStore(settings.console_users_path)
        self.sessions = Sessions(settings.console_session_idle_s)
        self.state = state or ConsoleState()
        self.bus = Bus(settings, self.state)
        self.influx = InfluxClient(settings, timeout_s=10.0)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(
            iso=_iso, age=_age, tiers=TIERS, settings=settings, grafana=self.grafana_link, reasons=REJECT_REASONS
        )
        self._auto_sent: set[str] = set()
        routes = [
            Route("/healthz", self.healthz),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", self.queue_page),
            Route("/queue/rows", self.queue_rows),
            Route("/events", self.events),
            Route("/alerts/{alert_id}", self.alert_page),
            Route("/alerts/{alert_id}/actions", self.alert_action, methods=["POST"]),
            Route("/patients/{patient_id}", self.patient_page),
            Route("/patients/{patient_id}/live", self.patient_live),
            Route("/patients/{patient_id}/criteria", self.set_criteria, methods=["POST"]),
            Route("/report", self.report),
            Route("/api/alerts", self.api_alerts),
            Route("/api/alerts/{alert_id}", self.api_alert),
            Route("/api/strip", self.api_strip),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
        self.starlette = Starlette(routes=routes, lifespan=self.lifespan)
        self.app = _security_headers(self.starlette)

    # --- life cycle ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Start the bus and its reader, and the automatic escalations; stop them on shutdown."""
        await self.bus.start()
        tasks = [asyncio.create_task(self.bus.run()), asyncio.create_task(self._auto_escalate())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.bus.stop()

    async def _auto_escalate(self) -> None:
        """Escalate alerts that match their patient's criteria with ``auto`` on, once each."""
        await self.bus.caught_up.wait()
        version = -1
        while True:
            version = await self.state.wait_changed(version, 30.0)
            for view in list(self.state.alerts.values()):
                criteria = self.state.criteria.get(view.patient_id)
                if view.alert_id in self._auto_sent or view.escalated or not escalation.auto_escalates(criteria, view):
                    continue
                self._auto_sent.add(view.alert_id)
                try:
                    await self._escalate(view, SYSTEM_USER, "system", "automatic: matches the notification criteria")
                except EcgmonError as exc:
                    log.warning("automatic escalation of %s failed: %s", view.alert_id, exc)

    # --- helpers -------------------------------------------------------------------------------
    def grafana_link(self, patient_id: str, t0_ns: int | None = None, t1_ns: int | None = None) -> str:
        """The Grafana patient dashboard of ``patient_id`` (around a time range when given)."""
        url = f"{self.settings.console_grafana_url.rstrip('/')}/d/ecgmon-patient/?var-patient={patient_id}"
        if t0_ns is not None and t1_ns is not None:
            url += f"&from={t0_ns // 1_000_000}&to={t1_ns // 1_000_000}"
        return url

    def session(self, request: Request) -> Session | None:
        """The request's session, if any."""
        return self.sessions.get(request.cookies.get(COOKIE))

    def page(
        self, request: Request, name: str, session: Session | None, status_code: int = 200, **context: Any
    ) -> Response:
        """Render template ``name`` with the user and CSRF token."""
        context.update(request=request, user=session.user if session else None, csrf=session.csrf if session else "")
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def _need_login(self, request: Request) -> Response:
        if request.url.path.startswith("/api/") or request.url.path == "/events":
            return JSONResponse({"error": "log in first: POST /login with username and password"}, status_code=401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    async def _form_session(self, request: Request) -> tuple[Session | None, dict[str, str], Response | None]:
        """Session and form of a state-changing request; a refusal response when the CSRF check fails."""
        session = self.session(request)
        if session is None:
            return None, {}, self._need_login(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not csrf_ok(session, form.get("csrf_token") or request.headers.get("x-csrf-token")):
            return session, form, Response("Refused: the CSRF token is missing or wrong. Reload the page.", 403)
        return session, form, None

    # --- endpoints: auth -------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        """200 once the topics are replayed, else 503; counts either way."""
        ready = self.bus.caught_up.is_set()
        body = {
            "status": "ok" if ready else "starting",
            "alerts": len(self.state.alerts),
            "actions": len(self.state.actions),
            "records": self.bus.records,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def login_page(self, request: Request) -> Response:
        """The login form."""
        return self.page(request, "login.html", None, next=request.query_params.get("next", "/"), error="")

    async def login(self, request: Request) -> Response:
        """Check the password; on success set the session cookie and go on to ``next``."""
        form = await request.form()
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        nxt = str(form.get("next", "/"))
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        user = await asyncio.to_thread(self.users.verify, name, password) if name and password else None
        if user is None:
            log.warning("failed login for %r", name[:64])
            return self.page(request, "login.html", None, 401, next=nxt, error="Wrong user name or password.")
        sid, _ = self.sessions.create(user)
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        """End the session."""
        _, _, refused = await self._form_session(request)
        if refused is not None:
            return refused
        self.sessions.drop(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # --- endpoints: queue ----------------------------------------------------------------------
    async def queue_page(self, request: Request) -> Response:
        """The queue of unacknowledged alerts, then the acknowledged ones still open."""
        session = self.session(request)
        if session is None:
            return self._need_login(request)
        return self.page(
            request, "queue.html", session, queue=self.state.queue(), handled=self.state.acknowledged_open(),
            version=self.state.version, caught_up=self.bus.caught_up.is_set(),
        )  # fmt: skip

    async def queue_rows(self, request: Request) -> Response:
        """The queue's table body alone (what the page fetches when ``/events`` fires)."""
        session = self.session(request)
        if session is None:
            return self._need_login(request)
        response = self.page(
            request, "_rows.html", session, queue=self.state.queue(), handled=self.state.acknowledged_open()
        )
        response.headers["x-queue-version"] = str(self.state.version)
        return response

    async def events(self, request: Request) -> Response:
        """Server-sent events: ``queue`` with the state's version on every change, a comment every 15 s."""
        if self.session(request) is None:
            return self._need_login(request)

        async def stream() -> AsyncIterator[str]:
            version = -1
            while not await request.is_disconnected():
                new = await self.state.wait_changed(version, 15.0)
                if new != version:
                    version = new
                    yield f"event: queue\ndata: {new}\n\n"
                else:
                    yield ": still here\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    # --- endpoints: alert ----------------------------------------------------------------------
    async def alert_page(self, request: Request) -> Response:
        """An alert: strip around onset with beats, reconstruction, predictions, evidence, actions."""
        session = self.session(request)
        if session is None:
            return self._need_login(request)
        view = self.state.alerts.get(request.path_params["alert_id"])
        if view is None:
            return self.page(request, "missing.html", session, 404, what="alert")
        s = self.settings
        onset_ms = view.opened_ns // 1_000_000
        t0_ms = onset_ms - int(s.console_strip_before_s * 1000)
        t1_ms = onset_ms + int(s.console_strip_after_s * 1000)
        info = await asyncio.to_thread(self._strip_data, view.patient_id, t0_ms, t1_ms, onset_ms)
        return self.page(
            request, "alert.html", session, alert=view, criteria=self.state.criteria.get(view.patient_id),
            recipient=escalation.recipient_for(
                self.state.criteria.get(view.patient_id), view, s.console_escalate_default_to
            ),
            may={kind: allowed(session.user.role, kind) for kind in ALERT_ACTIONS},
            t0_ns=t0_ms * 1_000_000, t1_ns=t1_ms * 1_000_000, flash=request.query_params.get("flash", ""), **info,
        )  # fmt: skip

    def _strip_data(self, patient_id: str, t0_ms: int, t1_ms: int, onset_ms: int) -> dict[str, Any]:
        s = self.settings
        window_ms = int(s.window_s * 1000)
        try:
            trace = strip.lead_i(self.influx, patient_id, t0_ms, t1_ms)
            beats = strip.beats_ms(trace)
            preds = strip.predictions(self.influx, patient_id, t0_ms, t1_ms)
            recon = strip.reconstruction(self.influx, patient_id, t0_ms, t1_ms)
            error = ""
        except SinkError as exc:
            trace, beats, preds, recon, error = strip.Trace.nothing(), None, [], {}, str(exc)
        svg = strip.svg_strip(trace, t0_ms=t0_ms, t1_ms=t1_ms, onset_ms=onset_ms, window_ms=window_ms, beats=beats)
        r0 = min((int(t.t_ms[0]) for t in recon.values() if not t.empty), default=onset_ms - window_ms)
        r1 = max((int(t.t_ms[-1]) for t in recon.values() if not t.empty), default=onset_ms)
        shown = [t for t in recon.values() if not t.empty]
        values = np.concatenate([t.v for t in shown]) if shown else np.zeros(1)
        span = (  # one scale for every lead, so their amplitudes compare; the band may leave it
            min(-1.0, float(np.nanpercentile(values, 0.5)) - 0.2),
            max(1.0, float(np.nanpercentile(values, 99.5)) + 0.2),
        )
        recon_svgs = [
            Markup(strip.svg_strip(t, t0_ms=r0, t1_ms=r1, px_per_s=30.0, mv_span=span, label=lead, fit=False))
            for lead, t in sorted(recon.items(), key=lambda kv: _lead_order(kv[0]))
            if not t.empty
        ]
        hr = [p["hr_bpm"] for p in preds if p.get("hr_bpm") is not None]
        return {
            "strip_svg": Markup(svg),
            "samples": len(trace.t_ms),
            "beats": 0 if beats is None else len(beats),
            "predictions": preds,
            "recon_svgs": recon_svgs,
            "hr_median": sorted(hr)[len(hr) // 2] if hr else None,
            "influx_error": error,
        }

    async def alert_action(self, request: Request) -> Response:
        """Take an action on an alert (form ``kind``, ``text``/``reason``, ``csrf_token``)."""
        session, form, refused = await self._form_session(request)
        if refused is not None:
            return refused
        assert session is not None
        view = self.state.alerts.get(request.path_params["alert_id"])
        if view is None:
            return Response("No such alert.", 404)
        kind = form.get("kind", "")
        if kind not in ALERT_ACTIONS:
            return Response(f"Unknown action {kind[:40]!r}; use one of {', '.join(ALERT_ACTIONS)}.", 400)
        if not allowed(session.user.role, kind):
            return Response(f"Refused: a {session.user.role} may not {kind}.", 403)
        text = " ".join(form.get("text", "").split())[:MAX_TEXT_CHARS]
        if kind == "reject":
            reason = form.get("reason", "")
            if reason not in REJECT_REASONS:
                return Response("A rejection needs one of the listed reasons.", 400)
            text = reason + (f": {text}" if text else "")
        if kind == "annotate" and not text:
            return Response("An annotation needs a text.", 400)
        try:
            if kind == "escalate":
                flash = await self._escalate(view, session.user.name, session.user.role, text)
            else:
                warnings = await self.bus.publish(self._action(view, kind, session.user.name, session.user.role, text))
                flash = "; ".join(warnings) or f"{kind}: stored"
        except EcgmonError as exc:
            return Response(str(exc), 503)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"alert": view.summary(), "flash": flash})
        return RedirectResponse(f"/alerts/{view.alert_id}?flash={_quote(flash)}", status_code=303)

    def _action(self, view: AlertView, kind: str, user: str, role: str, text: str, **extra: Any) -> AlertAction:
        return AlertAction(
            action_id=uuid.uuid4().hex, kind=kind, patient_id=view.patient_id, user=user, role=role,
            t_ns=time.time_ns(), alert_id=view.alert_id, alert_type=view.type, text=text, **extra,
        )  # fmt: skip

    async def _escalate(self, view: AlertView, user: str, role: str, note: str) -> str:
        s = self.settings
        criteria = self.state.criteria.get(view.patient_id)
        recipient = escalation.recipient_for(criteria, view, s.console_escalate_default_to)
        body = escalation.payload(view, recipient=recipient, user=user, note=note, console_url=s.console_url)
        delivered, detail = await escalation.send(s.console_webhook_url, body, s.console_webhook_timeout_s)
        action = self._action(
            view, "escalate", user, role, note, recipient=recipient, delivered=delivered, detail={"webhook": detail}
        )
        warnings = await self.bus.publish(action)
        verdict = f"escalated to {recipient}: " + ("delivered" if delivered else f"NOT delivered ({detail})")
        return "; ".join([verdict, *warnings])

    # --- endpoints: patient and report ---------------------------------------------------------
    async def patient_page(self, request: Request) -> Response:
        """A patient: live lead I, heart-rate trend and rhythm counts, alerts, actions, notification criteria."""
        session = self.session(request)
        if session is None:
            return self._need_login(request)
        try:
            patient_id = check_patient_id(request.path_params["patient_id"])
        except ContractError:
            return self.page(request, "missing.html", session, 404, what="patient")
        trend, live = await asyncio.gather(
            asyncio.to_thread(self._trend, patient_id), asyncio.to_thread(self._live, patient_id, time.time_ns())
        )
        return self.page(
            request, "patient.html", session, patient_id=patient_id, alerts=self.state.for_patient(patient_id),
            actions=self.state.patient_actions(patient_id), criteria=self.state.criteria.get(patient_id),
            may_criteria=allowed(session.user.role, "criteria"), types=("af", "brady", "tachy", "pause", "technical"),
            flash=request.query_params.get("flash", ""), **trend, **live,
        )  # fmt: skip

    async def patient_live(self, request: Request) -> Response:
        """The patient page's live section alone: lead I over the last ``console_live_s`` up to now, beats marked.

        Built from the packed strips (``ecg_strip``) the worker stores for every window, so it costs
        the worker nothing (no live points are written for it) and works for any patient, with or
        without an open alert; each call is one InfluxDB read. The page fetches it again every
        ``console_live_refresh_s`` while it is on screen: windows arrive every ``window_s`` (10 s),
        so a shorter period would mostly re-read the same windows.
        """
        session = self.session(request)
        if session is None:
            return self._need_login(request)
        try:
            patient_id = check_patient_id(request.path_params["patient_id"])
        except ContractError as exc:
            return Response(str(exc), 404)
        live = await asyncio.to_thread(self._live, patient_id, time.time_ns())
        return self.page(request, "_live.html", session, patient_id=patient_id, **live)

    def _live(self, patient_id: str, now_ns: int) -> dict[str, Any]:
        """Lead I of ``patient_id`` from ``console_live_s`` before ``now_ns`` to it, on ECG paper with beats."""
        t1_ms = now_ns // 1_000_000
        t0_ms = t1_ms - int(self.settings.console_live_s * 1000)
        try:
            trace = strip.lead_i(self.influx, patient_id, t0_ms, t1_ms)
            beats = strip.beats_ms(trace)
            error = ""
        except (SinkError, ContractError) as exc:  # InfluxDB away, or a stored point that does not decode
            trace, beats, error = strip.Trace.nothing(), None, str(exc)
        svg = strip.svg_strip(trace, t0_ms=t0_ms, t1_ms=t1_ms, beats=beats)
        return {
            "live_svg": Markup(svg),
            "live_samples": len(trace.t_ms),
            "live_beats": 0 if beats is None else len(beats),
            "live_newest_ns": None if trace.empty else int(trace.t_ms[-1]) * 1_000_000,
            "live_t1_ns": t1_ms * 1_000_000,
            "live_error": error,
        }

    def _trend(self, patient_id: str) -> dict[str, Any]:
        s = self.settings
        nothing: dict[str, Any] = {"trend_svg": None, "rhythm_counts": {}, "trend_range": None}
        try:
            last = strip.last_prediction_ms(self.influx, patient_id)
            if last is None:
                return nothing
            t0 = last - int(s.console_trend_h * 3600 * 1000)
            rows = strip.predictions(self.influx, patient_id, t0, last)
        except SinkError as exc:
            return {**nothing, "influx_error": str(exc)}
        t0 = int(rows[0]["time"]) if rows else t0
        # about 400 points across the chart: the mean heart rate per bin
        bin_ms = max(int(s.window_s * 1000), (last - t0) // 400 + 1)
        bins: dict[int, list[float]] = {}
        for r in rows:
            if r.get("hr_bpm") is not None:
                bins.setdefault((int(r["time"]) - t0) // bin_ms, []).append(float(r["hr_bpm"]))
        points = [(t0 + k * bin_ms, sum(v) / len(v)) for k, v in sorted(bins.items())]
        counts = Counter(str(r.get("label")) for r in rows)
        svg = strip.svg_trend(points, t0_ms=t0, t1_ms=max(last, t0 + 1), lo=20, hi=200, unit="bpm")
        span = (t0 * 1_000_000, last * 1_000_000)
        return {"trend_svg": Markup(svg), "rhythm_counts": dict(counts), "trend_range": span}

    async def set_criteria(self, request: Request) -> Response:
        """Set a patient's notification criteria (physician or admin)."""
        session, form, refused = await self._form_session(request)
        if refused is not None:
            return refused
        assert session is not None
        if not allowed(session.user.role, "criteria"):
            return Response(f"Refused: a {session.user.role} may not set notification criteria.", 403)
        try:
            patient_id = check_patient_id(request.path_params["patient_id"])
        except ContractError as exc:
            return Response(str(exc), 400)
        raw = await request.form()
        types = tuple(str(t) for t in raw.getlist("types"))
        min_tier = form.get("min_tier", "routine")
        notify = " ".join(form.get("notify", "").split())[:MAX_TEXT_CHARS]
        if min_tier not in TIERS or not notify:
            return Response("Criteria need a recipient and a tier.", 400)
        criteria = Criteria(notify=notify, types=types, min_tier=min_tier, auto=form.get("auto") == "on")
        action = AlertAction(
            action_id=uuid.uuid4().hex, kind="criteria", patient_id=patient_id, user=session.user.name,
            role=session.user.role, t_ns=time.time_ns(), text=f"notify {notify}", recipient=notify,
            detail=criteria.to_detail(),
        )  # fmt: skip
        try:
            warnings = await self.bus.publish(action)
        except EcgmonError as exc:
            return Response(str(exc), 503)
        return RedirectResponse(f"/patients/{patient_id}?flash={_quote('; '.join(warnings) or 'criteria stored')}", 303)

    async def report(self, request: Request) -> Response:
        """The shift report: alerts opened and actions taken in the last ``hours`` (default the shift)."""
        session = self.session(request)
        if session is None:
            return self._need_login(request)
        try:
            hours = float(request.query_params.get("hours", self.settings.console_shift_h))
        except ValueError:
            hours = self.settings.console_shift_h
        t1 = time.time_ns()
        t0 = t1 - int(hours * 3600e9)
        alerts = self.state.alerts_between(t0, t1)
        actions = self.state.actions_between(t0, t1)
        return self.page(
            request, "report.html", session, hours=hours, t0_ns=t0, t1_ns=t1, alerts=alerts, actions=actions,
            by_tier=Counter(v.tier for v in alerts), by_type=Counter(v.type for v in alerts),
            by_disposition=Counter(v.disposition for v in alerts), by_kind=Counter(a.kind for a in actions),
            pending=[v for v in alerts if not v.acknowledged], roles=ROLES,
        )  # fmt: skip

    # --- endpoints: API ------------------------------------------------------------------------
    async def api_alerts(self, request: Request) -> Response:
        """``[{alert_id, patient_id, type, tier, opened_at, acknowledged, ...}]`` in queue order."""
        if self.session(request) is None:
            return self._need_login(request)
        state = request.query_params.get("state", "open")
        if state not in ("open", "unacknowledged", "all"):
            return JSONResponse({"error": "state must be open, unacknowledged or all"}, status_code=400)
        return JSONResponse([v.summary() for v in self.state.listed(state)])

    async def api_alert(self, request: Request) -> Response:
        """One alert with its actions."""
        if self.session(request) is None:
            return self._need_login(request)
        view = self.state.alerts.get(request.path_params["alert_id"])
        if view is None:
            return JSONResponse({"error": "no such alert"}, status_code=404)
        actions = [
            {"kind": a.kind, "user": a.user, "role": a.role, "at": _iso(a.t_ns), "text": a.text,
             "recipient": a.recipient, "delivered": a.delivered}
            for a in view.actions
        ]  # fmt: skip
        return JSONResponse({**view.summary(), "actions": actions})

    async def api_strip(self, request: Request) -> Response:
        """Full disclosure as JSON: one lead of one patient over a range, NaN gaps as null.

        Query: ``patient``, ``start`` and ``end`` (Unix ms, ISO 8601, ``now`` or ``-24h``; default the
        last 24 h), ``lead`` (default I, the measured lead), ``fs_hz`` (resample to this rate; default
        the stored one). Answers ``{patient_id, lead, fs_hz, t0_ms, samples, points, values, sd}``
        where sample k is at ``t0_ms + k * 1000 / fs_hz``; 400 for a bad query or one that would
        return more than ``console_strip_max_samples`` samples.
        """
        if self.session(request) is None:
            return self._need_login(request)
        q = request.query_params
        now_ms = int(time.time() * 1000)
        try:
            patient_id = check_patient_id(q.get("patient", ""), "patient")
            t1 = parse_time_ms(q.get("end", "now"), now_ms=now_ms)
            t0 = parse_time_ms(q.get("start", "-24h"), now_ms=t1)
            lead = q.get("lead", MEASURED_LEAD)
            fs_hz = float(q["fs_hz"]) if q.get("fs_hz") else None
            if fs_hz is not None and not (np.isfinite(fs_hz) and fs_hz > 0):
                raise ValueError(f"fs_hz {fs_hz!r} must be a positive rate in Hz.")
            if t1 < t0:
                raise ValueError("end must not be before start.")
            stored_hz = await asyncio.to_thread(self._stored_rate, patient_id, lead, t0, t1)
            fs_max = stored_hz if fs_hz is None else fs_hz
        except (ContractError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SinkError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        limit = self.settings.console_strip_max_samples
        if (t1 - t0) / 1000.0 * fs_max > limit:
            return JSONResponse(
                {"error": f"{(t1 - t0) / 1000.0 * fs_max:.0f} samples asked, at most {limit} at once: ask a shorter "
                 "range or a lower fs_hz."}, status_code=400,
            )  # fmt: skip
        try:
            strip = await asyncio.to_thread(read_strip, self.influx, patient_id, t0, t1, lead=lead, fs_hz=fs_hz)
        except SinkError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        except ContractError as exc:
            return JSONResponse({"error": f"a stored point cannot be decoded: {exc}"}, status_code=500)
        body = {
            "patient_id": patient_id, "lead": lead, "fs_hz": strip.fs_hz, "t0_ms": strip.t0_ms,
            "samples": len(strip.values), "points": strip.points, "values": np.round(strip.values, 4),
            "sd": None if strip.sd is None else np.round(strip.sd, 4),
        }  # fmt: skip
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    def _stored_rate(self, patient_id: str, lead: str, t0_ms: int, t1_ms: int) -> float:
        """The highest rate stored for the lead in the range (0 when nothing is): sizes the answer before reading it."""
        if lead not in LEADS:
            raise ContractError(f"lead {lead!r:.20} is unknown; use one of {', '.join(LEADS)}.")
        series = self.influx.query(
            f'SELECT max("fs_hz") FROM "{STRIP}" WHERE "patient_id" = \'{patient_id}\' AND "lead" = \'{lead}\' '
            f"AND time >= {int(t0_ms)}ms AND time <= {int(t1_ms)}ms"
        )
        return float(series[0]["values"][0][1]) if series and series[0].get("values") else 0.0


def _lead_order(lead: str) -> int:
    from ecgmon.contracts import LEADS

    return LEADS.index(lead) if lead in LEADS else len(LEADS)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:300])
