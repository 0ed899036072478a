"use strict";
// Shared helpers: emotion colours, probability bars, JSON fetch with clear errors.
const EMOTIONS = document.body.dataset.emotions.split(",");
const COLORS = { angry: "#dc2828", disgust: "#288c28", fear: "#a03ca0", happy: "#f5c400", sad: "#2878c8",
                 surprise: "#ff8c00", neutral: "#8c8c8c" };

function showMessage(text) {
  const box = document.getElementById("message");
  if (!box) return;
  box.textContent = text || "";
  box.hidden = !text;
}

function faceCard(title, face) {
  const card = document.createElement("div");
  card.className = "face";
  const h = document.createElement("h3");
  // a video track's card gives the share of time (face.verdict), not one frame's confidence
  const verdict = face.verdict || `${face.emotion} ${(100 * face.confidence).toFixed(0)}%`;
  // Under one half the label is more likely wrong than right: say so rather than assert it.
  h.textContent = face.uncertain ? `${title}: uncertain (maybe ${verdict})` : `${title}: ${verdict}`;
  if (face.uncertain) card.classList.add("uncertain");
  card.appendChild(h);
  for (const name of EMOTIONS) {
    const p = face.scores[name];
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    row.children[0].textContent = name;
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".fill").style.background = COLORS[name];
    row.children[2].textContent = `${(100 * p).toFixed(0)}%`;
    card.appendChild(row);
  }
  return card;
}

// Boxes and labels in the canvas's own pixels (the frame's): `lineScale` only thickens lines and
// text for big frames, and so does a canvas shown smaller than it is (a photo on a phone), so that
// text stays at least 11 CSS pixels high on screen. Labels carry the track id (live) or, with
// `numbered`, the face's number on its card; placeLabels keeps them inside the canvas and off
// the other faces. Draw while the canvas is shown: a hidden one has no size on screen.
function drawFaces(ctx, faces, lineScale, numbered) {
  const shown = ctx.canvas.clientWidth, perCssPixel = shown ? ctx.canvas.width / shown : 1;
  ctx.lineWidth = Math.max(2, 3 * lineScale, 2 * perCssPixel);
  ctx.font = `${Math.max(14, Math.round(18 * lineScale), Math.round(11 * perCssPixel))}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  const labels = faces.map((f, i) => {
    const name = f.track_id ? `#${f.track_id} ` : numbered ? `${i + 1} ` : "";
    return `${name}${f.emotion}${f.uncertain ? "?" : ""} ${(100 * f.confidence).toFixed(0)}%`;  // as face_label
  });
  const h = parseInt(ctx.font, 10) + 6;
  const sizes = labels.map(label => [Math.ceil(ctx.measureText(label).width) + 8, h]);
  faces.forEach(f => {
    const [x1, y1, x2, y2] = f.box;
    ctx.strokeStyle = COLORS[f.emotion] || "#fff";
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  });
  placeLabels(faces.map(f => f.box), sizes, ctx.canvas.width, ctx.canvas.height).forEach(([x1, y1, x2, y2], i) => {
    ctx.fillStyle = COLORS[faces[i].emotion] || "#fff";
    ctx.fillRect(x1, y1, x2 - x1, y2 - y1);
    ctx.fillStyle = "#000";
    ctx.fillText(labels[i], x1 + 4, y1 + 3);
  });
}

// The rule of emolens.inference.annotate.place_labels, for the same boxes the same places: each
// label tries above its box (left-, then right-aligned), below it, inside its top, and takes the
// first place that covers no other face and no earlier label, else the one covering the least
// face, then label; shifted sideways to stay inside the canvas. Boxes [x1, y1, x2, y2], sizes [w, h].
function placeLabels(boxes, sizes, width, height) {
  const overlap = (a, b) =>
    Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const placed = [];
  boxes.forEach(([x1, y1, x2, y2], i) => {
    const [lw, lh] = sizes[i];
    const faces = boxes.filter((_, j) => j !== i);
    const spots = [[x1, y1 - lh], [x2 - lw, y1 - lh], [x1, y2], [x2 - lw, y2], [x1, Math.min(y1, height - lh)]];
    let best = null;
    for (const [sx, y] of spots) {
      if (y < 0 || y + lh > height) continue;
      const x = Math.max(0, Math.min(sx, width - lw));
      const rect = [x, y, x + lw, y + lh];
      const cost = [faces, placed].map(list => list.reduce((sum, b) => sum + overlap(rect, b), 0));
      if (!best || cost[0] < best.cost[0] || (cost[0] === best.cost[0] && cost[1] < best.cost[1])) best = { cost, rect };
      if (cost[0] === 0 && cost[1] === 0) break;
    }
    if (!best) {  // a label taller than the canvas: at its top
      const x = Math.max(0, Math.min(x1, width - lw));
      best = { rect: [x, 0, x + lw, lh] };
    }
    placed.push(best.rect);
  });
  return placed;
}

function drawLegend(el) {
  el.innerHTML = "";
  for (const name of EMOTIONS) {
    const s = document.createElement("span");
    s.style.setProperty("--c", COLORS[name]);
    s.textContent = name;
    el.appendChild(s);
  }
}

// Stacked area chart of probabilities over time: points = [{t, scores}], x from t0 to t1.
// `label(t)` writes the two axis ends (a video's "0.0 s ... 12.5 s"; the live window's "-30 s ... now").
function drawTimeline(canvas, points, t0, t1, cursor, label = t => `${t.toFixed(1)} s`) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight || 160;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  const pad = 24, span = Math.max(1e-6, t1 - t0);
  const x = t => pad + (w - 2 * pad) * (t - t0) / span;
  const y = v => h - pad - (h - 2 * pad) * v;
  if (points.length > 1) {
    let base = points.map(() => 0);
    for (const name of EMOTIONS) {
      const top = points.map((p, i) => base[i] + p.scores[name]);
      ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(top[i])) : ctx.moveTo(x(p.t), y(top[i]))));
      for (let i = points.length - 1; i >= 0; i--) ctx.lineTo(x(points[i].t), y(base[i]));
      ctx.closePath();
      ctx.fillStyle = COLORS[name];
      ctx.fill();
      base = top;
    }
  }
  ctx.fillStyle = "#5b6475";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(label(t0), pad, h - 8);
  ctx.textAlign = "right";
  ctx.fillText(label(t1), w - pad, h - 8);
  ctx.textAlign = "left";
  if (cursor !== undefined) {
    ctx.strokeStyle = "#141a29"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x(cursor), pad); ctx.lineTo(x(cursor), h - pad); ctx.stroke();
  }
  return { x, pad, w, span, t0 };
}

// Live views (the browser's camera, the server's cameras) follow one face on their timeline.
// The face the timeline follows. In a crowd "the largest face" changes hands every few frames,
// so the choice sticks to its track while that track is in view, and for `holdMs` after it was
// last seen (a blink of the detector); only then does the largest face in view take over.
// `followed` is {id, seen} or null; returns {face (null while holding), followed}.
function followFace(faces, followed, now, holdMs) {
  const same = followed && faces.find(f => f.track_id === followed.id);
  if (same) return { face: same, followed: { id: same.track_id, seen: now } };
  if (followed && now - followed.seen < holdMs) return { face: null, followed };
  const area = f => (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]);
  const largest = faces.reduce((best, f) => (!best || area(f) > area(best) ? f : best), null);
  return { face: largest, followed: largest ? { id: largest.track_id, seen: now } : null };
}

// Cards in track order, so that a card stays where it is while its face is in view.
function byTrack(faces) {
  return faces.slice().sort((a, b) => a.track_id - b.track_id);
}

// Axis labels of a window that ends now: "-30 s" on the left, "now" on the right.
function secondsAgo(t) {
  return Math.abs(t) < 0.05 ? "now" : `${t.toFixed(0)} s`;
}

// Save a Blob made in the page as a file called `name`.
function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);  // after the browser has read it
}

async function fetchJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { /* empty or not JSON */ }
  if (!response.ok) {
    const msg = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(msg);
  }
  return body;
}

// A drop zone that also opens its file input on click, Enter or Space; calls onFile(file).
function bindFilePicker(drop, input, onFile) {
  input.addEventListener("change", () => {
    const file = input.files[0];
    input.value = "";  // so that choosing the same file again analyses it again
    if (file) onFile(file);
  });
  drop.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
  });
}

// Ends a WebSocket to the server and drops its handlers. The server closes it when asked to
// stop: closed from the page, a message already on its way could follow the server's close
// frame, which the browser reports as an error. The page closes it only if the server has not
// within 2 s.
function closeSocket(socket) {
  socket.onclose = socket.onmessage = socket.onerror = null;
  if (socket.readyState !== WebSocket.OPEN) { socket.close(); return; }
  socket.send(JSON.stringify({ type: "stop" }));
  setTimeout(() => { if (socket.readyState !== WebSocket.CLOSED) socket.close(); }, 2000);
}
