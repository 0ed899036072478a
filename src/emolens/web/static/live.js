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

(() => {
  const video = document.getElementById("camera");
  const overlay = document.getElementById("overlay");
  const startBtn = document.getElementById("start");
  const modelSelect = document.getElementById("model");
  const stopBtn = document.getElementById("stop");
  const stats = document.getElementById("stats");
  const facesBox = document.getElementById("faces");
  const timeline = document.getElementById("timeline");
  const WIDTH = 640, WINDOW_S = 30, MAX_FPS = 15, HOLD_MS = 2000;
  const KEEP_S = 30 * 60, KEEP_RECORDS = 100_000;  // said on the page: keep them in step
  const exportCsv = document.getElementById("export-csv"), exportJson = document.getElementById("export-json");
  const exportCount = document.getElementById("export-count");
  let records = [], dropped = 0, frame = 0, startedAt = 0, startedIso = "";
  const grab = document.createElement("canvas");
  let stream = null, ws = null, running = false, sentAt = 0, lastSend = 0;
  let history = [], rtts = [], answers = [], followed = null;
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
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams(location.search);
    if (modelSelect.value) params.set("model", modelSelect.value);
    ws = new WebSocket(`${proto}//${location.host}/ws/live?${params}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      running = true; history = []; followed = null;
      records = []; dropped = 0; frame = 0; startedAt = performance.now(); startedIso = new Date().toISOString();
      showCount();
      send();
    };
    ws.onmessage = onAnswer;
    ws.onerror = () => showMessage("The connection to the server failed.");
    ws.onclose = () => { if (running) { showMessage("The server closed the connection."); stop(); } };
    startBtn.disabled = true; stopBtn.disabled = false; modelSelect.disabled = true;
  }

  function stop() {
    running = false;
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
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

  function send() {
    if (!running || !ws || ws.readyState !== WebSocket.OPEN || !video.videoWidth) {
      if (running) setTimeout(send, 50);
      return;
    }
    const wait = 1000 / MAX_FPS - (performance.now() - lastSend);
    if (wait > 0) { setTimeout(send, wait); return; }
    const scale = Math.min(1, WIDTH / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    grab.toBlob(blob => {
      if (!running || !ws || ws.readyState !== WebSocket.OPEN) return;
      sentAt = lastSend = performance.now();
      blob.arrayBuffer().then(buf => ws.send(buf));
    }, "image/jpeg", 0.8);
  }

  function onAnswer(event) {
    if (!running) return;  // an answer that arrives after Stop must not redraw what Stop cleared
    const now = performance.now();
    const msg = JSON.parse(event.data);
    rtts.push(now - sentAt); if (rtts.length > 30) rtts.shift();
    answers.push(now); while (answers.length && now - answers[0] > 2000) answers.shift();
    send();  // next frame only now: at most one in flight
    if (msg.error) { showMessage(msg.error.message); return; }
    const rtt = rtts.slice().sort((a, b) => a - b)[Math.floor(rtts.length / 2)];
    stats.textContent = `${(answers.length / 2).toFixed(1)} fps · round trip ${rtt.toFixed(0)} ms · server ${msg.server_ms} ms`;
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
