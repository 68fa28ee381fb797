"""Class tables: the exact SPEC section 1 mappings, file formats, unknown ids."""

from __future__ import annotations

import numpy as np
import pytest

from phgmm.data import DatasetError, PHGMM_CLASS_NAMES, PHGMM_COLORS, load_class_table

NAMES = ["background", "sky", "building", "road", "sidewalk", "fence", "vegetation", "pole", "car",
         "sign", "person", "cyclist"]

# SPEC section 1, written out independently of the package (Cityscapes id -> our class)
SPEC_CITYSCAPES = {23: 1, 11: 2, 7: 3, 8: 4, 13: 5, 21: 6, 17: 7, 26: 8, 27: 8, 28: 8, 20: 9, 24: 10,
                   25: 11, 32: 11, 33: 11}
SPEC_SYNTHIA = {**{i: i for i in range(1, 11)}, 11: 11, 12: 11, 17: 11, 18: 8, 19: 8, 22: 3,
                0: 0, 13: 0, 14: 0, 15: 0, 16: 0, 20: 0, 21: 0}
SPEC_CAMVID = {0: 1, 1: 2, 2: 7, 3: 3, 4: 4, 5: 6, 6: 9, 7: 5, 8: 8, 9: 10, 10: 11, 11: 255}


def test_palette():
    assert PHGMM_CLASS_NAMES == NAMES
    assert len(PHGMM_COLORS) == 12 and len(set(PHGMM_COLORS)) == 12


def test_cityscapes_every_id():
    t = load_class_table("cityscapes")
    assert t.names == NAMES
    for cid in list(range(34)) + [-1]:
        assert t.id_to_class[cid] == SPEC_CITYSCAPES.get(cid, 0), cid
    ids = np.arange(34, dtype=np.uint8)
    expected = np.array([SPEC_CITYSCAPES.get(i, 0) for i in range(34)], np.uint8)
    np.testing.assert_array_equal(t.map(ids), expected)


def test_cityscapes_table_uses_cityscapesscripts_names():
    from cityscapesscripts.helpers.labels import labels

    t = load_class_table("cityscapes")
    assert set(t.id_to_class) == {lab.id for lab in labels}


def test_synthia_and_camvid():
    t = load_class_table("synthia")
    ids = np.array(sorted(SPEC_SYNTHIA), np.uint16)
    np.testing.assert_array_equal(t.map(ids), [SPEC_SYNTHIA[i] for i in ids])
    t = load_class_table("camvid")
    ids = np.arange(12, dtype=np.uint8)
    np.testing.assert_array_equal(t.map(ids), [SPEC_CAMVID[i] for i in range(12)])


def test_unknown_ids_error_and_ignore():
    t = load_class_table("camvid")
    lab = np.array([[0, 1], [12, 40]], np.uint8)
    with pytest.raises(DatasetError, match=r"12, 40.*not in class table"):
        t.map(lab, path="x.png")
    np.testing.assert_array_equal(t.map(lab, unknown="ignore"), [[1, 2], [255, 255]])


def test_yaml_and_csv_tables(tmp_path):
    y = tmp_path / "t.yaml"
    y.write_text("name: mine\nclasses:\n  - {name: background, color: [1, 2, 3], ids: [0, 5]}\n"
                 "  - {name: road, color: '#804080', ids: [1]}\nignore_ids: [9]\n")
    t = load_class_table(y)
    assert t.names == ["background", "road"] and t.colors == [(1, 2, 3), (128, 64, 128)]
    np.testing.assert_array_equal(t.map(np.array([0, 5, 1, 9], np.uint8)), [0, 0, 1, 255])
    c = tmp_path / "t.csv"
    c.write_text("name,ids,color\nbackground,0 5,1 2 3\nroad,1;2,#804080\nignore,9,\n")
    t = load_class_table(c)
    assert t.names == ["background", "road"]
    np.testing.assert_array_equal(t.map(np.array([0, 5, 1, 2, 9], np.uint8)), [0, 0, 1, 1, 255])


def test_bad_tables(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load_class_table(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: 3\n")
    with pytest.raises(DatasetError, match="classes"):
        load_class_table(bad)


# every integer dtype a label can reach ClassTable.map with: uint8/uint16 PNGs, int64 from
# read_label_png, int32/uint32 and the rest from other readers or arrays built by hand
LABEL_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]


@pytest.mark.parametrize("dtype", LABEL_DTYPES, ids=lambda d: np.dtype(d).name)
def test_map_is_the_same_for_every_integer_dtype_with_id_zero(dtype):
    """CamVid's native id 0 is sky (class 1), not ignore: every dtype maps it, and the others, alike."""
    t = load_class_table("camvid")
    ids = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [0, 0, 11, 3]], dtype)
    expected = np.array([[SPEC_CAMVID[int(i)] for i in row] for row in ids.astype(np.int64)], np.uint8)
    out = t.map(ids)
    assert out.dtype == np.uint8 and out.shape == ids.shape
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0] == 1 and out[3, 1] == 1       # spelled out: id 0 → sky


@pytest.mark.parametrize("dtype", LABEL_DTYPES, ids=lambda d: np.dtype(d).name)
def test_map_out_of_table_ids_for_every_integer_dtype(dtype):
    """Ids outside the table (12, 127; negative and > 65535 where the dtype holds them) are an error,
    or 255 with unknown='ignore'; ids beside them still map (0 → 1, 11 → 255 ignored, 1 → 2)."""
    t = load_class_table("camvid")
    info = np.iinfo(dtype)
    extra = [v for v in (-1, -7, 70000) if info.min <= v <= info.max]
    values = [0, 12, 1, 127, 11, *extra]
    lab = np.array(values, dtype)
    with pytest.raises(DatasetError, match="not in class table"):
        t.map(lab)
    expected = [1, 255, 2, 255, 255] + [255] * len(extra)
    np.testing.assert_array_equal(t.map(lab, unknown="ignore"), expected)
    assert t.unknown_ids_in(lab) == sorted([12, 127, *extra])
