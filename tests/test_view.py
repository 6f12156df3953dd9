"""``gpukit view``: the server (token, protocol, sessions, latest-wins frames) and the page in a real browser.

The browser tests drive Debian's ``chromium`` through Selenium and the system ``chromedriver`` (``.ci/run``
installs both where it can); they skip with the reason where either is missing or will not start. Every
frame the page shows is compared with the public API called independently here: ``Plane.axial/coronal/
sagittal`` or ``Plane(...)`` for the pose, a :class:`gpukit.Reslicer` (or ``gpukit.project`` for a slab) for
the image, ``gpukit.render.display`` for the window. Settled frames are PNG and must be equal, pixel for
pixel, in the bytes received, on the canvas and in a screenshot of the page; frames sent while dragging are
JPEG and must be within its tolerance.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import weakref
from urllib.parse import urlsplit

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp", reason="gpukit view needs aiohttp (pip install -e '.[test]')")

import gpukit  # noqa: E402
from gpukit import Plane  # noqa: E402
from gpukit.planes import axis_rotation, corners, rotation_matrix, spacing_along  # noqa: E402
from gpukit.render import display  # noqa: E402

from conftest import ROOT, data_path  # noqa: E402

CT = "ct_philips_1mm"
X, Y, Z = np.eye(3)


def _backend() -> str:
    return "numba" if "numba" in gpukit.available_backends() else "numpy"


@pytest.fixture(scope="module")
def server():
    path = data_path(CT)
    srv = gpukit.view(str(path), backend=_backend())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def oracle(server):
    """An independent Reslicer on the server's volume (the same stored values)."""
    vol = server.renderer.volume
    return vol, gpukit.Reslicer(vol, backend=server.backend)


# -- the Python API the page must agree with ------------------------------------------------------------------
def fit_spacing(vol, name, h, w):
    c = corners(vol)
    if name == "oblique":
        return 2 * float(np.max(np.linalg.norm(c - vol.center, axis=1))) / min(h, w)
    u, v = {"axial": (X, Y), "coronal": (X, -Z), "sagittal": (Y, -Z)}[name]
    return max(np.ptp(c @ u) / w, np.ptp(c @ v) / h)


def api_plane(vol, name, h, w, cross, R=None):
    s = fit_spacing(vol, name, h, w)
    if name == "axial":
        return Plane.axial(vol, position_mm=cross[2], shape=(h, w), spacing=s)
    if name == "coronal":
        return Plane.coronal(vol, position_mm=cross[1], shape=(h, w), spacing=s)
    if name == "sagittal":
        return Plane.sagittal(vol, position_mm=cross[0], shape=(h, w), spacing=s)
    n = R[:, 2]
    c = vol.center + float((np.asarray(cross) - vol.center) @ n) * n
    return Plane(c, R[:, 0], R[:, 1], (h, w), (s, s))


def api_image(oracle, plane, window, slab=0.0, mode="max"):
    vol, rs = oracle
    if slab:
        hu = gpukit.project(vol, plane, mode=mode, thickness_mm=slab, step_mm=float(min(vol.spacing)),
                            backend=rs.backend)
    else:
        hu = rs.reslice(plane)
    return display(hu, tuple(window), vol, backend=rs.backend)


def header_plane(h) -> Plane:
    p = h["plane"]
    return Plane(p["center"], p["u"], p["v"], tuple(p["shape"]), tuple(p["spacing"]))


def assert_same_plane(h, plane):
    p = h["plane"]
    assert tuple(p["shape"]) == plane.shape
    np.testing.assert_allclose(p["spacing"], plane.spacing, rtol=1e-12)
    np.testing.assert_allclose(p["center"], plane.center, atol=1e-9)
    np.testing.assert_allclose(p["u"], plane.u, atol=1e-12)
    np.testing.assert_allclose(p["v"], plane.v, atol=1e-12)


def decode(data: bytes) -> np.ndarray:
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    a = np.asarray(im)
    return a if a.ndim == 2 else a[..., 0]


# -- a real browser -------------------------------------------------------------------------------------------
def _find(*names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    chrome = os.environ.get("CHROME_BIN") or _find("chromium", "chromium-browser", "google-chrome")
    driver = os.environ.get("CHROMEDRIVER") or _find("chromedriver")
    if not chrome or not driver:
        pytest.skip("no chromium/chromedriver on PATH (Debian: apt-get install chromium chromium-driver, "
                    "which .ci/run does where it can)")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,900",
              "--force-device-scale-factor=1", "--force-color-profile=srgb", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars"):
        opts.add_argument(a)
    opts.binary_location = chrome
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    try:
        d = webdriver.Chrome(service=Service(driver), options=opts)
    except WebDriverException as exc:
        pytest.skip(f"chromium would not start under chromedriver: {str(exc.msg or exc).splitlines()[0]}")
    d.set_script_timeout(30)
    yield d
    d.quit()


def js(d, expr):
    return d.execute_script("return " + expr)


def wait_for(d, expr, timeout=60.0, what=None):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        v = js(d, expr)
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or expr}")


SETTLED = ("(function(){const a = window.gpukitViewer; if (!a) return false;"
           "for (const v of %s) {"
           "  const f = a.frames[v]; if (!f || f.fmt !== 'png' || f.input_id < %d) return false; }"
           "return true;})()")
ALL = ("axial", "coronal", "sagittal", "oblique")


def settle(d, min_id=0, views=ALL):
    """Wait until ``views`` show PNG frames made after input ``min_id``; every view's last header."""
    expr = SETTLED % (json.dumps(list(views)), min_id)
    wait_for(d, expr, what=f"{views} settled after input {min_id}")
    time.sleep(0.25)      # a frame already on its way would replace it: let it land
    wait_for(d, expr, what=f"{views} settled after input {min_id}")
    return js(d, "window.gpukitViewer.frames")


def last_id(d) -> int:
    return js(d, "Math.max(0, ...window.gpukitViewer.sent.filter(m => m.id).map(m => m.id))")


def open_page(d, server):
    d.get(server.url)
    wait_for(d, "window.gpukitViewer && window.gpukitViewer.hello", what="the hello message")
    return settle(d)


def settled_png(d, name) -> tuple[dict, np.ndarray]:
    h = js(d, f"window.gpukitViewer.settled['{name}'].header")
    return h, decode(base64.b64decode(js(d, f"window.gpukitViewer.settledB64('{name}')")))


def canvas_pixels(d, name, h, w) -> np.ndarray:
    return np.frombuffer(base64.b64decode(js(d, f"window.gpukitViewer.canvasB64('{name}')")), np.uint8).reshape(h, w)


def canvas(d, name):
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, f'.view[data-view="{name}"] canvas.image')


# -- browser tests ----------------------------------------------------------------------------------------------
def test_page_loads_from_localhost_only_and_every_view_equals_the_reslicer(browser, server, oracle):
    from PIL import Image

    d = browser
    d.get_log("performance")       # drop what came before
    open_page(d, server)
    vol = oracle[0]
    # no request left 127.0.0.1 (the browser's own network log: page, files, WebSocket)
    urls = set()
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            urls.add(m["params"]["request"]["url"])
        elif m["method"] == "Network.webSocketCreated":
            urls.add(m["params"]["url"])
    assert any(u.startswith("ws://") for u in urls) and any(u.startswith("http://") for u in urls), urls
    outside = [u for u in urls if urlsplit(u).scheme not in ("data", "blob") and
               (urlsplit(u).hostname != "127.0.0.1" or urlsplit(u).port != server.port)]
    assert outside == []
    window = tuple(server.window)
    R0 = rotation_matrix((20.0, 30.0, 0.0))
    expect = {}
    for name in ("axial", "coronal", "sagittal", "oblique"):
        h, png = settled_png(d, name)
        assert h["input_id"] == 0 and h["fmt"] == "png"
        plane = api_plane(vol, name, h["h"], h["w"], vol.center, R0)
        assert_same_plane(h, plane)
        want = api_image(oracle, plane, window)
        expect[name] = want
        assert png.shape == want.shape
        assert np.array_equal(png, want), f"{name}: {np.count_nonzero(png != want)} pixels differ"
        assert np.array_equal(canvas_pixels(d, name, h["h"], h["w"]), want), f"{name}: the canvas differs"
    # a screenshot of the page, overlays hidden: each view's rectangle is the plane's image
    d.execute_script("for (const e of document.querySelectorAll('.overlay, .lab, .info')) e.style.visibility='hidden'")
    shot = np.asarray(Image.open(io.BytesIO(d.get_screenshot_as_png())).convert("RGB"))
    d.execute_script("for (const e of document.querySelectorAll('.overlay, .lab, .info')) e.style.visibility=''")
    for name, want in expect.items():
        r = js(d, f"window.gpukitViewer.canvasRect('{name}')")
        x, y = int(round(r["x"])), int(round(r["y"]))
        crop = shot[y:y + want.shape[0], x:x + want.shape[1]]
        assert crop.shape[:2] == want.shape
        assert np.array_equal(crop[..., 0], want) and np.array_equal(crop[..., 1], want), \
            f"{name}: screenshot differs in {np.count_nonzero(crop[..., 0] != want)} pixels"
    # orientation labels on every view
    from selenium.webdriver.common.by import By

    for name, want in {"axial": "RLAP", "coronal": "RLSI", "sagittal": "APSI"}.items():
        got = "".join(d.find_element(By.CSS_SELECTOR, f'.view[data-view="{name}"] .lab.{s}').text
                      for s in ("left", "right", "top", "bottom"))
        assert got == want, name
    assert all(d.find_element(By.CSS_SELECTOR, f'.view[data-view="oblique"] .lab.{s}').text
               for s in ("left", "right", "top", "bottom"))


def test_wheel_scrolls_like_moving_the_plane(browser, server, oracle):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    d = browser
    open_page(d, server)
    vol = oracle[0]
    el = canvas(d, "axial")
    for _ in range(3):
        ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(el), 0, -100).perform()   # wheel up: +normal
    wait_for(d, "window.gpukitViewer.sent.filter(m => m.t === 'scroll').length >= 3")
    steps = sum(m["steps"] for m in js(d, "window.gpukitViewer.sent") if m["t"] == "scroll")
    assert steps == 3
    settle(d, last_id(d))
    h, png = settled_png(d, "axial")
    z = vol.center[2] + steps * spacing_along(vol, Z)       # 1 mm slices: three slices up
    plane = api_plane(vol, "axial", h["h"], h["w"], [0, 0, z])
    assert_same_plane(h, plane)
    assert np.array_equal(png, api_image(oracle, plane, server.window))
    # the linked views keep their planes and show the crosshair at the new height
    hc, pc = settled_png(d, "coronal")
    assert_same_plane(hc, api_plane(vol, "coronal", hc["h"], hc["w"], vol.center))
    assert hc["cross"][2] == pytest.approx(z)


def test_click_moves_the_crosshair_and_the_other_views(browser, server, oracle):
    from selenium.webdriver.common.action_chains import ActionChains

    d = browser
    open_page(d, server)
    vol = oracle[0]
    el = canvas(d, "axial")
    ActionChains(d).move_to_element_with_offset(el, 60, -40).click().perform()
    wait_for(d, "window.gpukitViewer.sent.some(m => m.t === 'cross' && m.phase === 'end')")
    msg = [m for m in js(d, "window.gpukitViewer.sent") if m["t"] == "cross"][-1]
    r = js(d, "window.gpukitViewer.canvasRect('axial')")
    assert abs(msg["x"] - (r["cw"] / 2 + 60)) <= 1 and abs(msg["y"] - (r["ch"] / 2 - 40)) <= 1
    frames = settle(d, last_id(d))
    ha = frames["axial"]
    p = api_plane(vol, "axial", ha["h"], ha["w"], vol.center).pixel_to_world([msg["y"], msg["x"]])
    np.testing.assert_allclose(ha["cross"], p, atol=1e-9)
    for name in ("coronal", "sagittal"):
        h, png = settled_png(d, name)
        plane = api_plane(vol, name, h["h"], h["w"], p)
        assert_same_plane(h, plane)
        assert np.array_equal(png, api_image(oracle, plane, server.window)), name


def test_drag_rotates_the_oblique_plane_lossy_then_settled(browser, server, oracle):
    from selenium.webdriver.common.action_chains import ActionChains

    d = browser
    open_page(d, server)
    vol = oracle[0]
    d.execute_script("window.gpukitViewer.lossy = {}")
    server_window = (-600.0, 1500.0)            # a soft window: the JPEG check is not about hard edges
    d.execute_script(f"document.getElementById('preset').value = JSON.stringify({list(server_window)});"
                     "document.getElementById('preset').dispatchEvent(new Event('change'))")
    settle(d, last_id(d))
    el = canvas(d, "oblique")
    (ActionChains(d).move_to_element(el).click_and_hold().move_by_offset(30, 0).move_by_offset(30, 10)
     .move_by_offset(10, 20).release().perform())
    wait_for(d, "window.gpukitViewer.sent.some(m => m.t === 'rotate' && m.phase === 'end')")
    end = [m for m in js(d, "window.gpukitViewer.sent") if m["t"] == "rotate"][-1]
    assert (end["dx"], end["dy"]) == (70, 30)
    settle(d, last_id(d), views=("oblique",))
    h, png = settled_png(d, "oblique")
    R0 = rotation_matrix((20.0, 30.0, 0.0))
    axis = end["dy"] * R0[:, 0] - end["dx"] * R0[:, 1]
    R = axis_rotation(axis, math.hypot(end["dx"], end["dy"]) * 0.4) @ R0
    plane = api_plane(vol, "oblique", h["h"], h["w"], vol.center, R)
    assert_same_plane(h, plane)
    assert np.array_equal(png, api_image(oracle, plane, server_window))
    # a frame sent during the drag: JPEG, its pose in its header, within the encoder's tolerance
    lh = js(d, "window.gpukitViewer.lossy.oblique && window.gpukitViewer.lossy.oblique.header")
    assert lh is not None, "no frame was sent while dragging"
    assert lh["fmt"] == "jpeg"
    lossy = decode(base64.b64decode(js(d, "window.gpukitViewer.lossyB64('oblique')")))
    want = api_image(oracle, header_plane(lh), lh["window"]).astype(int)
    err = np.abs(lossy.astype(int) - want)
    assert err.mean() < 2.0 and np.percentile(err, 99) <= 16, (err.mean(), np.percentile(err, 99))


def test_right_drag_windows_and_slab_mip(browser, server, oracle):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.mouse_button import MouseButton
    from selenium.webdriver.support.ui import Select
    from selenium.webdriver.common.by import By

    d = browser
    open_page(d, server)
    vol = oracle[0]
    el = canvas(d, "axial")
    ActionChains(d).move_to_element(el).perform()
    ab = ActionBuilder(d)
    ab.pointer_action.pointer_down(MouseButton.RIGHT).move_by(40, -25).pointer_up(MouseButton.RIGHT)
    ab.perform()
    wait_for(d, "window.gpukitViewer.sent.some(m => m.t === 'window' && m.phase === 'end')")
    end = [m for m in js(d, "window.gpukitViewer.sent") if m["t"] == "window"][-1]
    assert (end["dx"], end["dy"]) == (40, -25)
    c0, w0 = server.window
    k = max(w0, 1.0) / 256.0
    win = (c0 - end["dy"] * k, max(1.0, w0 + end["dx"] * k))
    settle(d, last_id(d))
    for name in ("axial", "sagittal"):
        h, png = settled_png(d, name)
        np.testing.assert_allclose(h["window"], win, rtol=1e-12)
        plane = api_plane(vol, name, h["h"], h["w"], vol.center)
        assert np.array_equal(png, api_image(oracle, plane, win)), name
    # a 20 mm MIP slab in the coronal view, chosen from its menu
    Select(d.find_element(By.CSS_SELECTOR, '.view[data-view="coronal"] select.slab')).select_by_value("20")
    wait_for(d, "window.gpukitViewer.frames.coronal.slab_mm === 20 && window.gpukitViewer.frames.coronal.fmt === 'png'")
    h, png = settled_png(d, "coronal")
    assert (h["slab_mm"], h["mode"]) == (20, "max")
    plane = api_plane(vol, "coronal", h["h"], h["w"], vol.center)
    assert np.array_equal(png, api_image(oracle, plane, win, slab=20.0, mode="max"))
    Select(d.find_element(By.CSS_SELECTOR, '.view[data-view="coronal"] select.mode')).select_by_value("mean")
    wait_for(d, "window.gpukitViewer.frames.coronal.mode === 'mean' && window.gpukitViewer.frames.coronal.fmt === 'png'")
    h, png = settled_png(d, "coronal")
    assert np.array_equal(png, api_image(oracle, plane, win, slab=20.0, mode="mean"))


def test_hover_gives_lps_and_hu(browser, server, oracle):
    from selenium.webdriver.common.action_chains import ActionChains

    d = browser
    open_page(d, server)
    vol, rs = oracle
    ActionChains(d).move_to_element_with_offset(canvas(d, "axial"), 20, 10).perform()
    pr = wait_for(d, "window.gpukitViewer.probe")
    h = js(d, "window.gpukitViewer.frames.axial")
    plane = header_plane(h)
    p = plane.pixel_to_world([pr["y"], pr["x"]])
    np.testing.assert_allclose(pr["lps"], p, atol=1e-9)
    want = float(rs.reslice(Plane(p, plane.u, plane.v, (1, 1), plane.spacing))[0, 0])
    assert pr["inside"] and pr["hu"] == pytest.approx(want, abs=1e-3)
    assert "HU" in js(d, "document.getElementById('probe').textContent")


# -- server tests without a browser ---------------------------------------------------------------------------------
def _ws_url(server, token=None):
    return f"http://127.0.0.1:{server.port}/ws?token={server.token if token is None else token}"


async def _frames(ws, n, timeout=60.0):
    out = []
    t_end = time.monotonic() + timeout          # (the server's heartbeats would restart a per-receive timeout)
    while len(out) < n:
        m = await ws.receive(timeout=max(0.01, t_end - time.monotonic()))
        if m.type == aiohttp.WSMsgType.BINARY:
            k = struct.unpack("<I", m.data[:4])[0]
            out.append((json.loads(m.data[4:4 + k]), m.data[4 + k:]))
        elif m.type == aiohttp.WSMsgType.TEXT:
            assert json.loads(m.data)["t"] != "error", m.data
        else:
            raise AssertionError(f"socket ended: {m.type} {m.data} {m.extra}")
    return out


async def _until_png(ws, view, min_id, timeout=60.0):
    count = 0
    while True:
        (h, data), = await _frames(ws, 1, timeout)
        if h["view"] == view:
            count += 1
            if h["fmt"] == "png" and h["input_id"] >= min_id:
                return h, data, count


def test_token_is_required_on_http_and_websocket(server):
    import yarl

    async def main():
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as s:
            for path in ("/", "/?token=", "/?token=wrong", "/static/viewer.js", "/ws", "/favicon.ico",
                         f"/?token={server.token[:-1]}"):
                async with s.get(base + path) as r:
                    assert r.status == 403, path
            for tok in ("", "wrong", server.token.upper()):
                with pytest.raises(aiohttp.WSServerHandshakeError) as ei:
                    await s.ws_connect(_ws_url(server, tok))
                assert ei.value.status == 403
            async with s.get(server.url) as r:
                assert r.status == 200 and "viewer.js" in await r.text()
                assert "connect-src 'self'" in r.headers["Content-Security-Policy"]
            # no path in a request reaches the file system: only the page's own two files are served
            for path in ("/static/../server.py", "/static/..%2fserver.py", "/static/index.html", "/static/%2e%2e",
                         "/etc/passwd", "/static/viewer.js/../../scene.py"):
                url = yarl.URL(f"{base}{path}?token={server.token}", encoded=True)    # sent as written
                async with s.get(url) as r:
                    assert r.status == 404, path
                    assert "import" not in await r.text()

    asyncio.run(main())


def test_bad_messages_close_only_their_socket(server):
    async def main():
        async with aiohttp.ClientSession() as s:
            good = await s.ws_connect(_ws_url(server))
            assert json.loads((await good.receive(timeout=30)).data)["t"] == "hello"
            for bad, code in (('{"t": "size", "views": {"axial": [1e9, 3]}}', 1008), ("{not json", 1008),
                              ('{"t": "scroll", "view": "../etc", "steps": 1}', 1008), ("[1, 2]", 1008),
                              ('{"t": "cross", "phase": "start", "view": "axial", "x": NaN, "y": 0}', 1008),
                              (b"\x00\x01binary", 1003), ("x" * 100_000, 1009)):
                ws = await s.ws_connect(_ws_url(server))
                await ws.receive(timeout=30)
                await (ws.send_bytes(bad) if isinstance(bad, bytes) else ws.send_str(bad))
                m = await ws.receive(timeout=30)
                while m.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    m = await ws.receive(timeout=30)
                assert m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
                assert ws.close_code == code, (bad[:40], ws.close_code)
                await ws.close()
            # the good socket still works
            await good.send_str(json.dumps({"t": "size", "views": {"axial": [64, 48]}}))
            (h, data), = await _frames(good, 1)
            assert (h["view"], h["w"], h["h"]) == ("axial", 64, 48)
            await good.close()

    asyncio.run(main())


def test_tabs_have_their_own_views_and_latest_wins(server, oracle):
    vol = oracle[0]

    async def main():
        async with aiohttp.ClientSession() as s:
            before = set(server.sessions)      # a browser tab of the tests above may still be open (or closing)

            def mine():
                return [x for x in server.live_sessions() if x not in before]
            a = await s.ws_connect(_ws_url(server))
            b = await s.ws_connect(_ws_url(server))
            for ws in (a, b):
                await ws.receive(timeout=30)
                await ws.send_str(json.dumps({"t": "size", "views": {"axial": [96, 80], "coronal": [96, 80]}}))
            ha, _, _ = await _until_png(a, "axial", 0)
            hb, _, _ = await _until_png(b, "axial", 0)
            # a fast burst of 150 scrolls on tab a: frames are coalesced, the last one is the final pose
            n = 150
            for i in range(1, n + 1):
                await a.send_str(json.dumps({"t": "scroll", "view": "axial", "steps": -1, "id": i}))
            h, data, count = await _until_png(a, "axial", n)
            assert count < n / 2, f"{count} axial frames for {n} scrolls: not coalesced"
            z = max(vol.center[2] - n * spacing_along(vol, Z), corners(vol)[:, 2].min())
            plane = api_plane(vol, "axial", 80, 96, [0, 0, z])
            assert_same_plane(h, plane)
            assert np.array_equal(decode(data), api_image(oracle, plane, server.window))
            # tab b did not move
            await b.send_str(json.dumps({"t": "size", "views": {"sagittal": [32, 32]}, "id": 1}))
            hs, _, _ = await _until_png(b, "sagittal", 1)
            assert hs["cross"] == pytest.approx(list(vol.center))
            # a tab closed while its frames are being made (rotating MIP: one frame after another) frees its state
            await b.send_str(json.dumps({"t": "size", "views": {"oblique": [64, 64]}}))
            await b.send_str(json.dumps({"t": "spin", "on": True}))
            await _frames(b, 3)
            sess = mine()
            assert len(sess) == 2
            refs = [weakref.ref(x.scene) for x in sess]
            del sess
            await b.close()
            for _ in range(200):
                if len(mine()) == 1:
                    break
                await asyncio.sleep(0.05)
            assert len(mine()) == 1
            await a.close()
            for _ in range(200):
                gc.collect()
                if not mine() and all(r() is None for r in refs):
                    break
                await asyncio.sleep(0.05)
            assert mine() == [] and [r() for r in refs] == [None, None]

    asyncio.run(main())


def test_resident_volume_on_the_device_stand_in():
    """The GPU path (volume resident on the device, frames windowed there, only the uint8 image copied back) on
    the ``cuda-host`` stand-in: the real CUDA sources on pretend-device arrays, compared with numpy."""
    from gpukit.backends import lookup

    if not lookup("cuda-host").is_available():
        pytest.skip("the cuda-host stand-in is not available here: " + "; ".join(lookup("cuda-host").missing_dependencies()))
    rng = np.random.default_rng(0)
    vol = gpukit.Volume(rng.integers(0, 2000, (12, 20, 24)).astype(np.int16), np.diag([0.8, 0.8, 2.0, 1.0]),
                        {"rescale_intercept": -1024.0, "rescale_slope": 1.0})
    srv = gpukit.view(vol, backend="cuda-host", window=(0, 800))
    try:
        assert srv.renderer.volume.device != "host"

        async def main():
            async with aiohttp.ClientSession() as s:
                ws = await s.ws_connect(_ws_url(srv))
                await ws.receive(timeout=30)
                await ws.send_str(json.dumps({"t": "size", "views": {"oblique": [40, 30], "axial": [24, 20]}}))
                await ws.send_str(json.dumps({"t": "slab", "view": "oblique", "mm": 4, "mode": "max", "id": 1}))
                got = {}
                while len(got) < 2:
                    (h, data), = await _frames(ws, 1)
                    # the oblique view's settled frame after the slab message; the axial view's settled frame
                    # (the slab message does not touch it: it may have settled before that message was read)
                    if h["fmt"] == "png" and (h["input_id"] >= 1 or h["view"] == "axial"):
                        got[h["view"]] = (h, data)
                await ws.close()
                return got["oblique"], got["axial"]

        # a frame that never comes fails the test after 120 s instead of hanging the run (once seen under xdist)
        (ho, do), (ha, da) = asyncio.run(asyncio.wait_for(main(), 120))
        want = display(gpukit.project(vol, header_plane(ho), mode="max", thickness_mm=4, step_mm=0.8, backend="numpy"),
                       (0, 800), vol, backend="numpy")
        assert np.array_equal(decode(do), want)
        want = display(gpukit.reslice(vol, header_plane(ha), backend="numpy"), (0, 800), vol, backend="numpy")
        assert np.array_equal(decode(da), want)
    finally:
        srv.stop()


def _snap(plane, slab_mm, spin=False):
    return {"view": "oblique", "plane": plane, "version": 1, "window": (0.0, 900.0), "slab_mm": slab_mm,
            "mode": "max", "spin": spin, "cross_px": None, "cross": np.zeros(3), "input_id": 0}


@pytest.mark.parametrize("backend", ["numpy", "numba", "cuda-host"])
def test_moving_slab_and_spin_frames_in_slice_order_settled_ones_in_ray_order(backend, monkeypatch):
    """Lossy frames (a view moving, the spinning MIP) are projected in slice order where the backend has it; the
    settled PNG is the ray-order reference. Images compared before encoding (``encode`` returns the pixels)."""
    from gpukit.backends import lookup
    from gpukit.view import render as vr

    if not lookup(backend).is_available():
        pytest.skip(f"the {backend} backend is not available here: " + "; ".join(lookup(backend).missing_dependencies()))
    monkeypatch.setattr(vr, "encode", lambda u8, fmt: np.asarray(u8))
    rng = np.random.default_rng(4)
    z, y, x = np.mgrid[0:18, 0:26, 0:30]
    data = (900 + 600 * np.sin(x / 3.0) * np.cos(y / 4.0) + 300 * (z % 5) + rng.normal(0, 20, x.shape))
    vol = gpukit.Volume(data.astype(np.int16), np.diag([0.8, 0.8, 1.5, 1.0]), {"rescale_intercept": -1024.0})
    r = vr.FrameRenderer(vol, backend=backend)
    preview = "ray" if backend == "cuda-host" else "slice"
    assert r.preview_order == preview
    plane = Plane.rotated(vol, (25.0, 35.0, 10.0), shape=(34, 38), spacing=0.7)
    fine = float(min(vol.spacing))
    win = (0.0, 900.0)

    def want(order, slab, step):
        hu = gpukit.project(vol, plane, mode="max", thickness_mm=slab, step_mm=step, backend="numpy", order=order,
                            precision="exact")
        return display(hu, win, vol, backend="numpy").astype(int)

    h, got = r.render(_snap(plane, 6.0), "png")
    assert (h["order"], h["step_mm"]) == ("ray", fine)
    assert np.abs(got.astype(int) - want("ray", 6.0, fine)).max() <= 1
    for spin, slab in ((False, 6.0), (True, None)):
        h, got = r.render(_snap(plane, slab, spin), "jpeg")
        step = max(fine, 1.0) if spin else vr.slab_step(vol, 6.0, True)
        assert h["order"] == preview and h["step_mm"] == (step if preview == "ray" else None)
        ray, sl = want("ray", slab, step), want("slice", slab, step)
        assert np.abs(ray - sl).max() >= 5        # the two orders differ here: the frame shows which one it is
        assert np.abs(got.astype(int) - (sl if preview == "slice" else ray)).max() <= 1, spin
    h, got = r.render(_snap(plane, 0.0), "jpeg")                # a thin view: a reslice, no projection order
    assert h["order"] is None and h["step_mm"] is None


def test_scene_labels_and_named_planes():
    from gpukit.view.scene import direction_label, edge_labels

    vol = gpukit.Volume(np.zeros((4, 5, 6), np.int16), np.diag([0.5, 0.5, 2.0, 1.0]))
    assert edge_labels(Plane.axial(vol)) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert edge_labels(Plane.coronal(vol)) == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert edge_labels(Plane.sagittal(vol)) == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert direction_label((0, -0.8, 0.6)) == "AS" and direction_label((0.1, 0, -1)) == "I"

def _sigint_default():
    """In the child: SIGINT back to its default, so Python installs its Ctrl-C handler even when this test
    runs in a background job (which starts with SIGINT ignored, and the child would inherit that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)



def test_cli_view_prints_the_url_and_serves_until_interrupted(tmp_path):
    path = data_path(CT)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "gpukit.cli", "view", str(path), "--backend", _backend()],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=_sigint_default)
    try:
        url = p.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "?token=" in url, (url, p.stderr.read() if p.poll() else "")

        async def main():
            async with aiohttp.ClientSession() as s:
                async with s.get(url) as r:
                    assert r.status == 200
                async with s.get(url.split("?")[0]) as r:
                    assert r.status == 403

        asyncio.run(main())
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=120) == 0     # (a loaded CI machine was once over 30 s)
        err = p.stderr.read()
        assert "[1/3]" in err and "[3/3]" in err and "140 slices" in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
