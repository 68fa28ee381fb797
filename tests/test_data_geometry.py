"""Label geometry: centre-aligned nearest-neighbour label resizing keeps labels on their images.

A one-pixel stripe is drawn at the same place in an image (255 on 0) and in its label map; after
every resize and every augmentation the label's stripe must sit where the bilinear image's
stripe is brightest. Centre-aligned nearest (output pixel x takes input pixel
floor((x + 0.5) * in / out)) keeps exactly the output pixels whose bilinear weight on the stripe
is >= 1/2; OpenCV's INTER_NEAREST (floor(x * in / out)) shifts the label up-left and fails.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from phgmm.data import Augment, CamVidDataset, denormalize, resize_label, resize_pair
from phgmm.data.transforms import resize_image, sample_rng

STRIPE = 7  # label value of the stripe (background label 0)
TOL = 3  # uint8 rounding of OpenCV's fixed-point bilinear weights


def _stripe(h: int, w: int, pos: int, vertical: bool):
    img = np.zeros((h, w, 3), np.uint8)
    lab = np.zeros((h, w), np.uint8)
    if vertical:
        img[:, pos] = 255
        lab[:, pos] = STRIPE
    else:
        img[pos, :] = 255
        lab[pos, :] = STRIPE
    return img, lab


def _check_aligned(img: np.ndarray, lab: np.ndarray, vertical: bool, what: str) -> bool:
    """Assert the label stripe coincides with the image stripe; return whether it survived."""
    axis = 0 if vertical else 1  # collapse rows for a vertical stripe, columns for a horizontal one
    prof = img[..., 0].astype(np.float64).mean(axis=axis)
    on = lab == STRIPE
    assert np.isin(lab, (0, STRIPE)).all(), what
    line = on.all(axis=axis)
    assert np.array_equal(line, on.any(axis=axis)), f"{what}: label stripe is not a full line"
    idx = np.flatnonzero(line)
    if idx.size == 0:
        # the stripe fell between output pixel centres: the image keeps it only below half weight
        assert prof.max() <= 127.5 + TOL, f"{what}: image stripe {prof.max():.1f} bright but label lost it"
        return False
    assert np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)), f"{what}: label stripe split {idx}"
    off = np.ones(prof.shape, bool)
    off[idx] = False
    assert prof[idx].max() >= prof.max() - TOL, (
        f"{what}: label stripe at {idx.tolist()} but the image is brightest at {int(prof.argmax())} ({prof.round(0)})"
    )
    assert prof[idx].min() >= 127.5 - TOL, f"{what}: label stripe at {idx.tolist()} on dim image pixels {prof[idx]}"
    assert not off.any() or prof[off].max() <= 127.5 + TOL, (
        f"{what}: image bright at {np.flatnonzero(off & (prof > 127.5 + TOL)).tolist()} without the label"
    )
    return True


@pytest.mark.parametrize(
    "n_in,n_out", [(2048, 768), (480, 240), (97, 256), (768, 2048), (131, 64), (53, 97), (1024, 384), (360, 180)]
)
@pytest.mark.parametrize("vertical", [True, False])
def test_resized_label_stripe_stays_on_image_stripe(n_in, n_out, vertical):
    other_in, other_out = 5, 3  # the stripe's length: kept small, odd, and resized too
    survived = 0
    for pos in range(n_in):  # every position, odd and even, edges included
        if vertical:
            img, lab = _stripe(other_in, n_in, pos, True)
            size = (n_out, other_out)
        else:
            img, lab = _stripe(n_in, other_in, pos, False)
            size = (other_out, n_out)
        rimg, rlab = resize_pair(img, lab, size)
        assert rimg.shape[:2] == rlab.shape == (size[1], size[0])
        np.testing.assert_array_equal(rimg, resize_image(img, size))
        np.testing.assert_array_equal(rlab, resize_label(lab, size))
        survived += _check_aligned(rimg, rlab, vertical, f"{n_in}->{n_out} stripe at {pos}")
    # every output pixel centre falls on exactly one input pixel: n_out stripes survive a downscale,
    # all of them an upscale
    assert survived == min(n_in, n_out)


@pytest.mark.parametrize("vertical", [True, False])
def test_opencv_inter_nearest_would_fail(vertical):
    """The check above is sharp enough to catch OpenCV's INTER_NEAREST shift."""
    bad = 0
    for pos in range(1, 97, 2):
        img, lab = _stripe(5, 97, pos, True) if vertical else _stripe(97, 5, pos, False)
        size = (256, 3) if vertical else (3, 256)
        rimg = resize_image(img, size)
        rlab = cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)
        try:
            _check_aligned(rimg, rlab, vertical, "INTER_NEAREST")
        except AssertionError:
            bad += 1
    assert bad > 0


@pytest.mark.parametrize("in_wh", [(131, 97), (53, 37), (64, 48), (200, 61)])
@pytest.mark.parametrize("vertical", [True, False])
def test_augmented_label_stripe_stays_on_image_stripe(in_wh, vertical):
    aug = Augment(brightness=0.0, contrast=0.0)
    size = (64, 48)
    W0, H0 = in_wh
    pick = np.random.default_rng(in_wh[0] * 7 + vertical)
    seen = flipped = 0
    for seed in range(150):
        n = W0 if vertical else H0
        pos = int(pick.integers(0, (n - 1) // 2)) * 2 + 1  # odd positions
        img, lab = _stripe(H0, W0, pos, vertical)
        rng = sample_rng(seed, 0, 0)
        a_img, a_lab = aug(img, lab, size, rng)
        assert a_img.shape[:2] == a_lab.shape == (48, 64)
        seen += _check_aligned(a_img, a_lab, vertical, f"seed {seed}, {in_wh}, stripe at {pos}")
        # the same draw without flipping: a flip moves label and image together
        flip_rng = sample_rng(seed, 0, 0)
        b_img, b_lab = Augment(brightness=0.0, contrast=0.0, flip_p=0.0)(img, lab, size, flip_rng)
        if not np.array_equal(a_lab, b_lab):
            flipped += 1
            np.testing.assert_array_equal(a_lab, b_lab[:, ::-1])
            np.testing.assert_array_equal(a_img, b_img[:, ::-1])
    assert seen > 30  # the stripe is often inside the crop window and survives
    if vertical:
        assert flipped > 20  # (a horizontal stripe is unchanged by a horizontal flip)


def test_dataset_pipeline_keeps_stripe_aligned(tmp_path):
    """load_raw and augmented samples of a data set on disk: label stripe on the image stripe."""
    root = tmp_path / "cv"
    (root / "train").mkdir(parents=True)
    (root / "trainannot").mkdir(parents=True)
    img = np.zeros((97, 131, 3), np.uint8)
    lab = np.full((97, 131), 11, np.uint8)  # CamVid 11 = Unlabelled -> 255
    img[:, 37] = 255
    lab[:, 37] = 3  # road -> class 3
    cv2.imwrite(str(root / "train" / "a.png"), img)
    cv2.imwrite(str(root / "trainannot" / "a.png"), lab)
    ds = CamVidDataset(root, "train", size=(61, 45), augment=False)
    rgb, y = ds.load_raw(0)
    y = np.where(y == 3, STRIPE, 0).astype(np.uint8)
    assert _check_aligned(rgb, y, True, "load_raw")
    ds = CamVidDataset(root, "train", size=(61, 45), augment=True, seed=5)
    ds.augmentation.brightness = ds.augmentation.contrast = 0.0
    for epoch in range(20):
        ds.set_epoch(epoch)
        x, t = ds[0]
        t = t.numpy()
        assert set(np.unique(t).tolist()) <= {3, 255}
        _check_aligned(denormalize(x), np.where(t == 3, STRIPE, 0).astype(np.uint8), True, f"epoch {epoch}")


# ---------------------------------------------------------------------------------------------
# resize_label itself

SIZES = [
    ((97, 53), (256, 131)),
    ((2048, 1024), (768, 384)),
    ((480, 360), (240, 180)),
    ((131, 97), (64, 48)),
    ((10, 7), (3, 2)),
    ((5, 3), (17, 11)),
    ((64, 48), (64, 31)),
    ((33, 1), (7, 5)),
    ((1, 1), (4, 3)),
]


@pytest.mark.parametrize("src,dst", SIZES)
def test_resize_label_equals_pil_nearest(src, dst):
    rng = np.random.default_rng(src[0] * 31 + dst[1])
    lab = rng.integers(0, 256, (src[1], src[0]), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(lab).resize(dst, Image.NEAREST))
    out = resize_label(lab, dst)
    assert out.dtype == np.uint8 and out.shape == (dst[1], dst[0])
    np.testing.assert_array_equal(out, ref)
    # SYNTHIA's 16-bit ids, against Pillow's 32-bit mode "I" (Pillow's separate "I;16" path breaks
    # exact ties — an output centre on an input pixel border — the other way than its 8/32-bit paths)
    lab16 = rng.integers(0, 65536, (src[1], src[0]), dtype=np.uint16)
    ref16 = np.asarray(Image.fromarray(lab16.astype(np.int32)).resize(dst, Image.NEAREST)).astype(np.uint16)
    np.testing.assert_array_equal(resize_label(lab16, dst), ref16)


def test_resize_label_any_dtype_same_geometry():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 12, (53, 97), dtype=np.uint8)
    ref = resize_label(lab, (41, 77))
    for dtype in (np.int64, np.int32, np.uint32, np.int8, np.uint16, np.float32):
        out = resize_label(lab.astype(dtype), (41, 77))
        assert out.dtype == dtype, dtype
        np.testing.assert_array_equal(out, ref.astype(dtype))
    big = lab.astype(np.int64) * (2**40)  # OpenCV would wrap int64 to int32
    np.testing.assert_array_equal(resize_label(big, (41, 77)), ref.astype(np.int64) * (2**40))
    np.testing.assert_array_equal(resize_label(lab == 3, (41, 77)), ref == 3)
    three = np.dstack([lab, lab + 1])  # H×W×C maps are resized channel by channel
    out = resize_label(three, (41, 77))
    assert out.shape == (77, 41, 2)
    np.testing.assert_array_equal(out[..., 1], ref + 1)
    assert resize_label(lab, (97, 53)) is lab
    with pytest.raises(ValueError):
        resize_label(lab, (0, 5))
    with pytest.raises(ValueError):
        resize_label(np.zeros(5, np.uint8), (3, 3))


def test_augmentation_adds_no_label_values():
    values = np.array([0, 3, 7, 11, 200, 255], np.uint8)
    rng = np.random.default_rng(1)
    lab = values[rng.integers(0, len(values), (97, 131))]
    img = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    aug = Augment()
    seen = set()
    for seed in range(60):
        for size in ((64, 48), (200, 150), (131, 97)):
            a_img, a_lab = aug(img, lab, size, sample_rng(seed, 1, 2))
            assert a_lab.dtype == lab.dtype and a_lab.shape == (size[1], size[0])
            assert a_img.shape == (size[1], size[0], 3) and a_img.dtype == np.uint8
            new = set(np.unique(a_lab).tolist()) - set(values.tolist())
            assert not new, f"seed {seed}, size {size}: new label values {new}"
            seen |= set(np.unique(a_lab).tolist())
    assert seen == set(values.tolist())
    lab16 = lab.astype(np.uint16) * 257
    _, a16 = aug(img, lab16, (64, 48), sample_rng(0, 0, 0))
    assert a16.dtype == np.uint16 and set(np.unique(a16).tolist()) <= set((values.astype(np.uint16) * 257).tolist())
