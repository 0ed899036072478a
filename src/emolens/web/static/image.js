"use strict";
// Image page: upload / drop / paste -> POST /api/v1/images -> annotated canvas, bars, JSON.
(() => {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  const canvas = document.getElementById("annotated");

  const busy = document.getElementById("busy");
  let asked = 0;  // the newest request: an older answer arriving late is dropped

  async function analyse(file) {
    showMessage("");
    const mine = ++asked;
    const name = file.name || "pasted.png";
    const form = new FormData();
    form.append("image", file, name);
    const model = document.getElementById("model").value;
    if (model) form.append("model", model);
    setBusy(`Analysing ${name}…`);
    let result;
    try {
      result = await fetchJSON(`/api/v1/images${location.search}`, { method: "POST", body: form });
    } catch (err) {
      if (mine === asked) { setBusy(""); showMessage(`Could not analyse this image: ${err.message}`); }
      return;
    }
    if (mine !== asked) return;
    const bitmap = await createImageBitmap(file).catch(() => null);
    setBusy("");
    document.getElementById("result").hidden = false;  // shown first: drawFaces sizes text for the screen
    canvas.width = result.width; canvas.height = result.height;
    const ctx = canvas.getContext("2d");
    if (bitmap) ctx.drawImage(bitmap, 0, 0, result.width, result.height);
    drawFaces(ctx, result.faces, Math.max(1, result.width / 800), true);
    const faces = document.getElementById("faces");
    faces.innerHTML = result.faces.length ? "" : '<p class="muted">No face found in this image.</p>';
    result.faces.forEach((f, i) => faces.appendChild(faceCard(`Face ${i + 1}`, f)));
    const json = JSON.stringify(result, null, 2);
    document.getElementById("json").textContent = json;
    offerDownloads(name.replace(/\.[^.]*$/, "") || "image", json);
  }

  // While the server works the page says so, and the drop zone shows it is taken.
  function setBusy(text) {
    busy.textContent = text;
    busy.hidden = !text;
    drop.setAttribute("aria-busy", text ? "true" : "false");
  }

  // The downloads are made here, from what the page shows: the annotated canvas as a PNG and
  // the answer as JSON. The server keeps no image, and drawing it there again would cost a
  // second upload and a second analysis for the same picture.
  function offerDownloads(stem, json) {
    const png = document.getElementById("download-png"), data = document.getElementById("download-json");
    for (const a of [png, data]) {
      if (a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
      a.removeAttribute("href");
    }
    data.href = URL.createObjectURL(new Blob([json], { type: "application/json" }));
    data.download = `${stem}-emolens.json`;
    canvas.toBlob(blob => {
      png.href = URL.createObjectURL(blob);
      png.download = `${stem}-emolens.png`;
    }, "image/png");
  }

  bindFilePicker(drop, input, analyse);
  document.addEventListener("paste", e => {
    const item = [...e.clipboardData.items].find(i => i.type.startsWith("image/"));
    if (item) analyse(item.getAsFile());
  });
})();
