"""Property-based tests (Hypothesis): metrics, augmentation, mixture KLs and the config parser hold
their invariants on any input, not just the hand-picked cases of the other tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from phgmm.config import Config, apply_overrides, config_from_dict, config_to_dict, load_config, save_config
from phgmm.data.transforms import Augment
from phgmm.losses import gmm_kl
from phgmm.metrics import ConfusionMatrix
from phgmm.models.latent import gaussian_mixture

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
C = 5


@st.composite
def label_pairs(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    pred = draw(arrays(np.int64, (h, w), elements=st.integers(0, C - 1)))
    target = draw(arrays(np.int64, (h, w), elements=st.sampled_from([*range(C), 255])))
    return pred, target


@FAST
@given(label_pairs())
def test_confusion_counts_every_scored_pixel_and_iou_is_a_fraction(pair):
    pred, target = pair
    cm = ConfusionMatrix(C)
    cm.update(pred, target)
    assert int(cm.matrix.sum()) == int((target != 255).sum())
    scores = cm.compute(exclude_from_mean=())
    for v in scores["iou"].values():
        assert v is None or 0.0 <= v <= 1.0
    # nothing scored: the mean is NaN by convention (test_metrics_confusion), never out of range
    assert np.isnan(scores["miou"]) == (not (target != 255).any()) or 0.0 <= scores["miou"] <= 1.0
    assert np.isnan(scores["miou"]) or 0.0 <= scores["miou"] <= 1.0


@FAST
@given(label_pairs(), st.permutations(list(range(C))))
def test_scores_do_not_depend_on_the_names_of_classes(pair, perm):
    pred, target = pair
    perm = np.array(perm)
    relabel = lambda a: np.where(a == 255, 255, perm[np.minimum(a, C - 1)])  # noqa: E731
    a, b = ConfusionMatrix(C), ConfusionMatrix(C)
    a.update(pred, target)
    b.update(relabel(pred), relabel(target))
    ia, ib = a.compute(exclude_from_mean=())["iou"], b.compute(exclude_from_mean=())["iou"]
    names_a, names_b = list(ia), list(ib)
    for c in range(C):
        assert ia[names_a[c]] == ib[names_b[perm[c]]]
    np.testing.assert_equal(
        a.compute(exclude_from_mean=())["pixel_accuracy"], b.compute(exclude_from_mean=())["pixel_accuracy"]
    )  # NaN == NaN here


@FAST
@given(label_pairs(), label_pairs())
def test_merging_two_accumulators_equals_one_over_both(p1, p2):
    a, b, both = ConfusionMatrix(C), ConfusionMatrix(C), ConfusionMatrix(C)
    a.update(*p1)
    b.update(*p2)
    both.update(*p1)
    both.update(*p2)
    assert torch.equal(a.merge(b).matrix, both.matrix)


@FAST
@given(st.integers(8, 40), st.integers(8, 40), st.integers(0, 2**31 - 1), st.sampled_from([None, (16, 12), (9, 7)]))
def test_augmentation_keeps_labels_on_their_image_and_adds_no_value(h, w, seed, size):
    """The image carries its label as a grey level: after any scale-crop and flip, wherever the
    label is constant over a window wider than the bilinear footprint, the image shows exactly
    that label's grey level (a shifted label would not); and no new label value appears."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 4, size=(h, w)).astype(np.uint8)
    label[rng.random((h, w)) < 0.1] = 255
    img = np.repeat((label.astype(np.int32) * 60 % 256).astype(np.uint8)[..., None], 3, axis=2)
    aug = Augment(brightness=0.0, contrast=0.0)
    out_img, out_lab = aug(img, label, size, np.random.default_rng(seed))
    assert out_lab.shape == out_img.shape[:2]
    assert set(np.unique(out_lab)) <= set(np.unique(label))
    # bilinear blending mixes neighbours within one input pixel of the sample point; the scale
    # here is at most 3 output pixels per input pixel, so a flat 7×7 label window is flat in the image
    r = 3
    flat = np.ones_like(out_lab, dtype=bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            flat &= np.roll(np.roll(out_lab, dy, 0), dx, 1) == out_lab
    flat[:r], flat[-r:], flat[:, :r], flat[:, -r:] = False, False, False, False
    expected = out_lab.astype(np.int32) * 60 % 256
    assert np.all(np.abs(out_img[..., 0].astype(np.int32) - expected)[flat] <= 1)


@st.composite
def mixture_params(draw):
    batch = draw(st.sampled_from([(), (1,), (3,), (2, 2), (2, 3)]))
    k, dim = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 10_000))
    g = torch.Generator().manual_seed(seed)
    shape = (*batch, k)
    return (
        torch.randn(shape, generator=g),
        torch.randn(*shape, dim, generator=g),
        torch.randn(*shape, dim, generator=g).clamp(-3, 3),
        batch,
    )


@FAST
@given(mixture_params(), mixture_params())
def test_mixture_kls_are_nonnegative_zero_on_themselves_and_keep_any_batch_shape(a, b):
    la, ma, va, batch = a
    q = gaussian_mixture(la, ma, va)
    assert gmm_kl(q, q, "matched").shape == batch
    torch.testing.assert_close(gmm_kl(q, q, "matched"), torch.zeros(batch), atol=1e-5, rtol=0)
    torch.testing.assert_close(gmm_kl(q, q, "variational"), torch.zeros(batch), atol=1e-5, rtol=0)
    lb, mb, vb, batch_b = b
    if batch_b == batch and lb.shape[-1] == la.shape[-1] and mb.shape[-1] == ma.shape[-1]:
        p = gaussian_mixture(lb, mb, vb)
        assert (gmm_kl(q, p, "matched") >= -1e-5).all()
        assert gmm_kl(q, p, "mc").shape == batch


keys = st.sampled_from(
    [
        "train.lr",
        "train.epochs",
        "model.num_components",
        "loss.free_bits",
        "model.sample_latent",
        "data.size",
        "eval.batch_size",
        "output_dir",
    ]
)


def _value(key, draw):
    if key == "train.lr" or key == "loss.free_bits":
        return draw(st.floats(1e-6, 10, allow_nan=False))
    if key in ("train.epochs", "model.num_components", "eval.batch_size"):
        return draw(st.integers(1, 200))
    if key == "model.sample_latent":
        return draw(st.booleans())
    if key == "data.size":
        return [draw(st.integers(16, 2048)), draw(st.integers(16, 2048))]
    return draw(st.text("abcdefgh/_-", min_size=1, max_size=12))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_config_round_trips_through_yaml_and_overrides(tmp_path_factory, data):
    cfg = Config()
    overrides = {}
    for key in data.draw(st.lists(keys, max_size=5, unique=True)):
        overrides[key] = _value(key, data.draw)
    import yaml

    apply_overrides(
        cfg,
        [
            f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in overrides.items()
        ],
    )
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert config_to_dict(again) == config_to_dict(cfg)
    assert config_to_dict(config_from_dict(config_to_dict(cfg))) == config_to_dict(cfg)
    for k, v in overrides.items():
        section, _, name = k.partition(".")
        got = getattr(getattr(again, section), name) if name else getattr(again, section)
        assert (
            (list(got) if isinstance(got, tuple) else got) == pytest.approx(v)
            if isinstance(v, float)
            else (list(got) if isinstance(got, tuple) else got) == v
        )
