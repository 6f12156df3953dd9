// gpukit view: the page. Plain JS, no build step, nothing fetched from anywhere but this server.
// The server holds the state and renders every view; this page sends pointer input and paints frames.
"use strict";
(function () {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const token = boot.token;
  const VIEWS = ["axial", "coronal", "sagittal", "oblique"];
  const SLABS = [0, 2, 5, 10, 20, 50];
  const MODE_NAMES = { max: "MIP", min: "MinIP", mean: "AvgIP" };

  // what tests and the benchmark read (window.gpukitViewer)
  const api = {
    hello: null, frames: {}, settled: {}, lossy: {}, counts: {}, latencies: [], probe: null, closed: null,
    connected: false, received: 0, sent: [],
  };
  window.gpukitViewer = api;

  let ws = null;
  let nextId = 1;
  const pending = new Map();   // input id -> {t: event time, view}
  const views = {};

  function send(msg, ev, target) {
    if (!ws || ws.readyState !== 1) return;
    if (ev) {
      msg.id = nextId++;
      pending.set(msg.id, { t: ev.timeStamp || performance.now(), view: target });
      if (pending.size > 2000) pending.delete(pending.keys().next().value);
    }
    ws.send(JSON.stringify(msg));
    if (msg.t !== "hover") { api.sent.push(msg); if (api.sent.length > 500) api.sent.splice(0, 100); }
  }

  function el(tag, cls, parent) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }

  function b64(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }
  // test helpers: the bytes of the last settled (PNG) frame of a view, and the canvas's pixels (R of RGBA)
  api.settledB64 = (name) => (api.settled[name] ? b64(api.settled[name].bytes) : null);
  api.lossyB64 = (name) => (api.lossy[name] ? b64(api.lossy[name].bytes) : null);
  api.canvasB64 = (name) => {
    const c = views[name].canvas;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const r = new Uint8Array(c.width * c.height);
    for (let i = 0; i < r.length; i++) r[i] = d[4 * i];
    return b64(r);
  };
  api.canvasRect = (name) => {
    const r = views[name].canvas.getBoundingClientRect();
    return { x: r.left, y: r.top, w: r.width, h: r.height, cw: views[name].canvas.width, ch: views[name].canvas.height };
  };

  // -- views ---------------------------------------------------------------------------------------------------
  function buildView(sec) {
    const name = sec.dataset.view;
    const tools = el("div", "tools", sec);
    el("span", "name", tools).textContent = name;
    const slab = el("select", "slab", tools);
    for (const mm of SLABS) {
      const o = el("option", null, slab);
      o.value = mm; o.textContent = mm ? `slab ${mm} mm` : "thin";
    }
    const mode = el("select", "mode", tools);
    for (const m of ["max", "min", "mean"]) {
      const o = el("option", null, mode);
      o.value = m; o.textContent = MODE_NAMES[m];
    }
    const onSlab = () => send({ t: "slab", view: name, mm: Number(slab.value), mode: mode.value });
    slab.addEventListener("change", onSlab);
    mode.addEventListener("change", onSlab);
    let spin = null;
    if (name === "oblique") {
      spin = el("button", "spin", tools);
      spin.type = "button"; spin.textContent = "rotating MIP"; spin.dataset.on = "0";
      spin.addEventListener("click", () => {
        const on = spin.dataset.on !== "1";
        spin.dataset.on = on ? "1" : "0";
        spin.textContent = on ? "stop rotating" : "rotating MIP";
        send({ t: "spin", on });
      });
    }
    const stage = el("div", "stage", sec);
    const canvas = el("canvas", "image", stage);
    const overlay = el("canvas", "overlay", stage);
    const labs = {};
    for (const side of ["left", "right", "top", "bottom"]) labs[side] = el("div", "lab " + side, stage);
    const info = el("div", "info", stage);
    const v = { name, sec, stage, canvas, overlay, labs, info, slab, mode, spin, header: null, drawnSeq: 0, w: 0, h: 0 };
    views[name] = v;
    api.counts[name] = { png: 0, lossy: 0 };
    attachInput(v);
  }

  function measure() {
    const dpr = window.devicePixelRatio || 1;
    const sizes = {};
    for (const name of VIEWS) {
      const v = views[name];
      // the canvas sits on whole device pixels and inside its cell, so a frame is shown 1:1, never resampled
      const r = v.stage.getBoundingClientRect();
      const ox = Math.ceil(r.left * dpr) / dpr - r.left, oy = Math.ceil(r.top * dpr) / dpr - r.top;
      const w = Math.max(8, Math.floor((r.width - ox) * dpr)), h = Math.max(8, Math.floor((r.height - oy) * dpr));
      for (const c of [v.canvas, v.overlay]) { c.style.left = ox + "px"; c.style.top = oy + "px"; }
      if (w !== v.w || h !== v.h) {
        v.w = w; v.h = h;
        for (const c of [v.canvas, v.overlay]) {
          c.width = w; c.height = h;
          c.style.width = (w / dpr) + "px"; c.style.height = (h / dpr) + "px";
        }
        sizes[name] = [w, h];
      }
    }
    if (Object.keys(sizes).length) send({ t: "size", views: sizes });
  }

  function pos(v, e) {   // pointer position in canvas (device) pixels
    const r = v.canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * v.canvas.width / r.width, (e.clientY - r.top) * v.canvas.height / r.height];
  }

  function attachInput(v) {
    const c = v.canvas;
    let drag = null;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.deltaY === 0) return;
      send({ t: "scroll", view: v.name, steps: e.deltaY > 0 ? -1 : 1 }, e, v.name);
    }, { passive: false });
    c.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      c.setPointerCapture(e.pointerId);
      const [x, y] = pos(v, e);
      let kind;
      if (e.button === 2) kind = "window";
      else if (e.button === 0) kind = (v.name === "oblique" && !e.shiftKey) ? "rotate" : "cross";
      else return;
      drag = { kind, x0: e.clientX, y0: e.clientY, id: e.pointerId };
      if (kind === "cross") send({ t: "cross", phase: "start", view: v.name, x, y }, e, v.name);
      else send({ t: kind, phase: "start", dx: 0, dy: 0 }, e, v.name);
    });
    // drags listen to pointerrawupdate where the browser has it: it is not held back to the next animation frame
    // as pointermove is, which takes up to a frame (16 ms) off every drag's latency
    const raw = "onpointerrawupdate" in window;
    c.addEventListener("pointermove", (e) => {
      if (!drag) {
        const [x, y] = pos(v, e);
        send({ t: "hover", view: v.name, x, y });
      } else if (!raw) onDrag(e);
    });
    if (raw) c.addEventListener("pointerrawupdate", (e) => { if (drag) onDrag(e); });
    const onDrag = (e) => {
      const [x, y] = pos(v, e);
      const dpr = window.devicePixelRatio || 1;
      if (drag.kind === "cross") send({ t: "cross", phase: "move", view: v.name, x, y }, e, v.name);
      else send({ t: drag.kind, phase: "move", dx: (e.clientX - drag.x0) * dpr, dy: (e.clientY - drag.y0) * dpr }, e, v.name);
    };
    const end = (e) => {
      if (!drag) return;
      const [x, y] = pos(v, e);
      const dpr = window.devicePixelRatio || 1;
      if (drag.kind === "cross") send({ t: "cross", phase: "end", view: v.name, x, y }, e, v.name);
      else send({ t: drag.kind, phase: "end", dx: (e.clientX - drag.x0) * dpr, dy: (e.clientY - drag.y0) * dpr }, e, v.name);
      drag = null;
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  }

  // -- frames ----------------------------------------------------------------------------------------------------
  let seq = 0;
  function onFrame(buf) {
    const dv = new DataView(buf);
    const n = dv.getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    const bytes = new Uint8Array(buf, 4 + n);
    const v = views[header.view];
    if (!v) return;
    const mySeq = ++seq;
    v.lastSeq = mySeq;
    api.received++;
    const type = header.fmt === "png" ? "image/png" : "image/" + header.fmt;
    createImageBitmap(new Blob([bytes], { type })).then((bmp) => {
      if (v.lastSeq !== mySeq) { bmp.close(); return; }      // a newer frame of this view is on its way: drop this one
      const ctx = v.canvas.getContext("2d");
      if (v.canvas.width !== header.w || v.canvas.height !== header.h) { bmp.close(); return; }   // stale size
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(bmp, 0, 0);
      bmp.close();
      v.header = header;
      drawOverlay(v);
      api.frames[v.name] = header;
      if (header.fmt === "png") { api.settled[v.name] = { header, bytes: bytes.slice() }; api.counts[v.name].png++; }
      else { api.lossy[v.name] = { header, bytes: bytes.slice() }; api.counts[v.name].lossy++; }
      requestAnimationFrame(() => {
        const now = performance.now();
        for (const [id, p] of pending) {
          if (id > header.input_id) break;
          if (p.view === v.name || p.view === undefined) {
            api.latencies.push({ id, view: v.name, ms: now - p.t, server_ms: header.server_ms, render_ms: header.render_ms,
                                 encode_ms: header.encode_ms, fmt: header.fmt });
            pending.delete(id);
          }
        }
        if (api.latencies.length > 5000) api.latencies.splice(0, 1000);
      });
    }).catch(() => {});
  }

  function drawOverlay(v) {
    const h = v.header;
    const ctx = v.overlay.getContext("2d");
    ctx.clearRect(0, 0, v.overlay.width, v.overlay.height);
    if (h.cross_px) {
      const [x, y] = h.cross_px;
      ctx.strokeStyle = "rgba(80, 200, 255, 0.7)";
      ctx.lineWidth = Math.max(1, Math.round(window.devicePixelRatio || 1));
      ctx.setLineDash([6, 6]);
      ctx.beginPath();
      ctx.moveTo(0, y + 0.5); ctx.lineTo(v.overlay.width, y + 0.5);
      ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, v.overlay.height);
      ctx.stroke();
    }
    for (const side of ["left", "right", "top", "bottom"]) v.labs[side].textContent = h.labels[side];
    const slab = h.spin ? "rotating MIP" : (h.slab_mm > 0 ? `${MODE_NAMES[h.mode]} ${h.slab_mm} mm` : "");
    v.info.textContent = `${slab} ${h.plane.spacing[0].toFixed(3)} mm/px ${h.fmt}`;
    if (v.name === VIEWS[0]) document.getElementById("wl").textContent =
      `C ${h.window[0].toFixed(0)} W ${h.window[1].toFixed(0)}`;
  }

  // -- toolbar ---------------------------------------------------------------------------------------------------
  function onHello(h) {
    api.hello = h;
    const sel = document.getElementById("preset");
    sel.textContent = "";
    const add = (label, c, w) => {
      const o = el("option", null, sel);
      o.value = JSON.stringify([c, w]); o.textContent = `${label} (C ${c} W ${w})`;
    };
    el("option", null, sel).textContent = "choose...";
    h.file_windows.forEach((cw, i) => add(`file ${i + 1}`, cw[0], cw[1]));
    for (const [name, cw] of Object.entries(h.presets)) add(name.replace("_", " "), cw[0], cw[1]);
    sel.onchange = () => {
      if (!sel.value || sel.value[0] !== "[") return;
      const [c, w] = JSON.parse(sel.value);
      send({ t: "window", c, w }, { timeStamp: performance.now() }, "axial");
    };
    document.getElementById("status").textContent = `backend ${h.backend}, ${h.shape.join("x")}`;
  }

  function onText(data) {
    const m = JSON.parse(data);
    if (m.t === "hello") onHello(m);
    else if (m.t === "error") {
      api.errors = (api.errors || []).concat([m]);
      document.getElementById("status").textContent = `${m.view}: ${m.message}`;
    }
    else if (m.t === "hover") {
      api.probe = m;
      const p = m.lps.map((x) => x.toFixed(1)).join(", ");
      const hu = m.hu === null || !m.inside ? "outside" : `${m.hu.toFixed(1)} HU`;
      document.getElementById("probe").textContent = `${m.view}: LPS (${p}) mm  ${hu}`;
    }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const path = location.pathname.replace(/[^/]*$/, "");
    ws = new WebSocket(`${proto}//${location.host}${path}ws?token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { api.connected = true; for (const v of VIEWS) { views[v].w = 0; views[v].h = 0; } measure(); };
    ws.onmessage = (e) => (typeof e.data === "string" ? onText(e.data) : onFrame(e.data));
    ws.onclose = (e) => {
      api.connected = false;
      api.closed = { code: e.code, reason: e.reason };
      document.getElementById("status").textContent = `disconnected (${e.code}${e.reason ? ": " + e.reason : ""})`;
    };
  }

  for (const sec of document.querySelectorAll(".view")) buildView(sec);
  document.getElementById("reset").addEventListener("click", () => send({ t: "reset" }));
  let resizeTimer = null;
  new ResizeObserver(() => { clearTimeout(resizeTimer); resizeTimer = setTimeout(measure, 60); }).observe(document.getElementById("grid"));
  connect();
})();
