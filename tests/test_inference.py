"""infer_logits: whole vs sliding-window inference and test-time augmentation (flip, scales)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from phgmm.engine.inference.tiling import default_stride, infer_logits, slide_windows

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _recording(model, shapes: list):
    """``model`` as a function that also records the (H, W) of every input it is called on."""

    def forward(t):
        shapes.append(tuple(t.shape[-2:]))
        return model(t)

    return forward


@pytest.fixture
def conv() -> torch.nn.Module:
    """A fully-convolutional, flip-equivariant toy: one 1×1 convolution, 3 → 5 classes."""
    torch.manual_seed(1)
    return torch.nn.Conv2d(3, 5, 1).eval()


def test_slide_with_overlapping_tiles_equals_whole_on_a_1x1_conv(conv):
    x = torch.randn(2, 3, 45, 70)
    whole = infer_logits(conv, x)
    assert torch.equal(whole, conv(x).detach())
    slide = infer_logits(conv, x, mode="slide", tile=(32, 16), stride=(20, 10))
    assert slide.shape == whole.shape
    torch.testing.assert_close(slide, whole, atol=1e-5, rtol=0)
    # several windows per forward call: the same result
    batched = infer_logits(conv, x, mode="slide", tile=(32, 16), stride=(20, 10), max_batch=8)
    torch.testing.assert_close(batched, slide, atol=1e-6, rtol=0)


def test_slide_pads_an_image_smaller_than_the_tile(conv):
    x = torch.randn(1, 3, 20, 30)
    calls = []
    out = infer_logits(_recording(conv, calls), x, mode="slide", tile=(64, 32), stride=(40, 20))
    assert calls == [(32, 64)]  # one padded window of the tile's size
    torch.testing.assert_close(out, conv(x).detach(), atol=1e-6, rtol=0)


def test_windows_cover_the_image_like_mmsegmentation():
    wins = slide_windows(1024, 2048, tile=(768, 384), stride=(512, 256))
    assert len(wins) == 16
    assert all(y2 - y1 == 384 and x2 - x1 == 768 for y1, y2, x1, x2 in wins)
    assert max(y2 for _, y2, _, _ in wins) == 1024 and max(x2 for _, _, _, x2 in wins) == 2048
    cover = np.zeros((1024, 2048), int)
    for y1, y2, x1, x2 in wins:
        cover[y1:y2, x1:x2] += 1
    assert cover.min() >= 1
    assert default_stride((768, 384)) == (512, 256)
    assert slide_windows(64, 128, (128, 64), (85, 43)) == [(0, 64, 0, 128)]


def test_single_window_is_exactly_the_forward(conv):
    x = torch.randn(1, 3, 32, 48)
    assert torch.equal(infer_logits(conv, x, mode="slide", tile=(48, 32)), conv(x).detach())
    assert torch.equal(infer_logits(conv, x, mode="slide"), conv(x).detach())  # default tile: the input


def test_scale_one_is_no_tta_and_flip_on_an_equivariant_model_changes_nothing(conv):
    x = torch.randn(2, 3, 24, 40)
    plain = infer_logits(conv, x)
    assert torch.equal(infer_logits(conv, x, scales=(1.0,)), plain)
    flipped = infer_logits(conv, x, flip=True)
    # several passes: log of the mean softmax; here both passes agree, so it is log_softmax(plain)
    torch.testing.assert_close(flipped, plain.log_softmax(1), atol=1e-5, rtol=0)
    assert torch.equal(flipped.argmax(1), plain.argmax(1))
    torch.testing.assert_close(infer_logits(conv, x, scales=(1.0, 1.0)), plain.log_softmax(1), atol=1e-6, rtol=0)
    # slide + flip on the 1×1 conv: still the same distribution
    both = infer_logits(conv, x, mode="slide", tile=(16, 16), stride=(8, 8), flip=True)
    torch.testing.assert_close(both.softmax(1), plain.softmax(1), atol=1e-5, rtol=0)


def test_flip_averages_the_softmax_of_the_mirrored_pass():
    def ramp(t):  # not flip-equivariant: class 0 grows to the right, class 1 is constant
        n, _, h, w = t.shape
        xs = torch.linspace(-2, 2, w).expand(n, 1, h, w)
        return torch.cat([xs, torch.zeros_like(xs)], 1)

    x = torch.zeros(1, 3, 4, 9)
    out = infer_logits(ramp, x, flip=True)
    p = ramp(x).softmax(1)
    expected = ((p + p.flip(-1)) / 2).log()
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert torch.allclose(out.softmax(1).sum(1), torch.ones(1, 4, 9))


def test_multi_scale_returns_log_probabilities_at_the_input_size(conv):
    x = torch.randn(1, 3, 30, 50)
    seen = []
    out = infer_logits(_recording(conv, seen), x, scales=(0.5, 1.0, 1.5), mode="slide", tile=(32, 32), stride=(16, 16))
    assert out.shape == (1, 5, 30, 50)
    assert all(s == (32, 32) for s in seen)  # every window the tile's size, padded when needed
    torch.testing.assert_close(out.exp().sum(1), torch.ones(1, 30, 50), atol=1e-5, rtol=0)
    assert torch.isfinite(out).all()


def test_bad_arguments_are_clear(conv):
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="mode must be one of"):
        infer_logits(conv, x, mode="tiles")
    with pytest.raises(ValueError, match="larger than the tile"):
        infer_logits(conv, x, mode="slide", tile=(4, 4), stride=(5, 4))
    with pytest.raises(ValueError, match="scales must be positive"):
        infer_logits(conv, x, scales=(0.0,))
    with pytest.raises(ValueError, match="expected 1×C×8×8"):
        infer_logits(lambda t: t[:, :, :4], x)
    with pytest.raises(ValueError, match="num_classes=3"):
        infer_logits(conv, x, num_classes=3)


# -- the Predictor on a tiny PHGMM ---------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor_args():
    from phgmm.config import apply_overrides, load_config
    from phgmm.engine.builders import build_model_from_config

    cfg = apply_overrides(
        load_config(REPO / "configs" / "demo.yaml"),
        [
            "data.size=[128, 64]",
            "model.decoder_units=[1, 1, 1, 1]",
            "model.latent_dim=16",
            "model.component_dim=8",
            "model.local_channels=32",
            "model.global_dim=8",
            "model.num_components=3",
        ],
    )
    torch.manual_seed(0)
    model = build_model_from_config(cfg, inference=True, pretrained=False).eval()
    return model


def test_slide_with_tile_equal_to_the_image_is_the_plain_prediction(predictor_args):
    from phgmm.data.transforms import preprocess
    from phgmm.engine.inference.predictor import Predictor

    rgb = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    whole = Predictor(model=predictor_args, size=(128, 64), device="cpu")
    # predict's input is bit-identical to the data layer's (evaluate's) preprocessing, channels-last
    odd = np.random.default_rng(2).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    assert torch.equal(whole.prepare(odd), preprocess(odd, (128, 64)))
    assert whole.stack([whole.prepare(rgb)] * 2).is_contiguous(memory_format=torch.channels_last)
    slide = Predictor(model=predictor_args, size=(128, 64), device="cpu", mode="slide", tile=(128, 64))
    assert torch.equal(slide.logits(rgb), whole.logits(rgb))
    # a larger image in slide mode keeps its resolution and gives logits at its own size
    big = np.random.default_rng(1).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    assert slide.prepare(big).shape == (3, 100, 200) and whole.prepare(big).shape == (3, 64, 128)
    assert slide.logits(big).shape == (1, 12, 100, 200)
    tta = Predictor(model=predictor_args, size=(128, 64), device="cpu", flip=True, scales=(0.75, 1.0))
    assert tta.logits(big).shape == (1, 12, 100, 200)
    s = slide.sample_logits(big, 2)
    assert s.shape == (2, 1, 12, 100, 200)
