"""``gpukit view``: one resident volume, a single-page viewer, frames over a WebSocket (aiohttp).

Protocol (the page is ``static/index.html`` + ``viewer.js``; nothing else is served):

* ``GET /?token=T`` the page, ``GET /static/viewer.js?token=T`` and ``/static/viewer.css?token=T`` its two
  files (read from the package once at start; a request names a key of a fixed table, never a path), and
  ``GET /ws?token=T`` the WebSocket. Every request without the token gets 403, before routing.
* The page sends JSON text messages (at most :data:`MAX_MESSAGE` bytes each): ``size``, ``scroll``, ``cross``,
  ``rotate``, ``window``, ``slab``, ``spin``, ``hover``, ``reset`` (see :meth:`Session.handle`). A malformed,
  oversized or binary message closes that socket (code 1008 or 1009) and nothing else.
* The server sends one JSON ``hello``, ``hover`` answers, and frames: binary messages of a 4-byte little-endian
  header length, the header (JSON: view, version, format, the plane, labels, crosshair, timings) and the
  encoded image (PNG when the view has settled, JPEG or WebP while it moves).

Each view of each tab has one render loop: it renders the *current* state when it is free, so input that
arrives while a frame is being made is coalesced (latest wins) and a fast drag never queues stale frames.
Renders run on a thread pool (the :class:`~gpukit.Reslicer` is thread-safe).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import secrets
import struct
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from ..errors import GpukitError, InvalidParameterError
from .scene import MAX_SIZE, MIN_SIZE, MODES, VIEWS, Scene

log = logging.getLogger("gpukit.view")

#: the largest text message a page may send (a size or an input message is under 300 bytes)
MAX_MESSAGE = 4096
#: a view is "settled" (PNG) when no input came for this long and no button is down
SETTLE_S = 0.15
#: the page's files, by the name a request may ask for: (package file, content type)
STATIC = {"viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
          "viewer.css": ("viewer.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ProtocolError(GpukitError, ValueError):
    """A message from the page that does not follow the protocol (its socket is closed)."""


def _read_static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _num(msg: dict, key: str, lo: float, hi: float) -> float:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ProtocolError(f"{key!r} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def _int(msg: dict, key: str, lo: int, hi: int) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ProtocolError(f"{key!r} must be a whole number in [{lo}, {hi}], got {v!r}")
    return v


def _choice(msg: dict, key: str, options) -> str:
    v = msg.get(key)
    if v not in options:
        raise ProtocolError(f"{key!r} must be one of {list(options)}, got {v!r}")
    return v


PX = 1e5       # pointer coordinates and drags are within +-PX pixels


class Session:
    """One tab: its scene, its WebSocket and a render loop per view."""

    def __init__(self, server: "ViewServer", ws):
        self.server = server
        self.ws = ws
        self.scene = Scene(server.renderer.volume, window=server.window)
        self.pressed = False
        self.last_input = -1e9
        self.recv_times: dict[int, float] = {}
        self.events = {v: asyncio.Event() for v in VIEWS}
        self.tasks: list[asyncio.Task] = []
        self.hover_req: dict | None = None
        self.hover_event = asyncio.Event()
        self.frames_sent = 0

    # -- input ------------------------------------------------------------------------------------------------
    def handle(self, text: str) -> None:
        """Apply one message from the page, or raise :class:`ProtocolError`."""
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"not JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise ProtocolError("a message must be a JSON object")
        t = msg.get("t")
        sc = self.scene
        if "id" in msg:
            mid = _int(msg, "id", 0, 2 ** 53)
            self.recv_times[mid] = time.perf_counter()
            if len(self.recv_times) > 256:
                for k in sorted(self.recv_times)[:-128]:
                    del self.recv_times[k]
            sc.input_id = mid
        phase = None
        if t == "size":
            views = msg.get("views")
            if not isinstance(views, dict) or not views or not set(views) <= set(VIEWS):
                raise ProtocolError(f"'views' must map some of {list(VIEWS)} to [width, height]")
            for name, wh in views.items():
                if (not isinstance(wh, list) or len(wh) != 2 or
                        not all(isinstance(x, int) and not isinstance(x, bool) and MIN_SIZE <= x <= MAX_SIZE
                                for x in wh)):
                    raise ProtocolError(f"view size must be [width, height], whole numbers in "
                                        f"[{MIN_SIZE}, {MAX_SIZE}], got {wh!r}")
                sc.set_size(name, wh[1], wh[0])
        elif t == "scroll":
            sc.scroll(_choice(msg, "view", VIEWS), _int(msg, "steps", -1000, 1000))
            self.last_input = time.perf_counter()
        elif t == "cross":
            phase = _choice(msg, "phase", ("start", "move", "end"))
            sc.set_cross(_choice(msg, "view", VIEWS), _num(msg, "x", -PX, PX), _num(msg, "y", -PX, PX))
        elif t == "rotate":
            phase = _choice(msg, "phase", ("start", "move", "end"))
            sc.rotate(phase, _num(msg, "dx", -PX, PX), _num(msg, "dy", -PX, PX))
        elif t == "window":
            if "c" in msg or "w" in msg:
                sc.set_window(_num(msg, "c", -1e6, 1e6), _num(msg, "w", 1, 1e6))
                self.last_input = time.perf_counter()
            else:
                phase = _choice(msg, "phase", ("start", "move", "end"))
                sc.drag_window(phase, _num(msg, "dx", -PX, PX), _num(msg, "dy", -PX, PX))
        elif t == "slab":
            try:
                sc.set_slab(_choice(msg, "view", VIEWS), _num(msg, "mm", 0, 500), _choice(msg, "mode", MODES))
            except InvalidParameterError as exc:
                raise ProtocolError(str(exc)) from None
        elif t == "spin":
            on = msg.get("on")
            if not isinstance(on, bool):
                raise ProtocolError("'on' must be true or false")
            sc.set_spin(on)
        elif t == "hover":
            self.hover_req = {"view": _choice(msg, "view", VIEWS), "x": _num(msg, "x", -PX, PX),
                              "y": _num(msg, "y", -PX, PX)}
            self.hover_event.set()
            return
        elif t == "reset":
            sc.reset()
        else:
            raise ProtocolError(f"unknown message type {t!r}")
        if phase is not None:
            self.pressed = phase != "end"
            self.last_input = time.perf_counter()
        for ev in self.events.values():
            ev.set()

    def busy(self) -> float:
        """Seconds until the views count as settled (0: settled)."""
        if self.pressed:
            return SETTLE_S
        return max(0.0, self.last_input + SETTLE_S - time.perf_counter())

    # -- output -----------------------------------------------------------------------------------------------
    async def view_loop(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        vs = self.scene.views[name]
        ev = self.events[name]
        sent_version, sent_png = None, False
        while not self.ws.closed:
            ev.clear()
            spin = name == "oblique" and self.scene.spin
            wait = None
            if vs.size is None:
                fmt = None
            elif vs.version != sent_version or spin:
                fmt = self.server.lossy if (spin or self.busy() > 0) else "png"
            elif not sent_png:
                b = self.busy()
                fmt = "png" if b == 0 else None
                wait = b if b > 0 else None
            else:
                fmt = None
            if fmt is None:
                try:
                    await asyncio.wait_for(ev.wait(), timeout=wait)
                except asyncio.TimeoutError:
                    pass
                continue
            snap = self.scene.snapshot(name)
            if snap is None:
                continue
            try:
                header, data = await loop.run_in_executor(self.server.pool, self.server.renderer.render, snap, fmt)
            except Exception as exc:  # noqa: BLE001  (a failed render is reported to the page, the loop goes on)
                log.exception("gpukit view: rendering the %s view failed", name)
                sent_version, sent_png = snap["version"], True
                if not self.ws.closed:
                    await self.ws.send_str(json.dumps({"t": "error", "view": name,
                                                       "message": f"{type(exc).__name__}: {exc}"[:500]}))
                continue
            if self.ws.closed:
                return
            t_recv = self.recv_times.get(header["input_id"])
            header["server_ms"] = None if t_recv is None else (time.perf_counter() - t_recv) * 1e3
            head = json.dumps(header).encode()
            await self.ws.send_bytes(struct.pack("<I", len(head)) + head + data)
            self.frames_sent += 1
            self.server.frames_sent += 1
            sent_version, sent_png = snap["version"], fmt == "png"
            if spin:
                self.scene.advance_spin()
                await asyncio.sleep(0)

    async def hover_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.ws.closed:
            await self.hover_event.wait()
            self.hover_event.clear()
            req, self.hover_req = self.hover_req, None
            if req is None:
                continue
            snap = self.scene.snapshot(req["view"])
            if snap is None:
                continue
            r = self.server.renderer
            try:
                out = await loop.run_in_executor(self.server.pool, r.probe, snap["plane"], req["x"], req["y"],
                                                 snap["slab_mm"], snap["mode"], snap["spin"])
            except Exception:  # noqa: BLE001
                log.exception("gpukit view: reading the value under the cursor failed")
                continue
            if self.ws.closed:
                return
            await self.ws.send_str(json.dumps({"t": "hover", **req, **out}))


class ViewServer:
    """A viewer of one volume, served over HTTP + WebSocket (aiohttp) on ``host:port``.

    Parameters
    ----------
    volume : Volume
        Made resident on the rendering backend's device (once) and held in a :class:`~gpukit.Reslicer`.
    backend : str, optional
        Compute backend (default ``auto``: a GPU when there is one).
    host : str
        Address to bind (default ``127.0.0.1``: this machine only).
    port : int
        0 (default) picks a free port.
    token : str, optional
        Required on every request (``?token=``); default a new random one.
    window : (center, width), preset name or "auto", optional
        The initial window; default the file's own, else the ``soft_tissue`` preset.
    lossy : "jpeg" or "webp"
        The format of frames while a view moves.

    Use :meth:`start` (a background thread: notebooks, scripts) and :meth:`stop`, or :meth:`serve_forever`;
    :meth:`make_app` gives the ``aiohttp.web.Application`` to mount in another aiohttp app.
    """

    def __init__(self, volume, *, backend: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, window=None, lossy: str = "jpeg", title: str | None = None,
                 workers: int | None = None):
        from .render import LOSSY_FORMATS, FrameRenderer

        if lossy not in LOSSY_FORMATS:
            raise InvalidParameterError(f"lossy must be one of {LOSSY_FORMATS}, got {lossy!r}")
        self.renderer = FrameRenderer(volume, backend=backend)
        self.backend = self.renderer.backend
        self.host = host
        self.port = int(port)
        self.token = token or secrets.token_urlsafe(24)
        self.lossy = lossy
        self.title = title or _title(volume)
        self.window = self._initial_window(window)
        self.pool = ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) + 2),
                                       thread_name_prefix="gpukit-view")
        self._static = {k: (_read_static(f), ct) for k, (f, ct) in STATIC.items()}
        self._index = _read_static("index.html").decode()
        self.sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()
        self._live: set[Session] = set()
        self.frames_sent = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def _initial_window(self, window):
        from ..ops.intensity import file_window
        from ..presets import get_preset

        if window is None:
            fw = file_window(self.renderer.volume)
            return fw if fw is not None else get_preset("soft_tissue")
        if isinstance(window, str) and window == "auto":       # the centre axial image's own range
            from ..arrays import to_host
            from ..planes import Plane
            from ..render import auto_window

            img = to_host(self.renderer.reslicer.reslice(Plane.axial(self.renderer.volume)))
            c, w = auto_window(img)
            return float(c), max(1.0, float(w))
        if isinstance(window, str):
            return get_preset(window)
        c, w = window
        return float(c), max(1.0, float(w))

    # -- HTTP ---------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def _token_ok(self, request) -> bool:
        given = request.query.get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    def make_app(self):
        """The ``aiohttp.web.Application`` (token check on every request, the page, its files, the WebSocket)."""
        from aiohttp import web

        @web.middleware
        async def guard(request, handler):
            if not self._token_ok(request):
                return web.Response(status=403, text="403: a valid token is required (open the URL gpukit "
                                                    "view printed)\n", headers=SECURITY_HEADERS)
            resp = await handler(request)
            for k, v in SECURITY_HEADERS.items():
                resp.headers.setdefault(k, v)
            return resp

        app = web.Application(middlewares=[guard], client_max_size=MAX_MESSAGE)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._file)
        app.router.add_get("/ws", self._ws)
        return app

    async def _page(self, request):
        from aiohttp import web
        import html

        body = self._index.replace("{{token}}", self.token).replace("{{title}}", html.escape(self.title))
        return web.Response(text=body, content_type="text/html", charset="utf-8")

    async def _file(self, request):
        from aiohttp import web

        item = self._static.get(request.match_info.get("name", ""))
        if item is None:
            raise web.HTTPNotFound()
        body, ct = item
        return web.Response(body=body, headers={"Content-Type": ct})

    def hello(self) -> dict:
        from ..presets import PRESETS

        vol = self.renderer.volume
        m = vol.meta
        wc, ww = m.get("window_center"), m.get("window_width")
        wc = [] if wc is None else (list(wc) if isinstance(wc, (list, tuple)) else [wc])
        ww = [] if ww is None else (list(ww) if isinstance(ww, (list, tuple)) else [ww])
        fws = []
        for c, w in zip(wc, ww):
            if [float(c), float(w)] not in fws:
                fws.append([float(c), float(w)])
        from .scene import DEG_PER_PX, WINDOW_PX

        return {"t": "hello", "title": self.title, "backend": self.backend, "shape": list(vol.shape),
                "spacing": [float(s) for s in vol.spacing], "window": list(self.window),
                "presets": {k: list(v) for k, v in PRESETS.items()}, "file_windows": fws, "views": list(VIEWS),
                "modes": list(MODES), "deg_per_px": DEG_PER_PX, "window_px": WINDOW_PX, "lossy": self.lossy,
                "max_message": MAX_MESSAGE}

    async def _ws(self, request):
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=30.0)
        await ws.prepare(request)
        s = Session(self, ws)
        self.sessions.add(s)
        self._live.add(s)
        try:
            await ws.send_str(json.dumps(self.hello()))
            s.tasks = [asyncio.ensure_future(s.view_loop(v)) for v in VIEWS] + [asyncio.ensure_future(s.hover_loop())]
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        s.handle(msg.data)
                    except ProtocolError as exc:
                        await ws.close(code=1008, message=str(exc)[:120].encode())
                        break
                elif msg.type == WSMsgType.BINARY:
                    await ws.close(code=1003, message=b"binary messages are not accepted")
                    break
                else:       # ERROR (e.g. a message over MAX_MESSAGE: aiohttp closes with 1009), CLOSE
                    break
        finally:
            if not ws.closed:
                await ws.close()
            for t in s.tasks:
                t.cancel()
            await asyncio.gather(*s.tasks, return_exceptions=True)
            self._live.discard(s)
            s.tasks = []
        return ws

    @property
    def session_count(self) -> int:
        """Tabs connected now."""
        return len(self._live)

    def live_sessions(self) -> list:
        """The sessions (tabs) connected now."""
        return list(self._live)

    # -- running ------------------------------------------------------------------------------------------------
    async def _astart(self):
        from aiohttp import web

        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0] if site._server and site._server.sockets else None
        if sock is not None:
            self.port = sock.getsockname()[1]

    def start(self) -> "ViewServer":
        """Serve from a background thread (returns once the port is bound)."""
        if self._thread is not None:
            return self

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # noqa: BLE001  (reported to the starting thread)
                self._start_error = exc
                self._started.set()
                return
            self._started.set()
            loop.run_forever()
            loop.run_until_complete(self._ashutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="gpukit-view-server", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread = None
            raise self._start_error
        return self

    async def _ashutdown(self):
        for s in list(self._live):
            if not s.ws.closed:
                await s.ws.close(code=1001, message=b"server stopped")
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Close every socket, stop serving and free the thread pool."""
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self.pool.shutdown(wait=False, cancel_futures=True)

    def serve_forever(self) -> None:
        """:meth:`start`, then block until Ctrl-C."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _repr_html_(self):
        import html

        return f'<a href="{html.escape(self.url)}" target="_blank">gpukit viewer: {html.escape(self.title)}</a>'

    def __repr__(self):
        state = "serving at " + self.url if self._thread else "not started"
        return f"<ViewServer {self.title!r} backend={self.backend!r} {state}>"


def _title(volume) -> str:
    m = getattr(volume, "meta", {}) or {}
    parts = [str(m.get(k)) for k in ("modality", "series_number", "series_description") if m.get(k) not in (None, "")]
    shape = "x".join(str(n) for n in volume.shape)
    return " ".join(parts + [shape])


def view(volume_or_path, *, series=None, backend: str | None = None, host: str = "127.0.0.1", port: int = 0,
         token: str | None = None, window=None, open_browser: bool = False, lossy: str = "jpeg",
         start: bool = True) -> ViewServer:
    """Serve a viewer of a volume (or of the DICOM series at a path) and return the running :class:`ViewServer`.

    ``server.url`` is the address to open (it carries the token); ``server.stop()`` ends it. From a notebook
    the returned object shows as a link. ``start=False`` returns it unstarted (mount ``server.make_app()`` in
    your own aiohttp app instead).

    Examples
    --------
    >>> srv = gpukit.view("ct/")            # doctest: +SKIP
    >>> print(srv.url)                      # doctest: +SKIP
    http://127.0.0.1:40123/?token=...
    """
    from ..volume import Volume

    if isinstance(volume_or_path, Volume):
        vol = volume_or_path
    else:
        from ..dicom.api import load

        vol = load(volume_or_path, series=series, on_irregular="keep", backend=backend)
    srv = ViewServer(vol, backend=backend, host=host, port=port, token=token, window=window, lossy=lossy)
    if start:
        srv.start()
        if open_browser:
            import webbrowser

            webbrowser.open(srv.url)
    return srv


__all__ = ["ViewServer", "view", "ProtocolError", "MAX_MESSAGE", "SETTLE_S"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: gpukit view PATH")
