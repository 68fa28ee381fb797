"""BatchNorm folding for inference (models/fold.py): same outputs, no BatchNorm left, model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phgmm.engine.inference.predictor import Predictor
from phgmm.models import MODEL_NAMES, build_model, fold_batchnorm
from phgmm.models.fold import count_batchnorms


def _with_trained_statistics(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Running statistics and affine parameters far from their initial 0/1, as after training."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_((torch.rand(n, generator=g) - 0.5) * 0.4)
    return model


def _logits(out):
    return out if isinstance(out, torch.Tensor) else out.logits


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_folded_model_gives_the_same_logits_at_an_odd_size(name):
    torch.manual_seed(0)
    kwargs = {"postnet": None} if name == "phgmm" else {}
    model = _with_trained_statistics(build_model(name, num_classes=5, backbone="resnet18", **kwargs)).eval()
    folded = fold_batchnorm(model)
    assert count_batchnorms(model) > 0 and count_batchnorms(folded) == 0
    x = torch.randn(2, 3, 75, 101)
    with torch.no_grad():
        ref, out = _logits(model(x)), _logits(folded(x))
    assert out.shape == ref.shape == (2, 5, 75, 101)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    # with autograd on too (ONNX export traces that way): no in-place write into a view
    torch.testing.assert_close(_logits(folded(x)).detach(), out)


def test_phgmm_latent_codes_survive_folding_and_the_original_is_untouched():
    torch.manual_seed(0)
    model = _with_trained_statistics(build_model("phgmm", num_classes=5, backbone="resnet18", postnet=None))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert model.training and not folded.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = model.encode(x), folded.encode(x)
    for ref, out in zip(a.local + a.glob, b.local + b.glob, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_predictor_folds_by_default_and_predicts_the_same_labels():
    torch.manual_seed(0)
    model = _with_trained_statistics(build_model("phgmm", num_classes=12, backbone="resnet18", postnet=None))
    rgb = np.random.default_rng(0).integers(0, 256, (70, 130, 3), dtype=np.uint8)
    # fp32: in bf16 (auto on a CPU with bf16) folding changes the rounding, not what is compared here
    folded = Predictor(model=model, size=(96, 48), device="cpu", precision="fp32")
    plain = Predictor(model=model, size=(96, 48), device="cpu", fold_bn=False, precision="fp32")
    assert count_batchnorms(folded.model) == 0 and count_batchnorms(plain.model) > 0
    a, b = folded.logits(rgb), plain.logits(rgb)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    assert (a.argmax(0) == b.argmax(0)).float().mean() > 0.999
