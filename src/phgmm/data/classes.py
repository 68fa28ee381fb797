"""Class tables: how a data set's native label ids map onto the 12 PHGMM classes.

A class table is a data file (YAML or CSV) that a user can read, copy and override. The built-in
tables live in ``phgmm/data/tables/`` (``phgmm12``, ``cityscapes``, ``synthia``, ``camvid``).

YAML format::

    name: my-data
    classes:                      # in output-index order
      - {name: background, color: [0, 0, 0], ids: [0, 7]}
      - {name: road,       color: [128, 64, 128], ids: [1]}
    ignore_ids: [255]             # native ids mapped to 255 (ignored by loss and metrics)
    miou_exclude: [background]    # classes trained and scored but left out of the mean IoU

``miou_exclude`` (class names or indices) defaults to none: every class of a table counts in the
mIoU unless the table says otherwise. The shipped tables leave out ``background`` (the paper's
convention: class 0 is everything no other class names).

A class may give ``names`` instead of ``ids`` when the table sets ``id_source:
cityscapesscripts``: the names are then resolved with ``cityscapesscripts.helpers.labels``, and
``names: "*"`` takes every Cityscapes label not listed under another class.

CSV format (header required; ids separated by spaces or ``;``; colour as ``r g b``, ``r;g;b``
or ``#rrggbb``; a row named ``ignore`` lists the ignored ids)::

    name,ids,color
    background,0 7,0 0 0
    road,1,#804080
    ignore,255,

Ids that are in no class and not in ``ignore_ids`` are *unknown*: loading a label that contains
one raises :class:`~phgmm.data.DatasetError`, unless the data set was built with
``unknown_ids="ignore"``, in which case they become 255.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..conventions import IGNORE_INDEX, UNKNOWN_IDS
from ..visualize import colorize
from .errors import DatasetError
from .imageio import imread_label, label_ids, load_label

__all__ = [
    "ClassTable",
    "load_class_table",
    "builtin_table_path",
    "BUILTIN_TABLES",
    "PHGMM_CLASS_NAMES",
    "PHGMM_COLORS",
    "IGNORE_INDEX",
    "colorize",
]

MAX_NATIVE_ID = 65535  # 16-bit label PNGs (Synthia)
TABLE_DIR = Path(__file__).resolve().parent / "tables"
BUILTIN_TABLES = ("phgmm12", "cityscapes", "synthia", "camvid")


@dataclass
class ClassTable:
    """A mapping from native label ids to class indices ``0..num_classes-1`` (or 255)."""

    name: str
    names: list[str]
    colors: list[tuple[int, int, int]]
    id_to_class: dict[int, int]
    ignore_ids: list[int] = field(default_factory=list)
    source: str = ""
    #: class indices trained and scored but left out of the mean IoU (the shipped tables: background)
    miou_exclude: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise DatasetError(
                f"class table {self.source or self.name}: {len(self.names)} names but {len(self.colors)} colours"
            )
        self.miou_exclude = tuple(int(i) for i in self.miou_exclude)
        lut = np.full(MAX_NATIVE_ID + 1, IGNORE_INDEX, dtype=np.uint8)
        known = np.zeros(MAX_NATIVE_ID + 1, dtype=bool)
        for nid, cls in self.id_to_class.items():
            if 0 <= nid <= MAX_NATIVE_ID:
                lut[nid] = cls
                known[nid] = True
        for nid in self.ignore_ids:
            if 0 <= nid <= MAX_NATIVE_ID:
                lut[nid] = IGNORE_INDEX
                known[nid] = True
        self.lut = lut
        self.known = known

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def unknown_ids_in(self, label: np.ndarray) -> list[int]:
        """Native ids present in ``label`` that the table does not know (sorted)."""
        if label.dtype == np.uint8:
            present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
        else:
            present = np.unique(label)
        present = present.astype(np.int64)
        out_of_range = present[(present < 0) | (present > MAX_NATIVE_ID)]
        in_range = present[(present >= 0) & (present <= MAX_NATIVE_ID)]
        return sorted(out_of_range.tolist() + in_range[~self.known[in_range]].tolist())

    def map(self, label: np.ndarray, unknown: str = "error", path: str | Path | None = None) -> np.ndarray:
        """Map a native-id label array to class indices (uint8, 255 = ignore).

        ``unknown="error"`` raises :class:`DatasetError` naming ``path`` when the label holds an id
        that is not in the table; ``unknown="ignore"`` maps such ids to 255.
        """
        if unknown not in UNKNOWN_IDS:
            raise ValueError(f"unknown_ids must be 'error' or 'ignore', got {unknown!r}")
        label = np.asarray(label)
        if label.dtype.kind not in "iu":
            raise DatasetError(f"{path or 'label'}: label map has dtype {label.dtype}, expected integer ids")
        if unknown == "error":
            bad = self.unknown_ids_in(label)
            if bad:
                shown = ", ".join(map(str, bad[:12])) + (" ..." if len(bad) > 12 else "")
                if is_lossy(path):
                    raise DatasetError(
                        f"{path}: label ids [{shown}] are not in class table '{self.source or self.name}' "
                        f"(known ids: {self._known_summary()}): {LOSSY_NOTE}"
                    )
                raise DatasetError(
                    f"{path or 'label'}: label ids [{shown}] are not in class table "
                    f"'{self.source or self.name}' (known ids: {self._known_summary()}); fix the "
                    f"labels, extend the table, or set data.unknown_ids=ignore (--set data.unknown_ids=ignore; "
                    f"evaluate: --unknown-ids ignore) to map them to 255"
                )
        if label.dtype == np.uint8 or label.dtype == np.uint16:
            return self.lut[label]
        lab = label.astype(np.int64)
        valid = (lab >= 0) & (lab <= MAX_NATIVE_ID)
        out = np.full(lab.shape, IGNORE_INDEX, dtype=np.uint8)
        out[valid] = self.lut[lab[valid]]
        return out

    def _known_summary(self) -> str:
        ids = sorted(set(self.id_to_class) | set(self.ignore_ids))
        s = ", ".join(map(str, ids[:40]))
        return s + (" ..." if len(ids) > 40 else "")

    def read_label(self, path: str | Path, unknown: str = "error", channel: str = "single") -> np.ndarray:
        """Read a native-id label file and map it: :func:`~phgmm.data.imageio.load_label` then
        :meth:`map` — the path every data set and ``score_folders(gt_table=...)`` take. An 8-bit
        colour mask (three channels that differ) painted in the table's colours is mapped by
        :meth:`map_colors`; a palette PNG gives its indices as ids."""
        raw = imread_label(path)
        if channel == "single" and is_colour_mask(raw) and raw.dtype == np.uint8:  # 16-bit: ids (SYNTHIA)
            return self.map_colors(raw, unknown=unknown, path=path)
        return self.map(label_ids(raw, path, channel), unknown=unknown, path=path)

    def map_colors(self, raw_bgr: np.ndarray, unknown: str = "error", path: str | Path | None = None) -> np.ndarray:
        """A colour mask (H×W×3, OpenCV's BGR order; 16-bit is reduced to 8) → class indices: each
        of the table's colours becomes its class; any other colour is an unknown id (an error, or
        255 with ``unknown="ignore"``)."""
        if raw_bgr.dtype != np.uint8:
            raw_bgr = (raw_bgr >> 8).astype(np.uint8)
        b, g, r = (raw_bgr[..., k].astype(np.int64) for k in range(3))
        key = (r << 16) | (g << 8) | b
        out = np.full(key.shape, IGNORE_INDEX, dtype=np.uint8)
        known = np.zeros(key.shape, dtype=bool)
        for cls, (cr, cg, cb) in enumerate(self.colors):
            m = key == ((cr << 16) | (cg << 8) | cb)
            out[m] = cls
            known |= m
        if not known.all() and unknown == "error":
            bad = np.unique(key[~known])[:8]
            cols = ", ".join(f"#{int(k):06x}" for k in bad)
            where = (
                f"{path or 'label'}: colour mask holds colours [{cols}] that are not in class table "
                f"'{self.source or self.name}'"
            )
            if is_lossy(path):
                raise DatasetError(f"{where}: {LOSSY_NOTE}")
            raise DatasetError(
                f"{where} (fix the mask, extend the table, or set data.unknown_ids=ignore "
                f"(--set data.unknown_ids=ignore; evaluate: --unknown-ids ignore))"
            )
        return out

    def unknown_fraction(
        self, path: str | Path, channel: str = "single", colour_16bit: bool = False
    ) -> tuple[int, int, list[str]]:
        """``(unknown pixels, pixels, unknown ids or "#rrggbb" colours)`` of a label file: what
        ``unknown_ids=ignore`` turns into 255 (``colour_16bit``: a 16-bit file of three different
        channels is a colour mask, as a folder data set reads it)."""
        raw = imread_label(path) if channel == "single" else None
        if raw is not None and is_colour_mask(raw) and (raw.dtype == np.uint8 or colour_16bit):
            mapped = self.map_colors(raw, unknown="ignore", path=path)
            rgb = raw[..., 2::-1].astype(np.int64) if raw.dtype == np.uint8 else (raw[..., 2::-1] >> 8).astype(np.int64)
            key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            own = set((r << 16) | (g << 8) | b for r, g, b in self.colors)
            bad = [int(k) for k in np.unique(key[mapped == IGNORE_INDEX]) if int(k) not in own]
            unknown = int(np.isin(key, bad).sum()) if bad else 0
            return unknown, int(key.size), [f"#{k:06x}" for k in bad]
        label = load_label(path, channel=channel)
        bad = self.unknown_ids_in(label)
        unknown = int(np.isin(label, bad).sum()) if bad else 0
        return unknown, int(label.size), [str(k) for k in bad]

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """Class-index label (HxW) -> RGB colour mask (HxWx3 uint8) in this table's colours;
        ignore (255) is black (:func:`phgmm.visualize.colorize`)."""
        return colorize(label, self.colors)


#: why a JPEG label map holds ids (or colours) no class has, and what to do
LOSSY_NOTE = (
    "a JPEG label map: lossy compression blurs every edge into ids (or colours) that no class has, "
    "so it cannot be read exactly. Save the masks as PNG (lossless); data.unknown_ids=ignore "
    "would drop those edge pixels from the loss and the scores"
)


def is_lossy(path: str | Path | None) -> bool:
    """A label file in a lossy format (JPEG; WebP is read as lossless)."""
    return path is not None and Path(path).suffix.lower() in (".jpg", ".jpeg")


def is_colour_mask(raw: np.ndarray) -> bool:
    """A label file read as stored that holds colours: three or four channels, not all equal."""
    if raw.ndim != 3 or raw.shape[2] < 3:
        return False
    c0 = raw[..., 0]
    return not (np.array_equal(c0, raw[..., 1]) and np.array_equal(c0, raw[..., 2]))


# ---------------------------------------------------------------------------------------------
# loading


def builtin_table_path(name: str) -> Path:
    return TABLE_DIR / f"{name}.yaml"


def _parse_color(value, where: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("#") and len(s) == 7:
            return tuple(int(s[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        parts = [p for p in re.split(r"[\s;,/]+", s) if p]
        value = parts
    try:
        rgb = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{where}: colour {value!r} is not an RGB triple (expected [r, g, b], 'r g b' or '#rrggbb')"
        ) from None
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise DatasetError(f"{where}: colour {value!r} is not an RGB triple of 0..255 values")
    return rgb  # type: ignore[return-value]


def _parse_ids(value, where: str) -> list[int]:
    if value is None or value == "":
        return []
    if isinstance(value, (int, np.integer)):
        return [int(value)]
    if isinstance(value, str):
        value = [p for p in re.split(r"[\s;,]+", value.strip()) if p]
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: ids {value!r} are not integers") from None


def _default_color(name: str, index: int) -> tuple[int, int, int]:
    if name in PHGMM_CLASS_NAMES:
        return PHGMM_COLORS[PHGMM_CLASS_NAMES.index(name)]
    rng = np.random.default_rng(index + 1000)
    return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _cityscapes_name_to_id() -> dict[str, int]:
    from cityscapesscripts.helpers.labels import labels as cs_labels

    return {lab.name: int(lab.id) for lab in cs_labels}


#: the keys of a YAML class table
TABLE_KEYS = ("name", "classes", "ignore_ids", "miou_exclude", "id_source")


def _table_from_dict(data: dict, source: str) -> ClassTable:
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list) or not data["classes"]:
        raise DatasetError(
            f"class table {source}: expected a mapping with a non-empty 'classes' list (each entry: name, ids, color)"
        )
    id_source = data.get("id_source")
    name_to_id = _cityscapes_name_to_id() if id_source == "cityscapesscripts" else None
    if id_source not in (None, "cityscapesscripts"):
        raise DatasetError(f"class table {source}: unknown id_source {id_source!r} (supported: cityscapesscripts)")
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    id_to_class: dict[int, int] = {}
    rest_class: int | None = None
    for idx, entry in enumerate(data["classes"]):
        where = f"class table {source}, class #{idx}"
        if not isinstance(entry, dict) or "name" not in entry:
            raise DatasetError(f"{where}: expected a mapping with at least a 'name' key")
        cname = str(entry["name"])
        names.append(cname)
        colors.append(
            _parse_color(entry["color"], where) if entry.get("color") is not None else _default_color(cname, idx)
        )
        ids = _parse_ids(entry.get("ids", entry.get("source_ids")), where)
        if "names" in entry:
            if name_to_id is None:
                raise DatasetError(f"{where}: 'names' needs 'id_source: cityscapesscripts'")
            if entry["names"] == "*":
                rest_class = idx
            else:
                for n in entry["names"]:
                    if n not in name_to_id:
                        raise DatasetError(f"{where}: '{n}' is not a Cityscapes label name")
                    ids.append(name_to_id[n])
        for nid in ids:
            if nid in id_to_class and id_to_class[nid] != idx:
                raise DatasetError(f"{where}: native id {nid} already mapped to class '{names[id_to_class[nid]]}'")
            id_to_class[nid] = idx
    ignore_ids = _parse_ids(data.get("ignore_ids"), f"class table {source}, ignore_ids")
    if rest_class is not None:
        for nid in name_to_id.values():  # type: ignore[union-attr]
            if nid not in id_to_class and nid not in ignore_ids:
                id_to_class[nid] = rest_class
    for key in data:  # a misspelt miou_exclude would silently score every class
        near = difflib.get_close_matches(str(key), TABLE_KEYS, n=1, cutoff=0.7)
        if key not in TABLE_KEYS and near:
            raise DatasetError(
                f"class table {source}: unknown key {key!r}; did you mean {near[0]}? "
                f"(a table takes {', '.join(TABLE_KEYS)})"
            )
    raw = data.get("miou_exclude")  # None when absent; a bare 0 is class 0, not "none"
    exclude = resolve_classes([] if raw is None else raw, names, f"class table {source}, miou_exclude")
    return ClassTable(
        name=str(data.get("name", Path(source).stem)),
        names=names,
        colors=colors,
        id_to_class=id_to_class,
        ignore_ids=ignore_ids,
        source=source,
        miou_exclude=exclude,
    )


def resolve_classes(values, names: list[str], where: str) -> tuple[int, ...]:
    """Class names or indices (``[background]``, ``[0]``, ``"road"``) → sorted class indices;
    one that names no class is a :class:`DatasetError` listing the classes."""
    if isinstance(values, (str, int)):
        values = [values]
    out = set()
    for v in values:
        text = str(v).strip()
        if text in names:
            out.add(names.index(text))
        elif text.isdigit() and int(text) < len(names):
            out.add(int(text))
        else:
            raise DatasetError(
                f"{where}: {v!r} is not a class of the table (classes: {', '.join(names)}; "
                f"or an index 0..{len(names) - 1})"
            )
    return tuple(sorted(out))


def _table_from_csv(path: Path) -> ClassTable:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DatasetError(f"class table {path}: empty CSV (expected a header 'name,ids,color' and one row per class)")
    keys = {k.strip().lower(): k for k in rows[0].keys() if k}
    if "name" not in keys:
        raise DatasetError(f"class table {path}: CSV has no 'name' column (expected columns name, ids, color)")
    id_key = next((keys[k] for k in ("ids", "source_ids", "source ids", "id") if k in keys), None)
    col_key = next((keys[k] for k in ("color", "colour", "rgb") if k in keys), None)
    classes, ignore_ids = [], []
    for row in rows:
        name = (row[keys["name"]] or "").strip()
        if not name:
            continue
        ids = row.get(id_key, "") if id_key else ""
        if name.lower() in ("ignore", "_ignore", "void_ignore"):
            ignore_ids += _parse_ids(ids, f"class table {path}, row 'ignore'")
            continue
        entry = {"name": name, "ids": ids}
        if col_key and (row.get(col_key) or "").strip():
            entry["color"] = row[col_key]
        classes.append(entry)
    return _table_from_dict({"name": path.stem, "classes": classes, "ignore_ids": ignore_ids}, str(path))


def load_class_table(spec: str | Path | ClassTable) -> ClassTable:
    """Load a class table from a YAML/CSV path or a built-in name.

    Built-in names: ``"phgmm12"``, ``"cityscapes"``, ``"synthia"``, ``"camvid"``.
    """
    if isinstance(spec, ClassTable):
        return spec
    s = str(spec)
    if s in BUILTIN_TABLES and not Path(s).exists():
        path = builtin_table_path(s)
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise DatasetError(
            f"class table {path}: file not found (expected a .yaml/.yml/.csv file or "
            f"one of the built-in names {', '.join(BUILTIN_TABLES)})"
        )
    try:
        if path.suffix.lower() == ".csv":
            return _table_from_csv(path)
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, csv.Error) as e:
        raise DatasetError(f"class table {path}: cannot be read ({e})") from None
    return _table_from_dict(data, str(path))


def _load_palette() -> tuple[list[str], list[tuple[int, int, int]]]:
    with open(builtin_table_path("phgmm12"), encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return ([str(c["name"]) for c in data["classes"]], [tuple(int(v) for v in c["color"]) for c in data["classes"]])  # type: ignore[misc]


#: The 12 class names in network output order and their colours (read from ``tables/phgmm12.yaml``).
PHGMM_CLASS_NAMES, PHGMM_COLORS = _load_palette()
