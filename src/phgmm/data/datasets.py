"""Segmentation data sets: Cityscapes, SYNTHIA RAND-CITYSCAPES, CamVid and a user folder.

Every data set returns ``(image, label)`` with ``image`` a float32 ``3xHxW`` tensor normalised
with the ImageNet mean/std and ``label`` an int64 ``HxW`` tensor of class indices ``0..11``
(255 = ignore), mapped from the native ids through a class table (``phgmm/data/tables``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..conventions import UNKNOWN_IDS
from .classes import IGNORE_INDEX, ClassTable, is_colour_mask, load_class_table
from .errors import DatasetError
from .imageio import IMAGE_EXTENSIONS, imread_label, list_images, load_image
from .transforms import Augment, normalize, resize_pair, sample_rng

__all__ = [
    "DatasetError",
    "SegmentationDataset",
    "CityscapesDataset",
    "SynthiaDataset",
    "CamVidDataset",
    "FolderDataset",
    "build_dataset",
    "synthia_split",
    "check_disjoint_splits",
    "DATASET_NAMES",
]

DATASET_NAMES = ("cityscapes", "synthia", "camvid", "folder")
IMAGE_EXTS = IMAGE_EXTENSIONS  # older name; the list lives in phgmm.data.imageio


def _check_root(root: str | Path, kind: str, expected: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: {kind} root does not exist (expected {expected})")
    if not root.is_dir():
        raise DatasetError(f"{root}: {kind} root is not a folder (expected {expected})")
    return root


def _need_dir(path: Path, kind: str, expected: str, root: Path) -> Path:
    if not path.is_dir():
        what = "is empty" if not any(root.iterdir()) else "has the wrong layout"
        raise DatasetError(f"{path}: expected sub-folder is missing ({kind} root {what}; expected {expected})")
    return path


def _check_same_size(rgb: np.ndarray, label: np.ndarray, img_path: Path, lab_path: Path) -> None:
    if label.shape[:2] != rgb.shape[:2]:
        raise DatasetError(
            f"{lab_path}: label map is {label.shape[1]}x{label.shape[0]} but its image "
            f"{img_path} is {rgb.shape[1]}x{rgb.shape[0]} (expected equal sizes)"
        )


def _unpaired_error(kind: str, path: Path, partner: Path | str, missing: str) -> DatasetError:
    return DatasetError(f"{path}: {kind} has no matching {missing} (expected {partner})")


class SegmentationDataset(Dataset):
    """Base class: a list of (image, label) files, a class table and the transforms.

    Args:
        files: list of ``(image_path, label_path)``.
        class_table: a :class:`ClassTable`, a YAML/CSV path or a built-in table name.
        size: output ``(W, H)``; ``None`` keeps each file's own size.
        augment: apply the training augmentation (:class:`~phgmm.data.transforms.Augment`).
        seed: base seed of the per-sample augmentation generator ``(seed, epoch, index)``.
        unknown_ids: ``"error"`` (default) raises :class:`DatasetError` on label ids that are not
            in the class table; ``"ignore"`` maps them to 255.
        label_channel: ``"single"`` or ``"red"`` (multi-channel label files, SYNTHIA).
    """

    num_classes: int
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        files,
        class_table,
        size=(768, 384),
        augment=False,
        seed=0,
        unknown_ids="error",
        label_channel="single",
        augmentation: Augment | None = None,
    ):
        if unknown_ids not in UNKNOWN_IDS:
            raise ValueError(f"unknown_ids must be 'error' or 'ignore', got {unknown_ids!r}")
        self.files: list[tuple[Path, Path]] = [(Path(a), Path(b)) for a, b in files]
        self.table: ClassTable = load_class_table(class_table)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.augment = bool(augment)
        self.augmentation = augmentation or Augment()
        self.seed = int(seed)
        self.epoch = 0
        self.unknown_ids = unknown_ids
        self.label_channel = label_channel

    # -- public attributes -------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.table.names)

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        return list(self.table.colors)

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.table.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream; call before each epoch (workers copy the value)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    # -- loading -----------------------------------------------------------------------------
    def load_pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Native-resolution RGB uint8 image and class-index uint8 label (no resize)."""
        img_path, lab_path = self.files[i]
        rgb = load_image(img_path)
        lab = self.table.read_label(lab_path, unknown=self.unknown_ids, channel=self.label_channel)
        _check_same_size(rgb, lab, img_path, lab_path)
        return rgb, lab

    def load_raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Resized RGB uint8 HxWx3 and class-index uint8 HxW label, without augmentation."""
        rgb, lab = self.load_pair(i)
        return resize_pair(rgb, lab, self.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        if self.augment:
            rgb, lab = self.load_pair(i)
            rgb, lab = self.augmentation(rgb, lab, self.size, sample_rng(self.seed, self.epoch, i))
        else:
            rgb, lab = self.load_raw(i)
        return normalize(rgb), torch.from_numpy(lab.astype(np.int64))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, size={self.size}, augment={self.augment}, table={self.table.name!r})"
        )


class CityscapesDataset(SegmentationDataset):
    """Cityscapes in its official layout.

    ``root/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png`` paired with
    ``root/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png``. Native ids (0..33) are mapped to
    the 12 classes by the ``cityscapes`` class table, whose ids come from
    ``cityscapesscripts.helpers.labels``.
    """

    LAYOUT = "leftImg8bit/{split}/{city}/*_leftImg8bit.png and gtFine/{split}/{city}/*_gtFine_labelIds.png"

    def __init__(
        self, root, split="train", size=(768, 384), augment=False, seed=0, unknown_ids="error", class_table=None, **kw
    ):
        root = _check_root(root, "Cityscapes", self.LAYOUT)
        img_dir = _need_dir(root / "leftImg8bit" / split, "Cityscapes", self.LAYOUT, root)
        gt_dir = _need_dir(root / "gtFine" / split, "Cityscapes", self.LAYOUT, root)
        images = sorted(img_dir.glob("*/*_leftImg8bit.png"))
        if not images:
            raise DatasetError(f"{img_dir}: no *_leftImg8bit.png images found (expected {self.LAYOUT})")
        labels = sorted(gt_dir.glob("*/*_gtFine_labelIds.png"))
        lab_set = set(labels)
        files = []
        for im in images:
            stem = im.name[: -len("_leftImg8bit.png")]
            lab = gt_dir / im.parent.name / f"{stem}_gtFine_labelIds.png"
            if lab not in lab_set:
                raise _unpaired_error("image", im, lab, "label map")
            files.append((im, lab))
        img_set = set(images)
        for lab in labels:
            stem = lab.name[: -len("_gtFine_labelIds.png")]
            im = img_dir / lab.parent.name / f"{stem}_leftImg8bit.png"
            if im not in img_set:
                raise _unpaired_error("label map", lab, im, "image")
        super().__init__(files, class_table or "cityscapes", size, augment, seed, unknown_ids, **kw)


def synthia_split(n: int, split: str) -> slice:
    """Deterministic SYNTHIA split over ``n`` sorted files (see :class:`SynthiaDataset`)."""
    if n >= 9000:
        n_train, n_val = 7000, 2000
    else:
        n_train = int(round(n * 7 / 9))
        if n >= 2:
            n_train = min(max(n_train, 1), n - 1)
        n_val = n - n_train
    bounds = {
        "train": slice(0, n_train),
        "val": slice(n_train, n_train + n_val),
        "test": slice(n_train + n_val, n),
        "all": slice(0, n),
    }
    if split not in bounds:
        raise DatasetError(f"unknown SYNTHIA split {split!r} (expected train, val, test or all)")
    return bounds[split]


class SynthiaDataset(SegmentationDataset):
    """SYNTHIA RAND-CITYSCAPES: ``root/RGB/*.png`` paired by file name with ``root/GT/LABELS/*.png``.

    Labels are 16-bit multi-channel PNGs read with OpenCV (``IMREAD_UNCHANGED``); the class id is
    the red channel. Split rule (the paper's 7,000 / 2,000): file names are sorted; with 9,000
    or more pairs the first 7,000 are ``train``, the next 2,000 ``val`` and any rest ``test``;
    with fewer, the pairs are split 7:2 — ``train`` is the first ``round(n * 7 / 9)`` (at least
    one, leaving at least one for ``val``) and ``val`` the rest (``test`` is empty). ``all``
    gives every pair.
    """

    LAYOUT = "RGB/*.png and GT/LABELS/*.png with the same file names"

    def __init__(
        self, root, split="train", size=(768, 384), augment=False, seed=0, unknown_ids="error", class_table=None, **kw
    ):
        root = _check_root(root, "SYNTHIA", self.LAYOUT)
        rgb_dir = _need_dir(root / "RGB", "SYNTHIA", self.LAYOUT, root)
        gt_dir = _need_dir(root / "GT" / "LABELS", "SYNTHIA", self.LAYOUT, root)
        images = list_images(rgb_dir)
        if not images:
            raise DatasetError(f"{rgb_dir}: no images found (expected {self.LAYOUT})")
        labels = {p.stem: p for p in list_images(gt_dir)}
        files = []
        for im in images:
            if im.stem not in labels:
                raise _unpaired_error("image", im, gt_dir / f"{im.stem}.png", "label map")
            files.append((im, labels[im.stem]))
        img_stems = {p.stem for p in images}
        for stem, lab in sorted(labels.items()):
            if stem not in img_stems:
                raise _unpaired_error("label map", lab, rgb_dir / lab.name, "image")
        files = files[synthia_split(len(files), split)]
        kw.setdefault("label_channel", "red")
        super().__init__(files, class_table or "synthia", size, augment, seed, unknown_ids, **kw)


class CamVidDataset(SegmentationDataset):
    """CamVid in the SegNet layout: ``root/{split}/*.png`` paired by name with ``root/{split}annot/*.png``.

    Labels 0..10 (Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car, Pedestrian,
    Bicyclist) map to the 11 named classes; 11 (Unlabelled) is ignored (255).
    """

    LAYOUT = "{split}/*.png and {split}annot/*.png (SegNet layout: train, val, test)"

    def __init__(
        self, root, split="train", size=(768, 384), augment=False, seed=0, unknown_ids="error", class_table=None, **kw
    ):
        root = _check_root(root, "CamVid", self.LAYOUT)
        img_dir = _need_dir(root / split, "CamVid", self.LAYOUT, root)
        ann_dir = _need_dir(root / f"{split}annot", "CamVid", self.LAYOUT, root)
        files = _pair_by_stem(img_dir, ann_dir, self.LAYOUT)
        super().__init__(files, class_table or "camvid", size, augment, seed, unknown_ids, **kw)


def _pair_by_stem(img_dir: Path, mask_dir: Path, layout: str) -> list[tuple[Path, Path]]:
    images = list_images(img_dir)
    if not images:
        raise DatasetError(f"{img_dir}: no images found (expected {layout})")
    masks: dict[str, Path] = {}
    for p in list_images(mask_dir):
        masks.setdefault(p.stem, p)
    files = []
    for im in images:
        m = masks.get(im.stem)
        if m is None:
            raise _unpaired_error("image", im, mask_dir / f"{im.stem}.png", "label map")
        files.append((im, m))
    stems = {p.stem for p in images}
    for stem, m in sorted(masks.items()):
        if stem not in stems:
            raise _unpaired_error("label map", m, img_dir / f"{stem}.*", "image")
    return files


class FolderDataset(SegmentationDataset):
    """A user's own data: images in ``images_dir``, label maps in ``masks_dir``, paired by stem.

    ``images_dir/abc.jpg`` pairs with ``masks_dir/abc.png`` (any image extension). Label maps
    hold one integer id per pixel (8- or 16-bit, single channel); ``class_table`` (a YAML/CSV
    path or a built-in name such as ``"phgmm12"``) maps those ids to classes. Colour masks
    (RGB files whose colours are the table's colours) are also accepted: each colour becomes
    its class and any other colour is treated as an unknown id.
    """

    LAYOUT = "images and label maps with the same file stems"

    def __init__(
        self, images_dir, masks_dir, class_table, size=(768, 384), augment=False, seed=0, unknown_ids="error", **kw
    ):
        if class_table is None:
            raise DatasetError(NEEDS_TABLE)
        images_dir = _check_root(images_dir, "image", self.LAYOUT)
        masks_dir = _check_root(masks_dir, "label-map", self.LAYOUT)
        files = _pair_by_stem(images_dir, masks_dir, self.LAYOUT)
        super().__init__(files, class_table, size, augment, seed, unknown_ids, **kw)

    def load_pair(self, i):
        img_path, lab_path = self.files[i]
        raw = imread_label(lab_path)
        rgb = load_image(img_path)
        _check_same_size(rgb, raw, img_path, lab_path)
        if is_colour_mask(raw):
            return rgb, self.table.map_colors(raw, unknown=self.unknown_ids, path=lab_path)
        if raw.ndim == 3:
            raw = np.ascontiguousarray(raw[..., 0])
        return rgb, self.table.map(raw, unknown=self.unknown_ids, path=lab_path)


#: a folder data set without a class table: the key to set, and what it holds
NEEDS_TABLE = (
    "a folder data set needs a class table: --set data.class_table=FILE (a YAML/CSV file with name, "
    "ids and color per class, or a built-in name such as 'phgmm12'; from Python, class_table=...)"
)

#: the split sub-folder names a folder data set is looked for in (besides the ones a config names)
SPLIT_NAMES = ("train", "val", "test")


def _folder_layout(root, masks_root, split: str) -> tuple[Path, Path]:
    """The images and label-map folders of ``split`` of a folder data set, or a :class:`DatasetError`
    that names the layout mistake: ``data.root`` one folder too high (it holds ``images/``), a
    split sub-folder that is missing beside the others, a label-map folder that is not there."""
    images = Path(root).expanduser()
    masks = Path(masks_root).expanduser() if masks_root is not None else images.parent / "masks"
    if images.is_dir():
        if (images / "images").is_dir() and not list_images(images) and not (images / split).is_dir():
            raise DatasetError(
                f"{images}: holds images/{' and masks/' if (images / 'masks').is_dir() else ''}: "
                f"data.root is the folder of the images themselves, --set data.root={images / 'images'}"
            )
        if split and (images / split).is_dir():
            images, masks = images / split, masks / split
        elif split and not list_images(images):
            subs = sorted(d.name for d in images.iterdir() if d.is_dir() and not d.name.startswith("."))
            if subs:
                raise DatasetError(
                    f"{images / split}: the '{split}' split is missing "
                    f"({images} holds {', '.join(f'{d}/' for d in subs)}); "
                    f"add {images / split} and {masks / split}, name another split (data.train_split / "
                    f"data.val_split), or train without validation (--set train.val_every=0)"
                )
    if images.is_dir() and not masks.exists():
        hint = (
            "data.masks_root"
            if masks_root is not None
            else f"by default the folder 'masks' beside the images, data.root={Path(root).expanduser()}"
        )
        if images.name in SPLIT_NAMES + (split,) and (images.parent.parent / "masks" / images.name).is_dir():
            hint += (
                f"; data.root names the '{images.name}' split folder itself: point it at the folder holding "
                f"the splits, --set data.root={images.parent}"
            )
        raise DatasetError(f"{masks}: label-map folder does not exist ({hint}; or --set data.masks_root=DIR)")
    return images, masks


def build_dataset(
    name: str,
    root,
    split: str,
    size=(768, 384),
    augment: bool = False,
    seed: int = 0,
    unknown_ids: str = "error",
    class_table=None,
    masks_root=None,
) -> SegmentationDataset:
    """Build a data set by name: ``cityscapes``, ``synthia``, ``camvid`` or ``folder``.

    ``size`` is ``(W, H)`` (``None`` keeps native sizes). ``class_table`` overrides the data
    set's built-in table (YAML/CSV path or built-in name).

    For ``folder``: ``root`` is the images folder; label maps come from ``masks_root`` or, when
    that is ``None``, from the sibling folder ``root/../masks``. If ``root`` contains a
    sub-folder named ``split`` (e.g. ``images/train`` with ``masks/train``) that sub-folder is
    used on both sides; a ``root`` without split sub-folders gives the same files for every split
    (training refuses to validate on them, see :func:`check_disjoint_splits`). ``class_table``
    is required.
    """
    key = name.lower()
    if key == "cityscapes":
        return CityscapesDataset(root, split, size, augment, seed, unknown_ids, class_table)
    if key == "synthia":
        return SynthiaDataset(root, split, size, augment, seed, unknown_ids, class_table)
    if key == "camvid":
        return CamVidDataset(root, split, size, augment, seed, unknown_ids, class_table)
    if key == "folder":
        if class_table is None:
            raise DatasetError(NEEDS_TABLE)
        images, masks = _folder_layout(root, masks_root, split)
        return FolderDataset(images, masks, class_table, size, augment, seed, unknown_ids)
    raise DatasetError(f"unknown data set {name!r} (expected one of {', '.join(DATASET_NAMES)})")


def check_disjoint_splits(
    train: SegmentationDataset, val: SegmentationDataset, root, train_split: str = "train", val_split: str = "val"
) -> None:
    """Refuse a validation split that holds training images: a folder data set without ``train/``
    and ``val/`` sub-folders (or ``data.root`` pointed at ``images/train``) gives the same files for
    both, and best.pt would be chosen on, and val mIoU measure, the images the model trains on."""
    seen = {Path(a).resolve() for a, _ in train.files}
    shared = [a for a, _ in val.files if Path(a).resolve() in seen]
    if not shared:
        return
    folder = Path(shared[0]).parent
    same = "the same" if len(shared) == len(val.files) == len(train.files) else f"{len(shared)} of the"
    where = f"{folder} has no '{train_split}' and '{val_split}' sub-folders"
    if folder.name in SPLIT_NAMES and (folder.parent / val_split).is_dir() and folder.name != val_split:
        where = (
            f"data.root names the '{folder.name}' split folder itself: point it at the folder holding "
            f"the splits, --set data.root={folder.parent}"
        )
    raise DatasetError(
        f"data.root={root}: validation would use {same} {len(train.files)} images as training ({where}), so "
        f"best.pt would be chosen on, and val mIoU measure, the training images. Put them in "
        f"images/{train_split} and images/{val_split} (with masks/{train_split}, masks/{val_split}), or train "
        f"without validation (--set train.val_every=0)"
    )
