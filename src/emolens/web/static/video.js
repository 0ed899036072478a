"use strict";
// Video page: upload with progress -> job -> poll progress -> play result, timeline synced, jobs list.
(() => {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  const uploadBar = document.getElementById("upload-progress");
  const jobBar = document.getElementById("job-progress");
  const jobStatus = document.getElementById("job-status");
  const player = document.getElementById("result-video");
  const timeline = document.getElementById("video-timeline");
  const q = location.search;
  let points = [], duration = 0, geometry = null, shownId = null;
  drawLegend(document.getElementById("legend"));

  function upload(file) {
    showMessage("");
    document.getElementById("upload-box").hidden = false;
    document.getElementById("result").hidden = true;
    uploadBar.value = 0; jobBar.value = 0; jobStatus.textContent = "";
    const form = new FormData();
    form.append("video", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/videos${q}`);
    xhr.upload.onprogress = e => { if (e.lengthComputable) uploadBar.value = e.loaded / e.total; };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status !== 202) { showMessage(`Upload refused: ${body && body.error ? body.error.message : xhr.status}`); return; }
      uploadBar.value = 1;
      poll(body.job_id);
      refreshJobs();
    };
    xhr.onerror = () => showMessage("The upload failed: the server could not be reached.");
    xhr.send(form);
  }

  async function poll(jobId) {
    let job;
    try { job = await fetchJSON(`/api/v1/jobs/${jobId}${q}`); } catch (err) { showMessage(err.message); return; }
    jobBar.value = job.progress;
    jobStatus.textContent = `${job.status} ${(100 * job.progress).toFixed(0)}%`;
    if (job.status === "done") { show(jobId); refreshJobs(); return; }
    if (job.status === "failed" || job.status === "cancelled") { showMessage(`Job ${job.status}: ${job.error || ""}`); refreshJobs(); return; }
    setTimeout(() => poll(jobId), 500);
  }

  // The whole video at a glance: each emotion's share of all the face-frames of the faces that
  // count (short tracks left out), so a face seen twice as long weighs twice as much.
  function wholeVideo(counted) {
    const total = counted.reduce((n, [, tr]) => n + tr.frames, 0);
    const share = Object.fromEntries(EMOTIONS.map(e => [e, counted.reduce((s, [, tr]) => s + tr.share[e] * tr.frames, 0) / total]));
    const top = EMOTIONS.reduce((a, b) => (share[b] > share[a] ? b : a));
    return { emotion: top, confidence: share[top], scores: share, verdict: `${top} ${(100 * share[top]).toFixed(0)}% of the face time` };
  }

  // The chart's points: the job's bounded series (at most 2,000 a face, so a long video's page
  // loads no per-frame records); jobs from before it existed fall back to the per-frame JSON.
  async function mainTrackPoints(result, main) {
    if (main === null) return [];
    try {
      const series = (await fetchJSON(result.files.series + q)).tracks[String(main)];
      return series.time.map((t, i) => ({ t, scores: Object.fromEntries(EMOTIONS.map(e => [e, series.scores[e][i]])) }));
    } catch (err) {
      const frames = await fetchJSON(result.files.json + q);
      return frames.frames.filter(r => r.track_id === main).map(r => ({ t: r.time, scores: r.scores }));
    }
  }

  async function show(jobId) {
    const result = await fetchJSON(`/api/v1/jobs/${jobId}/result${q}`);
    shownId = jobId;
    document.getElementById("result-h").textContent = `Result: ${result.filename}`;
    const took = result.processing_s === null ? "" : `processed in ${spoken(result.processing_s)}, `;
    document.getElementById("result-meta").textContent = `${took}uploaded ${when(result.created)}`;
    const tracks = Object.entries(result.summary.tracks).sort((a, b) => b[1].frames - a[1].frames);
    const main = tracks.length ? Number(tracks[0][0]) : null;
    points = await mainTrackPoints(result, main);
    duration = result.summary.video.duration || (points.length ? points[points.length - 1].t : 1);
    player.src = result.files.video + q;
    document.getElementById("result").hidden = false;
    const summary = document.getElementById("summary");
    summary.innerHTML = tracks.length ? "" : '<p class="muted">No face was found in this video.</p>';
    const cuts = (result.summary.video.cuts || []).length;
    if (cuts) summary.insertAdjacentHTML("beforeend", `<p class="muted">${cuts + 1} shots: a face gets a new number after each cut.</p>`);
    const counted = tracks.filter(([, tr]) => !tr.short);
    if (counted.length > 1) summary.appendChild(faceCard(`All ${counted.length} faces`, wholeVideo(counted)));
    for (const [tid, tr] of counted) {
      summary.appendChild(faceCard(`Face #${tid} (${tr.frames} frames, ${tr.start.toFixed(1)}–${tr.end.toFixed(1)} s)`,
        { emotion: tr.dominant_emotion, confidence: tr.share[tr.dominant_emotion], scores: tr.share,
          verdict: `${tr.dominant_emotion} ${(100 * tr.share[tr.dominant_emotion]).toFixed(0)}% of the time` }));
    }
    // Faces seen for a moment (a passer-by, a shot's last frames) are listed, not summarised.
    const brief = tracks.filter(([, tr]) => tr.short);
    if (brief.length) {
      const fold = document.createElement("details");
      fold.className = "short-tracks";
      fold.innerHTML = `<summary>${brief.length} face${brief.length > 1 ? "s" : ""} seen too briefly to summarise</summary><ul></ul>`;
      for (const [tid, tr] of brief) {
        const li = document.createElement("li");
        li.textContent = `#${tid}: ${tr.frames} frame${tr.frames > 1 ? "s" : ""} at ${tr.start.toFixed(1)} s, ${tr.dominant_emotion}`;
        fold.querySelector("ul").appendChild(li);
      }
      summary.appendChild(fold);
    }
    const links = document.getElementById("downloads");
    links.innerHTML = "";
    for (const [kind, label] of [["video", "Annotated MP4"], ["csv", "CSV"], ["json", "JSON"], ["plot", "Timeline PNG"]]) {
      const a = document.createElement("a");
      a.href = `${result.files[kind]}?download=1${q ? "&" + q.slice(1) : ""}`;
      a.textContent = label;
      links.appendChild(a);
    }
    render();
  }

  function render() { geometry = drawTimeline(timeline, points, 0, duration, player.currentTime); }
  player.addEventListener("timeupdate", render);
  window.addEventListener("resize", render);
  timeline.addEventListener("click", e => {
    if (!geometry) return;
    const rect = timeline.getBoundingClientRect();
    const t = (e.clientX - rect.left - geometry.pad) / (geometry.w - 2 * geometry.pad) * geometry.span;
    player.currentTime = Math.max(0, Math.min(duration, t));
  });

  async function refreshJobs() {
    let data;
    try { data = await fetchJSON(`/api/v1/jobs${q}`); } catch (err) { return; }
    const body = document.querySelector("#jobs tbody");
    body.innerHTML = "";
    for (const job of data.jobs) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td><span></span><small class="muted"></small></td><td></td><td></td><td></td>';
      tr.children[0].children[0].textContent = job.filename;
      tr.children[0].children[1].textContent = when(job.created);
      const running = job.status === "queued" || job.status === "running";
      tr.children[1].textContent = running ? `${job.status} ${(100 * job.progress).toFixed(0)}%` : job.status;
      tr.children[2].textContent = job.processing_s === null ? "" : spoken(job.processing_s);
      if (job.status === "done") {
        const view = document.createElement("button");
        view.className = "secondary"; view.textContent = "Show";
        view.addEventListener("click", () => show(job.job_id));
        tr.children[3].appendChild(view);
      }
      const del = document.createElement("button");
      del.className = "secondary"; del.textContent = "Delete";
      del.setAttribute("aria-label", `Delete job ${job.filename}`);
      del.addEventListener("click", async () => {
        // Deleting cannot be undone (the results go with it), and the button sits beside "Show".
        const what = running ? "Cancel and delete" : "Delete";
        if (!confirm(`${what} the job for “${job.filename}” and its results?`)) return;
        await fetch(`/api/v1/jobs/${job.job_id}${q}`, { method: "DELETE" });
        if (job.job_id === shownId) {  // its result is gone with it: stop showing it
          shownId = null;
          player.removeAttribute("src"); player.load();
          document.getElementById("result").hidden = true;
        }
        refreshJobs();
      });
      tr.children[3].appendChild(del);
      body.appendChild(tr);
    }
    if (data.jobs.some(j => j.status === "queued" || j.status === "running")) setTimeout(refreshJobs, 2000);
  }

  // "12/2/2026, 5:01 AM" in the reader's own locale and time zone.
  function when(unixSeconds) {
    return new Date(unixSeconds * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  // "4.2 s", "3 min 05 s", "1 h 02 min": precise for short jobs, readable for long ones.
  function spoken(seconds) {
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const s = Math.round(seconds), m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  bindFilePicker(drop, input, upload);
  refreshJobs();
})();
