from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolens.inference import annotate
from emolens.inference.annotate import COLORS, draw_results, font_scale, line_width, place_labels
from emolens.labels import EMOTIONS
from emolens.results import FaceBox, FaceResult

FRAME = (720, 1280)  # height, width
LABEL = (150, 24)  # width, height


def overlap(a, b) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def inside(rect, frame=FRAME) -> bool:
    return 0 <= rect[0] and 0 <= rect[1] and rect[2] <= frame[1] and rect[3] <= frame[0]


@pytest.mark.parametrize(
    "boxes, expected",
    [
        pytest.param([(100, 100, 200, 200)], [(100, 76, 250, 100)], id="above, left-aligned"),
        pytest.param([(100, 10, 200, 110)], [(100, 110, 250, 134)], id="below when above is off-frame"),
        pytest.param([(1200, 100, 1270, 170)], [(1130, 76, 1280, 100)], id="shifted left at the right edge"),
        pytest.param([(1250, 300, 1280, 330)], [(1130, 276, 1280, 300)], id="wider than the box: kept inside"),
        pytest.param([(100, 0, 300, 720)], [(100, 0, 250, 24)], id="inside when the box fills the height"),
        pytest.param(
            [(100, 200, 200, 300), (100, 100, 200, 190)],
            [(100, 300, 250, 324), (100, 76, 250, 100)],
            id="below when above would cover the face above",
        ),
        pytest.param(
            [(100, 100, 200, 200), (210, 100, 310, 200)],
            [(100, 76, 250, 100), (210, 200, 360, 224)],
            id="side by side: the second label below, not over the first",
        ),
    ],
)
def test_place_labels(boxes, expected):
    assert place_labels(boxes, [LABEL] * len(boxes), FRAME) == expected


def test_labels_never_leave_the_frame_nor_cover_a_face_when_there_is_room():
    """Random crowds on a grid with a label's height of room between rows: every label fits."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        side = int(rng.integers(30, 120))
        cols, rows = 1280 // (side + 8), 720 // (side + 30)
        cells = rng.choice(cols * rows, size=min(12, cols * rows), replace=False)
        boxes = []
        for c in cells:
            x, y = (c % cols) * (side + 8), (c // cols) * (side + 30) + 28
            boxes.append((x, y, x + side, y + side))
        sizes = [(int(rng.integers(60, 200)), 24) for _ in boxes]
        labels = place_labels(boxes, sizes, FRAME)
        assert all(inside(r) for r in labels)
        for i, label in enumerate(labels):
            assert all(overlap(label, b) == 0 for j, b in enumerate(boxes) if j != i), (boxes, labels)


def test_labels_stay_inside_the_frame_in_any_crowd():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 15))
        x1, y1 = rng.integers(0, 1270, n), rng.integers(0, 710, n)
        boxes = [
            (int(a), int(b), int(min(1280, a + s)), int(min(720, b + s)))
            for a, b, s in zip(x1, y1, rng.integers(8, 400, n))
        ]
        sizes = [(int(w), 24) for w in rng.integers(40, 300, n)]
        assert all(inside(r) for r in place_labels(boxes, sizes, FRAME))


def test_lines_and_text_grow_with_the_frame():
    sides = [(240, 352), (480, 640), (720, 1280), (1080, 1920), (2160, 3840)]
    widths = [line_width(*s) for s in sides]
    scales = [font_scale(*s) for s in sides]
    assert widths == sorted(widths) and widths[0] >= 2 and widths[-1] > widths[0]
    assert scales == sorted(scales) and scales[-1] > 2 * scales[0]
    assert line_width(720, 1280) >= 3 and line_width(1280, 720) == line_width(720, 1280)  # portrait alike


def _face(box, emotion="happy", p=0.83):
    scores = {e: (1 - p) / 6 for e in EMOTIONS}
    scores[emotion] = p
    return FaceResult(FaceBox(*box), scores)


def test_a_720p_box_is_drawn_at_least_3_px_wide():
    """Issue 19: boxes in annotated 720p videos were too thin to see."""
    frame = np.full((720, 1280, 3), 30, np.uint8)
    out = draw_results(frame, [_face((400, 300, 600, 500))])
    row = out[400, 380:420]  # across the left edge, halfway down
    assert (row == COLORS["happy"]).all(axis=1).sum() >= 3


def test_labels_carry_the_face_number_or_the_track_id(monkeypatch):
    texts = []
    monkeypatch.setattr(annotate.cv2, "putText", lambda img, text, *a, **k: texts.append(text))
    faces = [_face((100, 100, 200, 200)), _face((300, 100, 400, 200), "sad", 0.5)]
    draw_results(np.zeros((480, 640, 3), np.uint8), faces)
    draw_results(np.zeros((480, 640, 3), np.uint8), faces, ids=[12, 3])
    draw_results(np.zeros((480, 640, 3), np.uint8), [_face((100, 100, 200, 200), "fear", 0.45)])
    assert texts == ["1 happy 83%", "2 sad 50%", "#12 happy 83%", "#3 sad 50%", "1 fear? 45%"]


def test_a_label_at_the_right_edge_is_not_cut_off():
    frame = np.zeros((360, 640, 3), np.uint8)
    out = draw_results(frame, [_face((600, 100, 640, 140))])
    label = out[60:100]  # above the box
    filled = np.flatnonzero((label == COLORS["happy"]).all(axis=2).any(axis=0))
    assert filled.max() == 639 and filled.min() < 600  # it reaches left of the box instead of past the edge


def crowd_frame(width: int = 1280, height: int = 720) -> np.ndarray:
    """A BGR frame of nine real faces of many sizes (scikit-image photos): one large, a crowded
    row of six small ones (LFW), and a few at the edges, for looking at overlays."""
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:230, 130:320]
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)[40:300, 150:360]
    lfw = (data.lfw_subset() * 255).clip(0, 255).astype(np.uint8)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = np.linspace(60, 140, width, dtype=np.uint8)[None, :, None]
    s = width / 1280

    def paste(image, x, y, side):
        x, y, side = round(x * s), round(y * s), round(side * s)
        image = cv2.resize(image, (side, round(side * image.shape[0] / image.shape[1])), interpolation=cv2.INTER_AREA)
        frame[y : y + image.shape[0], x : x + side] = image[: height - y, : width - x]

    paste(astronaut, 40, 200, 340)
    paste(astronaut[:, ::-1], 1180, 60, 96)
    for k in range(6):
        paste(cv2.cvtColor(lfw[7 * k], cv2.COLOR_GRAY2BGR), 470 + 112 * k, 330, 110)
    paste(astronaut, 500, 560, 130)
    paste(camera, 820, 470, 200)
    return frame


def group_photo(width: int = 1280, height: int = 720) -> np.ndarray:
    """A BGR "group photo": seven copies of the astronaut (head and shoulders, 300 down to 160 px
    wide, every other one mirrored) packed edge to edge in two rows; found by RetinaFace at 320 px."""
    from skimage import data

    person = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[0:300, 100:360]
    frame = np.full((height, width, 3), 120, np.uint8)
    x, y, row = 10, 20, 0
    for k, side in enumerate([300, 240, 200, 160, 300, 240, 200]):
        image = cv2.resize(person[:, ::-1] if k % 2 else person, (side, round(side * 300 / 260)))
        if x + side > width:
            x, y, row = 10, y + row, 0
        frame[y : y + image.shape[0], x : x + side] = image[: height - y]
        x, row = x + side, max(row, image.shape[0])
    return frame


def test_a_crowd_of_real_faces_is_drawn_with_no_label_over_another_face():
    """The shipped detector and model on the crowd; the annotated copy goes to test-artifacts/ to look at."""
    from pathlib import Path

    from emolens.inference.recognizer import EmotionRecognizer

    frame = crowd_frame()
    faces = EmotionRecognizer()(frame)
    assert len(faces) >= 7
    out = draw_results(frame, faces)
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    cv2.imwrite(str(artifacts / "annotated_crowd_720p.png"), out)
    for face in faces:  # every box's outline is still its own colour: no other face's label lies on it
        x1, y1, x2, y2 = face.box.to_list()
        outline = [out[y1:y2, x1], out[y1:y2, x2 - 1], out[y1, x1:x2], out[y2 - 1, x1:x2]]
        assert all((edge == COLORS[face.emotion]).all() for edge in outline), face
