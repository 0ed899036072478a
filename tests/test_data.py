from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest

from conftest import synthetic_faces, write_csv, write_folders, zip_tree
from emolens.errors import DatasetError
from emolens.labels import EMOTIONS, emotion_index
from emolens.training.data import load_split


def _assert_same(split, expected):
    images, labels = expected
    order_got = np.lexsort((split.images.reshape(len(split), -1).sum(1), split.labels))
    order_exp = np.lexsort((images.reshape(len(images), -1).sum(1), labels))
    np.testing.assert_array_equal(split.labels[order_got], labels[order_exp])
    np.testing.assert_array_equal(split.images[order_got], images[order_exp])


@pytest.mark.parametrize("icml", [False, True])
def test_csv_both_layouts(tmp_path, tiny_splits, icml):
    private = synthetic_faces(1, seed=3)
    path = write_csv(tmp_path / "fer2013.csv", {**tiny_splits, "private": private}, icml=icml)
    _assert_same(load_split(path, "train"), tiny_splits["train"])
    _assert_same(load_split(path, "test"), tiny_splits["test"])
    _assert_same(load_split(path, "private"), private)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_folders(tmp_path, tiny_splits, ext):
    root = write_folders(tmp_path / "fer", tiny_splits, ext)
    split = load_split(root, "train")
    assert split.images.shape == (42, 48, 48) and split.images.dtype == np.uint8
    if ext == ".png":  # lossless: identical pixels
        _assert_same(split, tiny_splits["train"])
    else:
        np.testing.assert_array_equal(np.sort(split.labels), np.sort(tiny_splits["train"][1]))


def test_folder_with_only_test(tmp_path, tiny_splits):
    root = write_folders(tmp_path / "fer", {"test": tiny_splits["test"]}, ".jpg")
    assert len(load_split(root, "test")) == 14
    with pytest.raises(DatasetError, match="no train/ folder"):
        load_split(root, "train")


@pytest.mark.parametrize("top", ["", "fer2013"])
def test_zip_of_folders(tmp_path, tiny_folder, tiny_splits, top):
    path = zip_tree(tiny_folder, tmp_path / "fer.zip", top=top)
    _assert_same(load_split(path, "train"), tiny_splits["train"])
    _assert_same(load_split(path, "test"), tiny_splits["test"])


def test_zip_of_csv(tmp_path, tiny_splits):
    csv_path = write_csv(tmp_path / "icml_face_data.csv", tiny_splits, icml=True)
    with zipfile.ZipFile(tmp_path / "fer.zip", "w") as zf:
        zf.write(csv_path, "icml_face_data.csv")
    _assert_same(load_split(tmp_path / "fer.zip", "test"), tiny_splits["test"])


def test_labels_follow_folder_names_not_sort_order(tmp_path):
    """An alphabetical copy puts neutral at index 4; we must map it to FER2013's 6."""
    img = np.full((48, 48), 100, np.uint8)
    for name in ("neutral", "Surprised", "happy"):
        (tmp_path / "test" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "test" / name / "a.png"), img)
    split = load_split(tmp_path, "test")
    assert sorted(split.labels.tolist()) == sorted(
        [EMOTIONS.index("neutral"), EMOTIONS.index("surprise"), EMOTIONS.index("happy")]
    )
    assert emotion_index("neutral") == 6 and emotion_index("fearful") == 2


def test_non_48_and_colour_images_are_converted_and_counted(tmp_path):
    folder = tmp_path / "test" / "happy"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "big.png"), np.full((96, 96, 3), 200, np.uint8))
    cv2.imwrite(str(folder / "ok.png"), np.full((48, 48), 50, np.uint8))
    (folder / "notes.txt").write_text("ignored: not an image")
    split = load_split(tmp_path, "test")
    assert split.converted == 1
    assert split.images.shape == (2, 48, 48)
    assert sorted(split.images[:, 0, 0].tolist()) == [50, 200]


def test_cache_is_used_and_invalidated(tmp_path, tiny_splits):
    path = write_csv(tmp_path / "fer2013.csv", tiny_splits)
    cache = tmp_path / "mycache"
    first = load_split(path, "test", cache_dir=cache)
    assert len(list(cache.rglob("*.npz"))) == 1
    again = load_split(path, "test", cache_dir=cache)
    np.testing.assert_array_equal(first.images, again.images)
    write_csv(path, {"test": synthetic_faces(1, seed=9)})  # changed file: new cache key
    assert len(load_split(path, "test", cache_dir=cache)) == 7


PIXELS = " ".join(["0"] * 2304)


@pytest.mark.parametrize(
    "row, message",
    [
        (f"0,{' '.join(['0'] * 2303)},Training", "row 2: pixel count is 2303, expected 2304"),
        (f"0,{PIXELS[:-1]}x,Training", "row 2: pixels contain a non-numeric value"),
        (f"0,{PIXELS[:-1]}300,Training", "row 2: pixel values must be 0-255"),
        (f"9,{PIXELS},Training", "row 2: unknown emotion code 9"),
        (f"happy,{PIXELS},Training", "row 2: emotion 'happy' is not an integer code"),
        (f"0,{PIXELS},Validation", "row 2: unknown Usage 'Validation'"),
        (f"0,{PIXELS}", "row 2: expected 3 fields, got 2"),
    ],
)
def test_malformed_csv_rows(tmp_path, row, message):
    path = tmp_path / "fer2013.csv"
    path.write_text(f"emotion,pixels,Usage\n{row}\n")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")) as info:
        load_split(path, "train")
    assert "fer2013.csv" in str(info.value)


def test_csv_missing_column_and_empty(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels\n")
    with pytest.raises(DatasetError, match="missing column"):
        load_split(path, "train")
    path.write_text("")
    with pytest.raises(DatasetError, match="empty CSV"):
        load_split(path, "train")


def test_empty_split(tmp_path, tiny_splits):
    path = write_csv(tmp_path / "fer2013.csv", {"train": tiny_splits["train"]})
    with pytest.raises(DatasetError, match="split 'test' .* is empty"):
        load_split(path, "test")


def test_unknown_emotion_folder(tmp_path):
    (tmp_path / "test" / "bored").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "test" / "bored" / "a.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError, match="bored/: unknown emotion folder"):
        load_split(tmp_path, "test")


def test_undecodable_image_names_the_member(tmp_path, tiny_folder):
    bad = tiny_folder / "test" / "sad" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DatasetError, match="sad/broken.jpg: cannot decode image"):
        load_split(tiny_folder, "test")
    with pytest.raises(DatasetError, match=r"fer.zip:test/sad/broken.jpg: cannot decode image"):
        load_split(zip_tree(tiny_folder, tiny_folder.parent / "fer.zip"), "test")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("data.zip", b"PK\x03\x04garbage", "not a readable zip"),
        ("data.bin", b"hello", "not a FER2013 CSV"),
    ],
)
def test_not_a_dataset(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_split(path, "train")


def test_missing_path_and_unknown_split(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_split(tmp_path / "nope.csv")
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_split(tmp_path, "val")
