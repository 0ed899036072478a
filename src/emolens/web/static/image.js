"use strict";
// Image page: upload / drop / paste -> POST /api/v1/images -> annotated canvas, bars, JSON.
(() => {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  const canvas = document.getElementById("annotated");

  async function analyse(file) {
    showMessage("");
    const form = new FormData();
    form.append("image", file, file.name || "pasted.png");
    const model = document.getElementById("model").value;
    if (model) form.append("model", model);
    let result;
    try {
      result = await fetchJSON(`/api/v1/images${location.search}`, { method: "POST", body: form });
    } catch (err) { showMessage(`Could not analyse this image: ${err.message}`); return; }
    const bitmap = await createImageBitmap(file).catch(() => null);
    document.getElementById("result").hidden = false;  // shown first: drawFaces sizes text for the screen
    canvas.width = result.width; canvas.height = result.height;
    const ctx = canvas.getContext("2d");
    if (bitmap) ctx.drawImage(bitmap, 0, 0, result.width, result.height);
    drawFaces(ctx, result.faces, Math.max(1, result.width / 800), true);
    const faces = document.getElementById("faces");
    faces.innerHTML = result.faces.length ? "" : '<p class="muted">No face found in this image.</p>';
    result.faces.forEach((f, i) => faces.appendChild(faceCard(`Face ${i + 1}`, f)));
    document.getElementById("json").textContent = JSON.stringify(result, null, 2);
  }

  bindFilePicker(drop, input, analyse);
  document.addEventListener("paste", e => {
    const item = [...e.clipboardData.items].find(i => i.type.startsWith("image/"));
    if (item) analyse(item.getAsFile());
  });
})();
