"use strict";
// Live page: camera -> downscaled JPEG over a WebSocket, one frame in flight; draw the answers.
(() => {
  const video = document.getElementById("camera");
  const overlay = document.getElementById("overlay");
  const startBtn = document.getElementById("start");
  const modelSelect = document.getElementById("model");
  const stopBtn = document.getElementById("stop");
  const stats = document.getElementById("stats");
  const facesBox = document.getElementById("faces");
  const timeline = document.getElementById("timeline");
  const WIDTH = 640, WINDOW_S = 30, MAX_FPS = 15;
  const grab = document.createElement("canvas");
  let stream = null, ws = null, running = false, sentAt = 0, lastSend = 0;
  let history = [], rtts = [], answers = [];
  drawLegend(document.getElementById("legend"));
  drawTimeline(timeline, [], 0, WINDOW_S);

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
    ws.onopen = () => { running = true; history = []; send(); };
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
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
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
    facesBox.innerHTML = "";
    if (!msg.faces.length) facesBox.innerHTML = '<p class="muted">No face in view.</p>';
    msg.faces.forEach(f => facesBox.appendChild(faceCard(`Face #${f.track_id}`, f)));
    const t = now / 1000;
    if (msg.faces.length) history.push({ t, scores: msg.faces[0].scores });
    history = history.filter(p => t - p.t <= WINDOW_S);
    drawTimeline(timeline, history.map(p => ({ t: p.t - t + WINDOW_S, scores: p.scores })), 0, WINDOW_S);
  }

  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);
})();
