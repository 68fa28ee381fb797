"""Data set loaders on small fixtures in the real on-disk formats, error cases, augmentation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from phgmm.data import (
    CamVidDataset,
    CityscapesDataset,
    DatasetError,
    FolderDataset,
    SynthiaDataset,
    build_dataset,
    denormalize,
    load_image,
    normalize,
    preprocess,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
W, H = 64, 32


def _img(rng, h=H, w=W):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_cityscapes(root: Path, n=2, split="train", ids=(7, 8, 11, 23, 26, 33, 0)):
    rng = np.random.default_rng(0)
    for i in range(n):
        d_i = root / "leftImg8bit" / split / "aachen"
        d_g = root / "gtFine" / split / "aachen"
        d_i.mkdir(parents=True, exist_ok=True)
        d_g.mkdir(parents=True, exist_ok=True)
        stem = f"aachen_{i:06d}_000019"
        cv2.imwrite(str(d_i / f"{stem}_leftImg8bit.png"), _img(rng))
        lab = np.array(ids, np.uint8)[rng.integers(0, len(ids), (H, W))]
        cv2.imwrite(str(d_g / f"{stem}_gtFine_labelIds.png"), lab)
    return root


def make_synthia(root: Path, n=9):
    rng = np.random.default_rng(1)
    (root / "RGB").mkdir(parents=True)
    (root / "GT" / "LABELS").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "RGB" / f"{i:07d}.png"), _img(rng))
        lab = np.zeros((H, W, 3), np.uint16)
        lab[:, :, 2] = rng.choice([0, 1, 3, 11, 17, 18, 22], (H, W))  # red = class id
        lab[:, :, 1] = rng.integers(0, 3000, (H, W))  # instance ids: must be ignored
        lab[:, :, 0] = 7
        cv2.imwrite(str(root / "GT" / "LABELS" / f"{i:07d}.png"), lab)
    return root


def make_camvid(root: Path, n=2, split="train"):
    rng = np.random.default_rng(2)
    (root / split).mkdir(parents=True)
    (root / f"{split}annot").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / split / f"f{i}.png"), _img(rng))
        cv2.imwrite(str(root / f"{split}annot" / f"f{i}.png"), rng.integers(0, 12, (H, W), dtype=np.uint8))
    return root


def test_cityscapes_loader(tmp_path):
    root = make_cityscapes(tmp_path)
    ds = CityscapesDataset(root, "train", size=(32, 16))
    assert len(ds) == 2 and ds.num_classes == 12 and ds.ignore_index == 255
    assert ds.class_names[3] == "road" and len(ds.colors) == 12
    x, y = ds[0]
    assert x.shape == (3, 16, 32) and x.dtype == torch.float32
    assert y.shape == (16, 32) and y.dtype == torch.int64
    assert set(y.unique().tolist()) <= {0, 1, 2, 3, 4, 8, 11}
    rgb, lab = ds.load_raw(1)
    assert rgb.shape == (16, 32, 3) and rgb.dtype == np.uint8 and lab.dtype == np.uint8
    # native resolution: mapping is exact
    ds = CityscapesDataset(root, "train", size=None)
    raw = cv2.imread(str(ds.files[0][1]), cv2.IMREAD_UNCHANGED)
    lut = {7: 3, 8: 4, 11: 2, 23: 1, 26: 8, 33: 11, 0: 0}
    np.testing.assert_array_equal(ds[0][1].numpy(), np.vectorize(lut.get)(raw))


def test_synthia_loader_and_split(tmp_path):
    root = make_synthia(tmp_path / "syn", n=9)
    tr, va = SynthiaDataset(root, "train", size=None), SynthiaDataset(root, "val", size=None)
    assert [p.name for p, _ in tr.files] == [f"{i:07d}.png" for i in range(7)]
    assert [p.name for p, _ in va.files] == ["0000007.png", "0000008.png"]
    raw = cv2.imread(str(tr.files[0][1]), cv2.IMREAD_UNCHANGED)[:, :, 2]
    lut = {0: 0, 1: 1, 3: 3, 11: 11, 17: 11, 18: 8, 22: 3}
    np.testing.assert_array_equal(tr[0][1].numpy(), np.vectorize(lut.get)(raw))
    from phgmm.data import synthia_split

    assert synthia_split(9400, "train") == slice(0, 7000)
    assert synthia_split(9400, "val") == slice(7000, 9000)
    s = synthia_split(90, "train")
    assert s.stop == 70


def test_camvid_loader(tmp_path):
    root = make_camvid(tmp_path / "cv")
    ds = build_dataset("camvid", root, "train", size=None)
    raw = cv2.imread(str(ds.files[0][1]), cv2.IMREAD_UNCHANGED)
    lut = [1, 2, 7, 3, 4, 6, 9, 5, 8, 10, 11, 255]
    np.testing.assert_array_equal(ds[0][1].numpy(), np.array(lut)[raw])


def test_folder_dataset_id_and_colour_masks(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), _img(rng))
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), rng.integers(0, 3, (H, W), dtype=np.uint8) * 10)
    table = tmp_path / "t.csv"
    table.write_text("name,ids,color\nbackground,0,0 0 0\nroad,10,128 64 128\ncar,20,0 0 142\n")
    ds = build_dataset("folder", tmp_path / "images", "train", size=None, class_table=table)
    assert ds.class_names == ["background", "road", "car"] and ds.num_classes == 3
    y = ds[0][1].numpy()
    raw = cv2.imread(str(tmp_path / "masks" / "a.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(y, raw // 10)
    # colour masks: the table's colours
    col = np.array([(0, 0, 0), (128, 64, 128), (0, 0, 142)], np.uint8)[raw // 10]
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), col[:, :, ::-1])
    np.testing.assert_array_equal(
        FolderDataset(tmp_path / "images", tmp_path / "masks", table, size=None)[0][1].numpy(), raw // 10
    )


# ---------------------------------------------------------------------------------------------
# errors


def test_error_root_missing_or_empty(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        CityscapesDataset(tmp_path / "nothing", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"leftImg8bit.train.*empty"):
        CityscapesDataset(tmp_path / "empty", "train")
    with pytest.raises(DatasetError, match=r"RGB"):
        SynthiaDataset(tmp_path / "empty", "train")
    with pytest.raises(DatasetError, match=r"trainannot|train"):
        CamVidDataset(tmp_path / "empty", "train")
    make_cityscapes(tmp_path / "cs")
    with pytest.raises(DatasetError, match=r"gtFine.val|leftImg8bit.val"):
        CityscapesDataset(tmp_path / "cs", "val")


def test_error_unpaired(tmp_path):
    root = make_cityscapes(tmp_path / "a")
    lab = next((root / "gtFine").rglob("*labelIds.png"))
    lab.unlink()
    with pytest.raises(DatasetError, match="image has no matching label map"):
        CityscapesDataset(root, "train")
    root = make_cityscapes(tmp_path / "b")
    img = next((root / "leftImg8bit").rglob("*.png"))
    img.unlink()
    with pytest.raises(DatasetError, match="label map has no matching image"):
        CityscapesDataset(root, "train")
    root = make_camvid(tmp_path / "c")
    (root / "trainannot" / "f1.png").unlink()
    with pytest.raises(DatasetError, match=r"f1.png: image has no matching label map"):
        CamVidDataset(root, "train")


def test_error_truncated_and_size_mismatch(tmp_path):
    root = make_camvid(tmp_path / "c")
    p = root / "train" / "f0.png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    ds = CamVidDataset(root, "train", size=None)
    with pytest.raises(DatasetError, match=r"f0.png.*cannot decode"):
        ds[0]
    (root / "train" / "f1.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot decode"):
        ds[1]
    root = make_camvid(tmp_path / "d")
    cv2.imwrite(str(root / "trainannot" / "f0.png"), np.zeros((H + 2, W), np.uint8))
    with pytest.raises(DatasetError, match=r"label map is 64x34 but its image .* is 64x32"):
        CamVidDataset(root, "train")[0]


def test_error_unknown_ids(tmp_path):
    root = make_cityscapes(tmp_path, ids=(7, 99))
    ds = CityscapesDataset(root, "train", size=None)
    with pytest.raises(DatasetError, match=r"labelIds.png: label ids \[99\] are not in class table"):
        ds[0]
    ds = build_dataset("cityscapes", root, "train", size=None, unknown_ids="ignore")
    assert set(ds[0][1].unique().tolist()) <= {3, 255}


def test_image_conversions(tmp_path):
    rng = np.random.default_rng(4)
    g = rng.integers(0, 256, (H, W), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    a = load_image(tmp_path / "g.png")
    assert a.shape == (H, W, 3) and a.dtype == np.uint8 and (a[..., 0] == g).all()
    rgba = np.dstack([_img(rng), np.full((H, W), 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    b = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(b, rgba[:, :, 2::-1])
    i16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c.png"), i16)
    c = load_image(tmp_path / "c.png")
    np.testing.assert_array_equal(c, (i16 >> 8).astype(np.uint8)[:, :, ::-1])
    # a data set with a gray 16-bit image still loads
    root = make_camvid(tmp_path / "cv")
    cv2.imwrite(str(root / "train" / "f0.png"), (g.astype(np.uint16) * 257))
    x, _ = CamVidDataset(root, "train", size=None)[0]
    assert x.shape == (3, H, W)


def test_normalize_roundtrip_and_preprocess():
    rgb = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(denormalize(normalize(rgb)), rgb)
    assert preprocess(rgb, (32, 16)).shape == (3, 16, 32)


# ---------------------------------------------------------------------------------------------
# augmentation


def _coded_root(tmp_path):
    """Image whose colour encodes the label: the label must follow the image through augmentation."""
    root = tmp_path / "cv"
    (root / "train").mkdir(parents=True)
    (root / "trainannot").mkdir(parents=True)
    rng = np.random.default_rng(6)
    lab = np.zeros((96, 128), np.uint8)
    for _ in range(12):  # blocks of classes 0..10
        x, y = rng.integers(0, 110), rng.integers(0, 80)
        lab[y : y + 20, x : x + 24] = rng.integers(0, 11)
    img = np.stack([lab * 20 + 20] * 3, -1).astype(np.uint8)
    cv2.imwrite(str(root / "train" / "a.png"), img)
    cv2.imwrite(str(root / "trainannot" / "a.png"), lab)
    return root


def test_augmentation_keeps_alignment(tmp_path):
    from phgmm.data.classes import load_class_table

    root = _coded_root(tmp_path)
    ds = CamVidDataset(root, "train", size=(64, 48), augment=True, seed=3)
    ds.augmentation.brightness = ds.augmentation.contrast = 0.0
    inv = {int(c): n for n, c in enumerate(load_class_table("camvid").lut[:11])}
    plain = ds.load_raw(0)[1]
    moved = 0
    for epoch in range(6):
        ds.set_epoch(epoch)
        x, y = ds[0]
        rgb = denormalize(x)[:, :, 0].astype(int)
        native = np.vectorize(inv.get)(y.numpy())
        expected = native * 20 + 20
        ok = np.abs(rgb - expected) <= 2
        assert ok.mean() > 0.85, ok.mean()  # only boundary pixels may differ (bilinear vs nearest)
        moved += not np.array_equal(y.numpy(), plain)
    assert moved >= 4  # the geometry really changes between epochs


def test_augmentation_reproducible(tmp_path):
    root = _coded_root(tmp_path)
    a = CamVidDataset(root, "train", size=(64, 48), augment=True, seed=1)
    b = CamVidDataset(root, "train", size=(64, 48), augment=True, seed=1)
    for ds in (a, b):
        ds.set_epoch(2)
    xa, ya = a[0]
    xb, yb = b[0]
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    outs = []
    for e in range(4):
        a.set_epoch(e)
        outs.append(a[0][0])
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # epochs differ
    c = CamVidDataset(root, "train", size=(64, 48), augment=True, seed=2)
    c.set_epoch(2)
    assert not torch.equal(c[0][0], xa)


def test_dataloader_workers_reproducible(tmp_path):
    from torch.utils.data import DataLoader

    root = _coded_root(tmp_path)
    ds = CamVidDataset(root, "train", size=(64, 48), augment=True, seed=1)
    ds.set_epoch(1)
    ref = ds[0][0]
    dl = DataLoader(ds, batch_size=1, num_workers=1)
    x, _ = next(iter(dl))
    assert torch.equal(x[0], ref)


# ---------------------------------------------------------------------------------------------
# real data (skipped when ../shared/realdata is absent)


@pytest.mark.skipif(not (REAL / "cityscapes-frame").is_dir(), reason="shared/realdata not present")
def test_real_cityscapes_frame():
    from cityscapesscripts.helpers.labels import labels

    root = REAL / "cityscapes-frame"
    ds = CityscapesDataset(root, "val", size=None)
    assert len(ds) == 1
    _, y = ds[0]
    y = y.numpy()
    tid = cv2.imread(str(next((root / "gtFine").rglob("*labelTrainIds.png"))), cv2.IMREAD_UNCHANGED)
    assert tid.shape == y.shape
    # trainId -> our class, from the official names (independent of the package's table)
    by_name = {
        "sky": 1,
        "building": 2,
        "road": 3,
        "sidewalk": 4,
        "fence": 5,
        "vegetation": 6,
        "pole": 7,
        "car": 8,
        "truck": 8,
        "bus": 8,
        "traffic sign": 9,
        "person": 10,
        "rider": 11,
        "motorcycle": 11,
        "bicycle": 11,
    }
    t2c = {lab.trainId: by_name.get(lab.name, 0) for lab in labels if 0 <= lab.trainId < 255}
    valid = tid != 255
    exp = np.vectorize(lambda t: t2c.get(int(t), 0))(tid)
    agree = (exp[valid] == y[valid]).mean()
    assert agree > 0.99, agree
    assert len(np.unique(y)) >= 5


@pytest.mark.skipif(not (REAL / "camvid").is_dir(), reason="shared/realdata not present")
def test_real_camvid():
    ds = CamVidDataset(REAL / "camvid", "val", size=(240, 180))
    assert len(ds) == 101
    x, y = ds[0]
    assert x.shape == (3, 180, 240)
    vals = set(np.unique(y.numpy()).tolist())
    assert vals <= set(range(1, 12)) | {255} and len(vals) >= 5
    raw = cv2.imread(str(ds.files[0][1]), cv2.IMREAD_UNCHANGED)
    full = CamVidDataset(REAL / "camvid", "val", size=None)[0][1].numpy()
    np.testing.assert_array_equal(full == 255, raw == 11)
    np.testing.assert_array_equal(full[raw == 3], 3)  # road
    np.testing.assert_array_equal(full[raw == 5], 6)  # tree -> vegetation
