"use strict";
// The Live page's JPEG encoder, in a worker. On a page's main thread Chromium's canvas.toBlob
// (and convertToBlob) encodes JPEG in idle time only, and waits up to a second for some: a busy
// page then sends one frame a second. In a worker convertToBlob encodes at once.
// In: {id, bitmap (ImageBitmap, transferred), quality}. Out: {id, buffer (transferred)} or {id, error}.
let canvas = null;

self.onmessage = async ({ data }) => {
  const { id, bitmap, quality } = data;
  try {
    if (!canvas) canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality });
    const buffer = await blob.arrayBuffer();
    self.postMessage({ id, buffer }, [buffer]);
  } catch (err) {
    self.postMessage({ id, error: `${err.name}: ${err.message}` });
  }
};
