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


def _table(**kw):
    from phgmm.data.classes import ClassTable

    base = dict(name="t", names=["background", "road"], colors=[(0, 0, 0), (1, 2, 3)], id_to_class={})
    return ClassTable(**{**base, **kw})


def test_ids_at_both_ends_of_the_16_bit_range_map_for_every_dtype_that_holds_them():
    t = _table(id_to_class={0: 1, 65535: 1, 7: 0}, ignore_ids=[65534])
    for dtype in (np.uint16, np.int32, np.int64, np.uint32):
        lab = np.array([0, 65535, 65534, 7], dtype)
        np.testing.assert_array_equal(t.map(lab), [1, 1, 255, 0])
        assert t.unknown_ids_in(lab) == []
    assert t.unknown_ids_in(np.array([65536, 1, -1], np.int64)) == [-1, 1, 65536]
    assert t.unknown_ids_in(np.arange(256, dtype=np.uint8)) == [i for i in range(1, 256) if i != 7]
    # ids outside 0..65535 in a table are kept in the dict but cannot enter the lookup table
    assert _table(id_to_class={-1: 1, 70000: 1}).known.sum() == 0


def test_error_messages_in_full():
    with pytest.raises(DatasetError) as e:
        _table(colors=[(0, 0, 0)], source="x.yaml")
    assert str(e.value) == "class table x.yaml: 2 names but 1 colours"
    with pytest.raises(DatasetError) as e:
        _table(colors=[(0, 0, 0)])
    assert str(e.value) == "class table t: 2 names but 1 colours"
    t = _table(id_to_class={i: 1 for i in range(50)})
    with pytest.raises(DatasetError) as e:
        t.map(np.arange(50, 63, dtype=np.uint8))
    ids = ", ".join(map(str, range(40)))
    assert str(e.value).startswith(f"label: label ids [{', '.join(map(str, range(50, 62)))} ...] are not in "
                                   f"class table 't' (known ids: {ids} ...); fix the labels")
    with pytest.raises(DatasetError) as e:
        _table(id_to_class={0: 1, 3: 0}, ignore_ids=[9], source="s.csv").map(np.array([5], np.uint8), path="a.png")
    assert str(e.value).startswith("a.png: label ids [5] are not in class table 's.csv' (known ids: 0, 3, 9); ")
    with pytest.raises(DatasetError) as e:
        t.map(np.zeros(3, np.float32))
    assert str(e.value) == "label: label map has dtype float32, expected integer ids"
    with pytest.raises(ValueError) as e:
        t.map(np.zeros(3, np.uint8), unknown="drop")
    assert str(e.value) == "unknown_ids must be 'error' or 'ignore', got 'drop'"


def test_csv_column_aliases_ignore_rows_and_default_colours(tmp_path):
    from phgmm.data.classes import _default_color

    c = tmp_path / "aliases.csv"
    c.write_text("Name,Source IDs,Colour\nbackground,0,\nroad,1 2,#010203\nvoid_ignore,9,\n_ignore,8,\n,5,\n")
    t = load_class_table(c)
    assert (t.name, t.names, t.source) == ("aliases", ["background", "road"], str(c))
    assert t.colors == [PHGMM_COLORS[0], (1, 2, 3)] and t.ignore_ids == [9, 8]
    np.testing.assert_array_equal(t.map(np.array([0, 1, 2, 9, 8], np.uint8)), [0, 1, 1, 255, 255])
    for header in ("name,id,rgb", "name,source_ids,color"):
        c.write_text(f"{header}\nsky,4,0 0 255\n")
        t = load_class_table(c)
        assert t.id_to_class == {4: 0} and t.colors == [(0, 0, 255)]
    # a class name outside the PHGMM palette gets a colour seeded by its index
    rng = np.random.default_rng(3 + 1000)
    assert _default_color("lamp", 3) == tuple(int(v) for v in rng.integers(0, 256, 3))
    assert _default_color("road", 3) == PHGMM_COLORS[PHGMM_CLASS_NAMES.index("road")]
    y = tmp_path / "named.yaml"
    y.write_text("classes:\n  - {name: a, source_ids: [3]}\n  - {name: b, ids: 4}\n")
    t = load_class_table(y)
    assert t.name == "named" and t.id_to_class == {3: 0, 4: 1} and t.source == str(y)


@pytest.mark.parametrize("color", ["0 0 256", [1, 2], [-1, 0, 0], "#12345"])
def test_bad_colours(tmp_path, color):
    from phgmm.data.classes import _parse_color

    with pytest.raises(DatasetError, match="^here: colour .* is not an RGB triple"):
        _parse_color(color, "here")
    assert _parse_color("#000000", "x") == (0, 0, 0) and _parse_color([0, 255, 0], "x") == (0, 255, 0)
