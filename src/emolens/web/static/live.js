"use strict";
// Live page: camera -> downscaled JPEG over a WebSocket, one frame in flight; draw the answers.

// The session's records stay in this page, bounded: faces seen in the last `maxAgeS` seconds and
// at most `maxCount` of them; the oldest go first. Returns how many were dropped from the front.
function trimRecords(records, now, maxAgeS, maxCount) {
  let n = Math.max(0, records.length - maxCount);
  while (n < records.length && now - records[n].time > maxAgeS) n++;
  if (n) records.splice(0, n);
  return n;
}

// One CSV row per face per frame, the columns of a video job's frames.csv (less its shot).
function recordsCSV(records) {
  const head = ["time", "frame", "track_id", "x1", "y1", "x2", "y2", "detection_score", "emotion", "confidence", ...EMOTIONS];
  const rows = records.map(r => [r.time.toFixed(3), r.frame, r.track_id, ...r.box, r.detection_score ?? "", r.emotion,
    r.confidence.toFixed(4), ...EMOTIONS.map(e => r.scores[e].toFixed(4))]);
  return [head, ...rows].map(row => row.join(",")).join("\n") + "\n";
}

// Camera frames to JPEG bytes: encode(video, width, height) -> Promise<ArrayBuffer>. In a worker
// (live_encoder.js) where the browser has OffscreenCanvas: on the page's own thread Chromium's
// toBlob waits for idle time, up to a second a frame when the page is busy. Else, or if the
// worker fails to start, with the page's canvas.toBlob.
function frameEncoder(workerUrl, quality) {
  const pending = new Map();
  let worker = null, next = 0, offscreen = null;
  const grab = document.createElement("canvas");
  const onPage = (video, width, height) => {
    grab.width = width; grab.height = height;
    grab.getContext("2d").drawImage(video, 0, 0, width, height);
    return new Promise((resolve, reject) => grab.toBlob(
      blob => (blob ? blob.arrayBuffer().then(resolve, reject) : reject(new Error("the canvas gave no JPEG"))),
      "image/jpeg", quality));
  };
  if (workerUrl && window.Worker && window.OffscreenCanvas) {
    try {
      worker = new Worker(workerUrl);
      worker.onmessage = ({ data }) => {
        const p = pending.get(data.id);
        pending.delete(data.id);
        if (p) (data.error ? p.reject(new Error(data.error)) : p.resolve(data.buffer));
      };
      worker.onerror = () => {  // it did not load: the frames it holds are encoded on the page
        worker = null;
        pending.forEach(p => p.resolve(p.onPage()));
        pending.clear();
      };
    } catch (err) {
      worker = null;
    }
  }
  return {
    encode(video, width, height) {
      if (!worker) return onPage(video, width, height);
      let bitmap;
      try {
        if (!offscreen || offscreen.width !== width || offscreen.height !== height) offscreen = new OffscreenCanvas(width, height);
        offscreen.getContext("2d").drawImage(video, 0, 0, width, height);
        bitmap = offscreen.transferToImageBitmap();
      } catch (err) {  // an OffscreenCanvas without 2d or transfer here: the page encodes
        worker.terminate(); worker = null;
        return onPage(video, width, height);
      }
      const id = ++next;
      for (const old of pending.keys()) if (old < id - 8) pending.delete(old);  // given up long ago
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject, onPage: () => onPage(video, width, height) });
        worker.postMessage({ id, bitmap, quality }, [bitmap]);
      });
    },
  };
}

(() => {
  const video = document.getElementById("camera");
  const overlay = document.getElementById("overlay");
  const startBtn = document.getElementById("start");
  const modelSelect = document.getElementById("model");
  const stopBtn = document.getElementById("stop");
  const stats = document.getElementById("stats");
  const facesBox = document.getElementById("faces");
  const timeline = document.getElementById("timeline");
  const notice = document.getElementById("live-state");
  const WIDTH = 640, WINDOW_S = 30, MAX_FPS = 15, HOLD_MS = 2000, QUALITY = 0.8;
  // A frame with no answer after RESEND_MS (lost, or a server that stalled) is given up for a new
  // one, so that one lost answer cannot stop the page; after SLOW_MS the page says what it waits for.
  const RESEND_MS = 4000, SLOW_MS = 1500;
  const KEEP_S = 30 * 60, KEEP_RECORDS = 100_000;  // said on the page: keep them in step
  const exportCsv = document.getElementById("export-csv"), exportJson = document.getElementById("export-json");
  const exportCount = document.getElementById("export-count");
  let records = [], dropped = 0, frame = 0, startedAt = 0, startedIso = "";
  const encoder = frameEncoder(document.currentScript.dataset.encoder, QUALITY);
  let stream = null, ws = null, running = false, sentAt = 0, lastGrab = 0, timer = 0, ticker = 0;
  // One frame at a time goes through the stages "encoding" -> "waiting" (for its answer) -> "idle".
  // `sent` counts this connection's frames, as the server's answers number them (msg.frame).
  let stage = "idle", stageSince = 0, sent = 0, resent = 0, lastServerMs = null, lastCamera = 0, cameraSession = 0;
  let history = [], rtts = [], encodes = [], sends = [], camera = [], followed = null;
  drawLegend(document.getElementById("legend"));
  drawTimeline(timeline, [], -WINDOW_S, 0, undefined, secondsAgo);

  async function start() {
    showMessage("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showMessage("This browser gives pages no camera here. Browsers allow the camera only on https:// or on localhost.");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (err) {
      const why = err.name === "NotAllowedError" ? "Camera access was denied. Allow it in the browser's site settings and try again."
        : err.name === "NotFoundError" ? "No camera was found. Connect one and try again."
        : `The camera could not be started (${err.name}: ${err.message}).`;
      showMessage(why);
      return;
    }
    video.srcObject = stream;
    await video.play();
    countCameraFrames();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams(location.search);
    if (modelSelect.value) params.set("model", modelSelect.value);
    ws = new WebSocket(`${proto}//${location.host}/ws/live?${params}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      running = true; history = []; followed = null;
      records = []; dropped = 0; frame = 0; startedAt = performance.now(); startedIso = new Date().toISOString();
      stage = "idle"; sent = resent = 0; lastServerMs = null; rtts = []; encodes = []; sends = [];
      lastCamera = performance.now();
      showCount();
      ticker = setInterval(watch, 250);
      send();
    };
    ws.onmessage = onAnswer;
    ws.onerror = () => showMessage("The connection to the server failed.");
    ws.onclose = () => { if (running) { showMessage("The server closed the connection."); stop(); } };
    startBtn.disabled = true; stopBtn.disabled = false; modelSelect.disabled = true;
  }

  function stop() {
    running = false;
    clearTimeout(timer); clearInterval(ticker);
    stage = "idle"; showNotice("");
    if (ws) closeSocket(ws);
    ws = null;
    if (stream) stream.getTracks().forEach(t => t.stop());
    stream = null; video.srcObject = null;
    // Nothing from the camera stays on screen once it is off: no box, no card, no curve.
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
    facesBox.innerHTML = '<p class="muted">Camera stopped.</p>';
    history = []; followed = null;
    drawTimeline(timeline, [], -WINDOW_S, 0, undefined, secondsAgo);
    startBtn.disabled = false; stopBtn.disabled = true; modelSelect.disabled = false;
    stats.textContent = "stopped";
  }

  // The next frame, when the camera, the socket and the MAX_FPS pace allow; never while hidden
  // (the page says so, and sends again when it is shown).
  function send() {
    clearTimeout(timer);
    if (!running || document.hidden || stage !== "idle") return;
    if (!ws || ws.readyState !== WebSocket.OPEN || !video.videoWidth) { timer = setTimeout(send, 50); return; }
    const wait = 1000 / MAX_FPS - (performance.now() - lastGrab);
    if (wait > 0) { timer = setTimeout(send, wait); return; }
    const scale = Math.min(1, WIDTH / video.videoWidth);
    const width = Math.round(video.videoWidth * scale), height = Math.round(video.videoHeight * scale);
    lastGrab = stageSince = performance.now();
    stage = "encoding";
    const grabbedAt = lastGrab;
    new Promise(resolve => resolve(encoder.encode(video, width, height))).then(buffer => {  // a throw rejects
      // Stopped, hidden or given up by the watchdog meanwhile: this frame is stale.
      if (stage !== "encoding" || stageSince !== grabbedAt || !ws || ws.readyState !== WebSocket.OPEN) return;
      const now = performance.now();
      encodes.push(now - grabbedAt); if (encodes.length > 30) encodes.shift();
      ws.send(buffer);
      sent += 1; sends.push(now);
      sentAt = stageSince = now; stage = "waiting";
    }, err => {
      if (stageSince !== grabbedAt) return;
      showMessage(`A camera frame could not be encoded (${err.message}).`);
      stage = "idle"; timer = setTimeout(send, 1000);
    });
  }

  // Every 250 ms: give up a frame that has waited RESEND_MS (for its encoder or its answer) and
  // send a new one; refresh the stats line and the notice.
  function watch() {
    const now = performance.now();
    if (running && !document.hidden && stage !== "idle" && now - stageSince > RESEND_MS) {
      resent += 1;
      stage = "idle";
      send();
    }
    showStats(now);
  }

  document.addEventListener("visibilitychange", () => {
    if (!running) return;
    if (document.hidden) { clearTimeout(timer); stage = "idle"; }
    else { lastCamera = performance.now(); send(); }
    showStats(performance.now());
  });

  // Frames the camera presents, where the browser tells (requestVideoFrameCallback).
  function countCameraFrames() {
    if (!video.requestVideoFrameCallback) return;
    const session = ++cameraSession;  // a Start after a Stop: the old count ends
    camera = [];
    const tick = () => {
      if (session !== cameraSession || !video.srcObject) return;
      const now = performance.now();
      camera.push(now); lastCamera = now;
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  const median = xs => xs.length ? xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null;
  const perSecond = (times, now) => {
    while (times.length && now - times[0] > 2000) times.shift();
    return times.length / 2;
  };

  // The page's own state: what it is waiting for when it is slow, else nothing.
  function state(now) {
    const waited = ((now - stageSince) / 1000).toFixed(0);
    if (document.hidden) return "Paused while this tab is hidden: no frames are sent until it is shown again.";
    if (stage === "waiting" && now - stageSince > SLOW_MS) {
      return `Waiting for the server: no answer for ${waited}\u00a0s (a frame unanswered for ${RESEND_MS / 1000}\u00a0s is resent).`;
    }
    if (stage === "encoding" && now - stageSince > SLOW_MS) return `Encoding a frame has taken ${waited}\u00a0s so far.`;
    if (video.requestVideoFrameCallback && now - lastCamera > 2000) {
      return `The camera has given no new picture for ${((now - lastCamera) / 1000).toFixed(0)}\u00a0s.`;
    }
    const encode = median(encodes);
    if (encode !== null && encode > 250) return `Encoding frames is slow: ${encode.toFixed(0)}\u00a0ms a frame.`;
    return "";
  }

  function showStats(now) {
    if (!running) return;
    const parts = [];
    if (video.requestVideoFrameCallback) parts.push(`camera ${perSecond(camera, now).toFixed(1)} fps`);
    parts.push(`sent ${perSecond(sends, now).toFixed(1)} fps`);
    const rtt = median(rtts), encode = median(encodes);
    if (rtt !== null) parts.push(`round trip ${rtt.toFixed(0)} ms`);
    if (lastServerMs !== null) parts.push(`server ${lastServerMs} ms`);
    if (encode !== null) parts.push(`encode ${encode.toFixed(0)} ms`);
    if (resent) parts.push(`${resent} resent`);
    stats.textContent = parts.map(p => p.replace(/ /g, "\u00a0")).join(" · ");  // lines break between parts
    showNotice(state(now));
  }

  function showNotice(text) {
    if (notice.textContent !== text) notice.textContent = text;
    notice.hidden = !text;
  }

  // For a person or a test to read: the page's counters and what it waits for.
  window.emolensLive = {
    snapshot: () => {
      const now = performance.now();
      return { running, hidden: document.hidden, stage, stage_ms: Math.round(now - stageSince), sent, resent,
               camera_fps: perSecond(camera, now), sent_fps: perSecond(sends, now), round_trip_ms: median(rtts),
               encode_ms: median(encodes), server_ms: lastServerMs, notice: notice.hidden ? "" : notice.textContent };
    },
  };

  function onAnswer(event) {
    if (!running) return;  // an answer that arrives after Stop must not redraw what Stop cleared
    const now = performance.now();
    const msg = JSON.parse(event.data);
    // An answer to a frame the watchdog gave up (msg.frame < sent) is drawn, but the frame in
    // flight is still the newer one: only its answer sends the next (at most one in flight).
    if (stage === "waiting" && (msg.frame === undefined || msg.frame >= sent)) {
      rtts.push(now - sentAt); if (rtts.length > 30) rtts.shift();
      stage = "idle";
      send();
    }
    if (msg.error) { showMessage(msg.error.message); return; }
    lastServerMs = msg.server_ms;
    showStats(now);
    overlay.width = msg.width; overlay.height = msg.height;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    drawFaces(ctx, msg.faces, 1);
    const follow = followFace(msg.faces, followed, now, HOLD_MS);
    followed = follow.followed;
    facesBox.innerHTML = "";
    if (!msg.faces.length) facesBox.innerHTML = '<p class="muted">No face in view.</p>';
    byTrack(msg.faces).forEach(f => {
      const title = f === follow.face ? `Face #${f.track_id} (timeline)` : `Face #${f.track_id}`;
      facesBox.appendChild(faceCard(title, f));
    });
    keep(msg.faces, now);
    const t = now / 1000;
    if (follow.face) history.push({ t, scores: follow.face.scores });
    history = history.filter(p => t - p.t <= WINDOW_S);
    drawTimeline(timeline, history.map(p => ({ t: p.t - t, scores: p.scores })), -WINDOW_S, 0, undefined, secondsAgo);
  }

  // Every face of every answer, kept for the downloads until the next Start.
  function keep(faces, now) {
    const time = (now - startedAt) / 1000;
    frame += 1;
    for (const f of faces) records.push({ time, frame, ...f });
    dropped += trimRecords(records, time, KEEP_S, KEEP_RECORDS);
    showCount();
  }

  function showCount() {
    exportCsv.disabled = exportJson.disabled = !records.length;
    const lost = dropped ? ` (${dropped.toLocaleString("en")} older ones dropped)` : "";
    exportCount.textContent = `${records.length.toLocaleString("en")} face records${lost}`;
  }

  function stem() { return `emolens-live-${startedIso.slice(0, 19).replace(/:/g, "-")}`; }

  exportCsv.addEventListener("click", () => download(`${stem()}.csv`, new Blob([recordsCSV(records)], { type: "text/csv" })));
  exportJson.addEventListener("click", () => {
    const body = { started: startedIso, kept: { seconds: KEEP_S, records: KEEP_RECORDS }, dropped, frames: records };
    download(`${stem()}.json`, new Blob([JSON.stringify(body)], { type: "application/json" }));
  });
  showCount();
  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);
})();
