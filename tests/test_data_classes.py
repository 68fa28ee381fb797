"""Class tables: the exact SPEC section 1 mappings, file formats, unknown ids."""

from __future__ import annotations

import numpy as np
import pytest

from phgmm.data import PHGMM_CLASS_NAMES, PHGMM_COLORS, DatasetError, load_class_table

NAMES = [
    "background",
    "sky",
    "building",
    "road",
    "sidewalk",
    "fence",
    "vegetation",
    "pole",
    "car",
    "sign",
    "person",
    "cyclist",
]

# SPEC section 1, written out independently of the package (Cityscapes id -> our class)
SPEC_CITYSCAPES = {
    23: 1,
    11: 2,
    7: 3,
    8: 4,
    13: 5,
    21: 6,
    17: 7,
    26: 8,
    27: 8,
    28: 8,
    20: 9,
    24: 10,
    25: 11,
    32: 11,
    33: 11,
}
SPEC_SYNTHIA = {
    **{i: i for i in range(1, 11)},
    11: 11,
    12: 11,
    17: 11,
    18: 8,
    19: 8,
    22: 3,
    0: 0,
    13: 0,
    14: 0,
    15: 0,
    16: 0,
    20: 0,
    21: 0,
}
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
    y.write_text(
        "name: mine\nclasses:\n  - {name: background, color: [1, 2, 3], ids: [0, 5]}\n"
        "  - {name: road, color: '#804080', ids: [1]}\nignore_ids: [9]\n"
    )
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
    assert out[0, 0] == 1 and out[3, 1] == 1  # spelled out: id 0 → sky


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
    assert str(e.value).startswith(
        f"label: label ids [{', '.join(map(str, range(50, 62)))} ...] are not in "
        f"class table 't' (known ids: {ids} ...); fix the labels"
    )
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


# -- unknown ids at the ends of the range, message lengths ----------------------------------------


def test_unknown_ids_at_both_ends_of_the_16_bit_range_are_reported():
    """Ids 0 and 65535 are in range: when the table lacks them they are unknown, not dropped."""
    t = _table(id_to_class={1: 0, 7: 1})
    assert t.unknown_ids_in(np.array([0, 1, 65535, 7], np.uint16)) == [0, 65535]
    assert t.unknown_ids_in(np.array([0, 1, 65535, 65536], np.int64)) == [0, 65535, 65536]
    assert t.unknown_ids_in(np.array([1, 0, 0], np.uint8)) == [0]
    np.testing.assert_array_equal(t.map(np.array([0, 1, 65535, 7], np.int32), unknown="ignore"), [255, 0, 255, 1])


def _unknown_message(t, n_bad):
    with pytest.raises(DatasetError) as e:
        t.map(np.arange(100, 100 + n_bad, dtype=np.uint8))
    return str(e.value)


def test_the_error_lists_twelve_unknown_ids_and_forty_known_ones_before_it_shortens():
    t40 = _table(id_to_class={i: 1 for i in range(40)})
    twelve = ", ".join(map(str, range(100, 112)))
    known40 = ", ".join(map(str, range(40)))
    assert _unknown_message(t40, 12) == (
        f"label: label ids [{twelve}] are not in class table 't' (known ids: {known40}); fix the labels, "
        "extend the table, or set data.unknown_ids=ignore (--set data.unknown_ids=ignore; evaluate: "
        "--unknown-ids ignore) to map them to 255"
    )
    assert f"[{twelve} ...]" in _unknown_message(t40, 13)
    t41 = _table(id_to_class={i: 1 for i in range(41)})
    assert f"(known ids: {known40} ...);" in _unknown_message(t41, 1)


def test_a_jpeg_label_path_names_the_lossy_compression():
    t = _table(id_to_class={0: 0, 1: 1})
    with pytest.raises(DatasetError) as e:
        t.map(np.array([0, 3], np.uint8), path="a/m.JPG")
    assert str(e.value) == (
        "a/m.JPG: label ids [3] are not in class table 't' (known ids: 0, 1): a JPEG label "
        "map: lossy compression blurs every edge into ids (or colours) that no class has, "
        "so it cannot be read exactly. Save the masks as PNG (lossless); "
        "data.unknown_ids=ignore would drop those edge pixels from the loss and the scores"
    )
    from phgmm.data.classes import is_lossy

    assert [is_lossy(p) for p in ("x.jpg", "x.jpeg", "x.JPEG", "x.png", "x.webp", None)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


# -- colour masks and label files ------------------------------------------------------------------


def _colour_table():
    return _table(
        names=["background", "road", "sky"],
        colors=[(0, 0, 0), (128, 64, 32), (1, 2, 3)],
        id_to_class={0: 0, 1: 1, 2: 2},
        source="c.yaml",
    )


def _bgr(rgb_rows):
    """An H×W×3 uint8 array in OpenCV's BGR order from rows of RGB triples."""
    return np.array(rgb_rows, np.uint8)[..., ::-1].copy()


def test_map_colors_reads_bgr_and_names_unknown_colours():
    t = _colour_table()
    raw = _bgr([[(128, 64, 32), (1, 2, 3)], [(0, 0, 0), (32, 64, 128)]])  # the last is road reversed
    np.testing.assert_array_equal(t.map_colors(raw, unknown="ignore"), [[1, 2], [0, 255]])
    with pytest.raises(DatasetError) as e:
        t.map_colors(raw)
    assert str(e.value) == (
        "label: colour mask holds colours [#204080] that are not in class table 'c.yaml' "
        "(fix the mask, extend the table, or set data.unknown_ids=ignore "
        "(--set data.unknown_ids=ignore; evaluate: --unknown-ids ignore))"
    )
    with pytest.raises(DatasetError) as e:
        t.map_colors(raw, path="m.jpeg")
    assert str(e.value).startswith(
        "m.jpeg: colour mask holds colours [#204080] that are not in class table "
        "'c.yaml': a JPEG label map: lossy compression"
    )
    # 16-bit masks keep their high byte; eight unknown colours at most, sorted
    np.testing.assert_array_equal(t.map_colors(raw[:1].astype(np.uint16) * 257 + 5), [[1, 2]])
    many = _bgr([[(10 + i, 0, 0) for i in range(10)]])
    with pytest.raises(DatasetError) as e:
        t.map_colors(many, path="p.png")
    cols = ", ".join(f"#{10 + i:02x}0000" for i in range(8))
    assert str(e.value).startswith(f"p.png: colour mask holds colours [{cols}] that are not in class table")


def test_is_colour_mask():
    from phgmm.data.classes import is_colour_mask

    grey = np.dstack([np.arange(4, dtype=np.uint8).reshape(2, 2)] * 3)
    assert not is_colour_mask(grey) and not is_colour_mask(grey[..., 0]) and not is_colour_mask(grey[..., :2])
    for k in range(3):
        coloured = grey.copy()
        coloured[0, 1, k] = 9
        assert is_colour_mask(coloured), k
        assert is_colour_mask(np.dstack([coloured, np.zeros((2, 2), np.uint8)])), k  # BGRA


def test_read_label_and_unknown_fraction_from_files(tmp_path):
    import cv2

    t = _colour_table()
    ids = np.array([[0, 1, 2, 1], [2, 9, 9, 0]], np.uint8)
    cv2.imwrite(str(tmp_path / "ids.png"), ids)
    np.testing.assert_array_equal(
        t.read_label(tmp_path / "ids.png", unknown="ignore"), [[0, 1, 2, 1], [2, 255, 255, 0]]
    )
    with pytest.raises(DatasetError, match=r"ids.png: label ids \[9\] are not in class table"):
        t.read_label(tmp_path / "ids.png")  # the default: unknown ids are an error
    assert t.unknown_fraction(tmp_path / "ids.png") == (2, 8, ["9"])
    # three equal channels are ids; 16-bit ids (SYNTHIA) are ids too
    cv2.imwrite(str(tmp_path / "grey.png"), np.dstack([ids] * 3))
    np.testing.assert_array_equal(
        t.read_label(tmp_path / "grey.png", unknown="ignore"), [[0, 1, 2, 1], [2, 255, 255, 0]]
    )
    big = _table(id_to_class={0: 0, 40000: 1})
    cv2.imwrite(str(tmp_path / "ids16.png"), np.array([[0, 40000, 7]], np.uint16))
    np.testing.assert_array_equal(big.read_label(tmp_path / "ids16.png", unknown="ignore"), [[0, 1, 255]])
    assert big.unknown_fraction(tmp_path / "ids16.png") == (1, 3, ["7"])
    # an 8-bit colour mask is read through the table's colours, by default and for unknown_fraction
    mask = _bgr([[(128, 64, 32), (1, 2, 3), (0, 0, 0)], [(5, 5, 5), (5, 5, 5), (1, 2, 3)]])
    cv2.imwrite(str(tmp_path / "col.png"), mask)
    np.testing.assert_array_equal(t.read_label(tmp_path / "col.png", unknown="ignore"), [[1, 2, 0], [255, 255, 2]])
    with pytest.raises(DatasetError, match=r"col.png: colour mask holds colours \[#050505\]"):
        t.read_label(tmp_path / "col.png")
    assert t.unknown_fraction(tmp_path / "col.png") == (2, 6, ["#050505"])
    # with channel=red the red channel holds the ids, colour or not
    np.testing.assert_array_equal(
        _table(id_to_class={128: 1, 1: 0, 0: 0, 5: 1}).read_label(tmp_path / "col.png", channel="red"),
        [[1, 0, 0], [1, 1, 0]],
    )
    assert _table(id_to_class={1: 0}).unknown_fraction(tmp_path / "col.png", channel="red") == (4, 6, ["0", "5", "128"])
    # a 16-bit three-channel file: ids unless the caller reads such files as colour masks
    mask16 = mask.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "col16.png"), mask16)
    assert t.unknown_fraction(tmp_path / "col16.png", colour_16bit=True) == (2, 6, ["#050505"])
    with pytest.raises(DatasetError, match=f"^{tmp_path / 'col16.png'}: label map has 3 different channels"):
        t.read_label(tmp_path / "col16.png")
    with pytest.raises(DatasetError, match="label map has 3 different channels"):
        t.unknown_fraction(tmp_path / "col16.png")


def test_colorize_paints_the_tables_colours_and_ignore_black():
    t = _colour_table()
    out = t.colorize(np.array([[0, 1], [2, 255]], np.uint8))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, [[(0, 0, 0), (128, 64, 32)], [(1, 2, 3), (0, 0, 0)]])


def test_resolve_classes_by_name_or_index(tmp_path):
    from phgmm.data.classes import resolve_classes

    names = ["background", "road", "sky"]
    assert resolve_classes(["sky", 0, " road ", "0"], names, "w") == (0, 1, 2)
    assert resolve_classes("road", names, "w") == (1,) and resolve_classes(2, names, "w") == (2,)
    assert resolve_classes([], names, "w") == ()
    for bad in (3, -1, "-0", "lamp", "1.0", "1-", "X1"):
        with pytest.raises(DatasetError) as e:
            resolve_classes([bad], names, "here")
        assert str(e.value) == (
            f"here: {bad!r} is not a class of the table (classes: background, road, sky; or an index 0..2)"
        )
    y = "classes:\n  - {name: a, ids: [0]}\n  - {name: b, ids: [1]}\n"
    assert _load_yaml(tmp_path, y + "miou_exclude: [b]\n").miou_exclude == (1,)
    assert _load_yaml(tmp_path, y + "miou_exclude: [0]\n").miou_exclude == (0,)
    assert _load_yaml(tmp_path, y + "miou_exclude: 0\n").miou_exclude == (0,)  # a scalar, not "none"
    assert _load_yaml(tmp_path, y).miou_exclude == ()


# -- table files: whole error messages, names, CSV edge cases -------------------------------------


def _load_yaml(folder, text):
    p = folder / "t.yaml"
    p.write_text(text)
    return load_class_table(p)


def _yaml_error(folder, text):
    with pytest.raises(DatasetError) as e:
        _load_yaml(folder, text)
    return str(e.value).replace(str(folder / "t.yaml"), "T")


def test_yaml_table_errors_in_full(tmp_path):
    assert _yaml_error(tmp_path, "classes: []\n") == (
        "class table T: expected a mapping with a non-empty 'classes' list (each entry: name, ids, color)"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a}]\nid_source: kitti\n") == (
        "class table T: unknown id_source 'kitti' (supported: cityscapesscripts)"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a}, {ids: [1]}]\n") == (
        "class table T, class #1: expected a mapping with at least a 'name' key"
    )
    assert (
        _yaml_error(tmp_path, "classes: [road]\n")
        == "class table T, class #0: expected a mapping with at least a 'name' key"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a, names: [sky]}]\n") == (
        "class table T, class #0: 'names' needs 'id_source: cityscapesscripts'"
    )
    assert _yaml_error(tmp_path, "id_source: cityscapesscripts\nclasses: [{name: a, names: [skies]}]\n") == (
        "class table T, class #0: 'skies' is not a Cityscapes label name"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a, ids: [1, 2]}, {name: b, ids: [3, 2]}]\n") == (
        "class table T, class #1: native id 2 already mapped to class 'a'"
    )
    assert (
        _yaml_error(tmp_path, "classes: [{name: a, ids: [1, x]}]\n")
        == "class table T, class #0: ids [1, 'x'] are not integers"
    )
    assert (
        _yaml_error(tmp_path, "classes: [{name: a, ids: 1.5}]\n") == "class table T, class #0: ids 1.5 are not integers"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a, color: [1, 2]}]\n") == (
        "class table T, class #0: colour [1, 2] is not an RGB triple of 0..255 values"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a, color: [r, g, b]}]\n") == (
        "class table T, class #0: colour ['r', 'g', 'b'] is not an RGB triple (expected [r, g, b], 'r g b' or "
        "'#rrggbb')"
    )
    assert (
        _yaml_error(tmp_path, "classes: [{name: a}]\nignore_ids: [x]\n")
        == "class table T, ignore_ids: ids ['x'] are not integers"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a}]\nmiou_exclud: [a]\n") == (
        "class table T: unknown key 'miou_exclud'; did you mean miou_exclude? (a table takes name, classes, "
        "ignore_ids, miou_exclude, id_source)"
    )
    assert _yaml_error(tmp_path, "classes: [{name: a}]\nmiou_exclude: [b]\n") == (
        "class table T, miou_exclude: 'b' is not a class of the table (classes: a; or an index 0..0)"
    )


def test_yaml_table_names_ids_and_cityscapes_names(tmp_path):
    t = _load_yaml(tmp_path, "name: mine\nclasses: [{name: a, ids: [1, 1]}, {name: b, ids: '2;3'}]\nignore_ids: 7\n")
    assert t.name == "mine" and t.id_to_class == {1: 0, 2: 1, 3: 1} and t.ignore_ids == [7]
    # keys unlike any table key are allowed (cls is 0.6 similar to classes, below the 0.7 cutoff)
    assert _load_yaml(tmp_path, "classes: [{name: a}]\nnotes: free text\ncls: 3\n").name == "t"
    t = _load_yaml(
        tmp_path,
        "id_source: cityscapesscripts\nclasses: [{name: a, names: [sky, road]}, {name: b, names: '*'}]\n"
        "ignore_ids: [0]\n",
    )
    from cityscapesscripts.helpers.labels import labels

    assert t.id_to_class[23] == 0 and t.id_to_class[7] == 0 and 0 not in t.id_to_class
    assert set(t.id_to_class) == {lab.id for lab in labels} - {0}
    assert all(c == 1 for i, c in t.id_to_class.items() if i not in (7, 23))


def test_load_class_table_errors_in_full(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DatasetError) as e:
        load_class_table(missing)
    assert str(e.value) == (
        f"class table {missing}: file not found (expected a .yaml/.yml/.csv file or one of "
        "the built-in names phgmm12, cityscapes, synthia, camvid)"
    )
    with pytest.raises(DatasetError) as e:
        load_class_table("nope")
    assert str(e.value).startswith("class table nope: file not found")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe name")
    with pytest.raises(DatasetError) as e:
        load_class_table(bad)
    assert str(e.value) == (
        f"class table {bad}: cannot be read ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)"
    )
    t = load_class_table("camvid")
    assert load_class_table(t) is t and t.name == "camvid" and t.source.endswith("camvid.yaml")


def test_csv_tables_edge_cases(tmp_path):
    c = tmp_path / "e.csv"

    def error(text):
        c.write_text(text)
        with pytest.raises(DatasetError) as e:
            load_class_table(c)
        return str(e.value)

    assert error("name,ids\n") == (
        f"class table {c}: empty CSV (expected a header 'name,ids,color' and one row per class)"
    )
    assert error("label,ids\nroad,1\n") == (
        f"class table {c}: CSV has no 'name' column (expected columns name, ids, color)"
    )
    assert error("name,ids\nroad,1\nignore,x\n") == f"class table {c}, row 'ignore': ids ['x'] are not integers"
    # a row without a name is skipped, not the end of the table
    c.write_text("name,ids\nroad,1\n,2\nsky,3\n")
    assert load_class_table(c).id_to_class == {1: 0, 3: 1}
    # only a name column: no ids and default colours; fields past the header are not ids
    c.write_text("name\nroad,3\nlamp\n")
    t = load_class_table(c)
    assert t.names == ["road", "lamp"] and t.id_to_class == {} and t.ignore_ids == []
    assert t.colors == [PHGMM_COLORS[PHGMM_CLASS_NAMES.index("road")], t.colors[1]]


def test_palette_file_read_by_hand():
    """_load_palette reads tables/phgmm12.yaml: the SPEC's names and Cityscapes-style colours."""
    from phgmm.data.classes import _load_palette

    colours = [
        (0, 0, 0),
        (70, 130, 180),
        (70, 70, 70),
        (128, 64, 128),
        (244, 35, 232),
        (190, 153, 153),
        (107, 142, 35),
        (153, 153, 153),
        (0, 0, 142),
        (220, 220, 0),
        (220, 20, 60),
        (119, 11, 32),
    ]
    assert _load_palette() == (NAMES, colours)
    assert PHGMM_COLORS == colours


def test_ignore_ids_at_both_ends_of_the_16_bit_range_win_over_classes():
    t = _table(id_to_class={0: 1, 65535: 1, 5: 0}, ignore_ids=[0, 65535])
    for dtype in (np.uint16, np.int64):
        np.testing.assert_array_equal(t.map(np.array([0, 65535, 5], dtype)), [255, 255, 0])
    t = _table(id_to_class={5: 0}, ignore_ids=[0, 65535])
    assert t.unknown_ids_in(np.array([0, 65535, 5, 6], np.uint16)) == [6]


def test_colour_masks_with_alpha_and_masks_with_nothing_unknown(tmp_path):
    import cv2

    t = _colour_table()
    rgb = [[(128, 64, 32), (1, 2, 3), (5, 6, 7)], [(7, 6, 5), (0, 0, 0), (1, 2, 3)]]
    bgra = np.dstack([_bgr(rgb), np.full((2, 3), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert t.unknown_fraction(tmp_path / "a.png") == (2, 6, ["#050607", "#070605"])
    out = t.map_colors(bgra, unknown="ignore")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[1, 2, 255], [255, 0, 2]])
    cv2.imwrite(str(tmp_path / "a16.png"), bgra.astype(np.uint16) * 257)
    assert t.unknown_fraction(tmp_path / "a16.png", colour_16bit=True) == (2, 6, ["#050607", "#070605"])
    known = _bgr([[(128, 64, 32), (1, 2, 3)]])
    cv2.imwrite(str(tmp_path / "k.png"), known)
    assert t.unknown_fraction(tmp_path / "k.png") == (0, 2, [])
    cv2.imwrite(str(tmp_path / "i.png"), np.array([[0, 1, 2]], np.uint8))
    assert t.unknown_fraction(tmp_path / "i.png") == (0, 3, [])
