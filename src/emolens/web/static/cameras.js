"use strict";
// Cameras page: add, list, start/stop/delete the server's cameras; watch one over /ws/cameras/<id>.
// The server pushes, per frame, a JSON message (state, faces, fps) and then the annotated JPEG;
// this page only shows them: the recognition has run once on the server for every viewer.

(() => {
  const form = document.getElementById("add-camera");
  const list = document.querySelector("#cameras tbody");
  const viewer = document.getElementById("viewer");
  const picture = document.getElementById("picture"), noPicture = document.getElementById("no-picture");
  const stateLine = document.getElementById("camera-state");
  const facesBox = document.getElementById("faces");
  const timeline = document.getElementById("timeline");
  const WINDOW_S = 60, HOLD_MS = 2000;
  const q = location.search;  // ?token=... when the page was opened with one
  let cameras = [], viewing = null, ws = null, history = [], followed = null, shownUrl = null;

  drawLegend(document.getElementById("legend"));

  form.addEventListener("submit", async e => {
    e.preventDefault();
    const body = {
      name: document.getElementById("camera-name").value,
      source: document.getElementById("camera-source").value,
      model: document.getElementById("camera-model").value || undefined,
    };
    try {
      const camera = await fetchJSON(`/api/v1/cameras${q}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      showMessage("");
      form.reset();
      await refresh();
      view(camera.id);
    } catch (err) {
      showMessage(err.message);
    }
  });

  async function refresh() {
    try { cameras = (await fetchJSON(`/api/v1/cameras${q}`)).cameras; } catch (err) { showMessage(err.message); return; }
    list.innerHTML = "";
    if (!cameras.length) list.innerHTML = '<tr><td colspan="3" class="muted">No camera yet.</td></tr>';
    for (const camera of cameras) list.appendChild(row(camera));
    if (viewing && !cameras.some(c => c.id === viewing)) unview();
    if (!viewing && cameras.length) view(cameras[0].id);
  }

  function row(camera) {
    const tr = document.createElement("tr");
    tr.innerHTML = '<td><span></span><small class="muted"></small></td><td></td><td></td>';
    tr.children[0].children[0].textContent = camera.name;
    tr.children[0].children[1].textContent = camera.source;  // masked by the server
    tr.children[1].textContent = stateText(camera);
    if (camera.id === viewing) tr.classList.add("viewing");
    const act = (label, action) => {
      const b = document.createElement("button");
      b.className = "secondary"; b.type = "button"; b.textContent = label;
      b.setAttribute("aria-label", `${label} camera ${camera.name}`);
      b.addEventListener("click", action);
      tr.children[2].appendChild(b);
    };
    if (camera.id !== viewing) act("View", () => view(camera.id));
    const running = camera.desired === "running" && camera.state !== "failed";
    act(running ? "Stop" : "Start", () => post(camera, running ? "stop" : "start"));
    act("Delete", async () => {
      if (!confirm(`Delete the camera “${camera.name}”? The server stops reading it and forgets it.`)) return;
      await fetch(`/api/v1/cameras/${camera.id}${q}`, { method: "DELETE" });
      refresh();
    });
    return tr;
  }

  async function post(camera, action) {
    try { await fetchJSON(`/api/v1/cameras/${camera.id}/${action}${q}`, { method: "POST" }); }
    catch (err) { showMessage(err.message); }
    refresh();
  }

  // "live · 14.8 fps", "reconnecting: connection refused; retrying in 4 s", "failed: timed out".
  function stateText(c) {
    const base = c.reason ? `${c.state}: ${c.reason}` : c.state;
    return c.state === "live" && c.fps ? `${base} · ${c.fps.toFixed(1)} fps` : base;
  }

  function view(id) {
    unview();
    viewing = id;
    const camera = cameras.find(c => c.id === id);
    document.getElementById("viewer-h").textContent = camera ? camera.name : "Camera";
    viewer.hidden = false;
    drawTimeline(timeline, [], -WINDOW_S, 0, undefined, secondsAgo);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/ws/cameras/${id}${q}`);
    ws.binaryType = "blob";
    ws.onmessage = e => (typeof e.data === "string" ? onState(JSON.parse(e.data)) : onPicture(e.data));
    ws.onclose = () => { stateLine.textContent = "disconnected from the server; reload the page to watch again"; };
    refreshRows();
  }

  function unview() {
    if (ws) closeSocket(ws);
    ws = null;
    viewing = null; history = []; followed = null;
    viewer.hidden = true;
    picture.hidden = true; picture.removeAttribute("src");
    noPicture.hidden = false; noPicture.textContent = "No picture yet.";
  }

  function refreshRows() {
    list.innerHTML = "";
    for (const camera of cameras) list.appendChild(row(camera));
  }

  function onPicture(blob) {
    const url = URL.createObjectURL(blob);
    picture.onload = () => {
      if (shownUrl) URL.revokeObjectURL(shownUrl);
      shownUrl = url;
      picture.hidden = false; noPicture.hidden = true;
    };
    picture.src = url;
  }

  function onState(msg) {
    if (msg.error) { showMessage(msg.error.message); return; }
    if (picture.hidden) noPicture.textContent = `No picture yet: ${stateText(msg)}.`;
    stateLine.textContent = stateText(msg) + (msg.state === "live" ? ` · ${msg.faces.length} face${msg.faces.length === 1 ? "" : "s"}` : "");
    const now = msg.wall_time ? msg.wall_time * 1000 : Date.now();
    const follow = followFace(msg.faces, followed, now, HOLD_MS);
    followed = follow.followed;
    if (follow.face && msg.frame) history.push({ t: now / 1000, scores: follow.face.scores });
    while (history.length && now / 1000 - history[0].t > WINDOW_S) history.shift();
    facesBox.innerHTML = "";
    if (!msg.faces.length) facesBox.innerHTML = '<p class="muted">No face in view.</p>';
    byTrack(msg.faces).forEach(f => {
      const title = follow.face && f.track_id === follow.face.track_id ? `Face #${f.track_id} (timeline)` : `Face #${f.track_id}`;
      facesBox.appendChild(faceCard(title, f));
    });
    const t = now / 1000;
    drawTimeline(timeline, history.map(p => ({ t: p.t - t, scores: p.scores })), -WINDOW_S, 0, undefined, secondsAgo);
  }

  refresh();
  setInterval(refresh, 3000);
})();
