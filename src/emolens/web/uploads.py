"""Checking uploads by their content (never by extension or the client's MIME type)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app
from werkzeug.datastructures import FileStorage

from emolens.errors import ImageDecodeError, ImageTooLargeError, VideoOpenError
from emolens.inference.images import decode_image
from emolens.inference.video import VideoInfo
from emolens.web.errors import ApiError


def file_field(files: Mapping[str, FileStorage], name: str) -> FileStorage:
    upload = files.get(name)
    if upload is None:
        raise ApiError(400, "missing_file", f"send the file as multipart/form-data field '{name}'")
    return upload


def read_image_upload(upload: FileStorage) -> np.ndarray:
    data = upload.read()
    try:
        return decode_image(data, name="upload", max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
    except ImageTooLargeError as exc:
        raise ApiError(413, "image_too_large", str(exc)) from None
    except ImageDecodeError as exc:
        raise ApiError(415, "invalid_image", str(exc)) from None


def video_size_limit(config: Mapping[str, Any]) -> str:
    """The largest video a server takes, as a person reads it: ``3840x2160 (4K)``."""
    pixels = config["MAX_VIDEO_PIXELS"]
    named = {3840 * 2160: "3840x2160 (4K)", 1920 * 1080: "1920x1080 (1080p)", 1280 * 720: "1280x720 (720p)"}
    return named.get(pixels, f"{pixels / 1e6:.1f} megapixels a frame")


def save_video_upload(upload: FileStorage, tmp_dir: Path) -> tuple[Path, VideoInfo]:
    """Store the upload under a server-made name and check it is a video within the limits."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=".video", delete=False)
    path = Path(handle.name)
    try:
        with handle:
            upload.save(handle)
        if path.stat().st_size == 0:
            raise ApiError(400, "empty_file", "the uploaded file is empty")
        try:
            info = VideoInfo.from_path(path)
        except VideoOpenError as exc:
            raise ApiError(415, "invalid_video", str(exc).replace(str(path), "upload")) from None
        cfg = current_app.config
        if info.duration > cfg["MAX_VIDEO_SECONDS"]:
            raise ApiError(
                413, "video_too_long", f"video is {info.duration:.0f} s; the limit is {cfg['MAX_VIDEO_SECONDS']} s"
            )
        if info.width * info.height > cfg["MAX_VIDEO_PIXELS"]:
            raise ApiError(
                413,
                "video_too_large",
                f"video is {info.width}x{info.height}; the limit is {video_size_limit(cfg)}",
            )
        return path, info
    except BaseException:
        path.unlink(missing_ok=True)
        raise
