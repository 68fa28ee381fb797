import math

import numpy as np
import pytest
import torch

from phgmm.metrics import expected_entropy, mutual_information_map, predictive_entropy, uncertainty_maps


def test_uniform_logits_have_entropy_log_c():
    C = 7
    logits = torch.zeros(3, 2, C, 4, 5)
    pe = predictive_entropy(logits)
    assert pe.shape == (2, 4, 5)
    torch.testing.assert_close(pe, torch.full((2, 4, 5), math.log(C)))
    torch.testing.assert_close(expected_entropy(logits), torch.full((2, 4, 5), math.log(C)))
    torch.testing.assert_close(mutual_information_map(logits), torch.zeros(2, 4, 5))


def test_identical_samples_have_zero_mutual_information():
    one = torch.randn(1, 2, 5, 6, 6) * 3
    logits = one.expand(4, -1, -1, -1, -1)
    mi = mutual_information_map(logits)
    assert mi.shape == (2, 6, 6)
    assert float(mi.abs().max()) < 1e-5
    torch.testing.assert_close(predictive_entropy(logits), expected_entropy(logits), atol=1e-5, rtol=1e-5)


def test_disagreeing_confident_samples_have_mi_log2():
    # two samples, each certain, of different classes: predictive = log 2, expected = 0
    logits = torch.tensor([[100.0, -100.0], [-100.0, 100.0]]).reshape(2, 1, 2, 1, 1)
    assert float(predictive_entropy(logits)) == pytest.approx(math.log(2), abs=1e-6)
    assert float(expected_entropy(logits)) == pytest.approx(0.0, abs=1e-6)
    assert float(mutual_information_map(logits)) == pytest.approx(math.log(2), abs=1e-6)


def test_matches_numpy_formulas_and_no_nan_for_extreme_logits():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, size=(5, 2, 4, 3, 3))
    p = np.exp(x - x.max(2, keepdims=True))
    p /= p.sum(2, keepdims=True)
    pbar = p.mean(0)
    pe = -(pbar * np.log(pbar)).sum(1)
    ee = (-(p * np.log(p)).sum(2)).mean(0)
    maps = uncertainty_maps(torch.from_numpy(x))
    np.testing.assert_allclose(maps["predictive_entropy"].numpy(), pe, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(maps["expected_entropy"].numpy(), ee, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(maps["mutual_information"].numpy(), np.maximum(pe - ee, 0), atol=1e-10)
    assert (maps["mutual_information"] >= 0).all()
    extreme = torch.tensor([[1e4, -1e4, 0.0]]).reshape(1, 1, 3, 1, 1).repeat(2, 1, 1, 1, 1)
    for f in (predictive_entropy, expected_entropy, mutual_information_map):
        assert torch.isfinite(f(extreme)).all()
    # a 4-D input is one sample
    assert predictive_entropy(torch.zeros(2, 3, 4, 4)).shape == (2, 4, 4)
    with pytest.raises(ValueError):
        predictive_entropy(torch.zeros(3, 4))


def test_numpy_and_integer_logits_and_the_shape_message():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 1, 4, 2, 2))
    maps = uncertainty_maps(x)  # a NumPy array: the same maps as the tensor
    for key, value in uncertainty_maps(torch.from_numpy(x)).items():
        torch.testing.assert_close(maps[key], value)
    # integer logits are read as floats: class logits (0, 2) at the first pixel, (0, 0) at the second
    ints = np.array([[0, 0], [2, 0]]).reshape(1, 1, 2, 2, 1)
    p = 1 / (1 + math.exp(2))  # softmax of (0, 2): (p, 1 - p)
    expected = torch.tensor([[[-(p * math.log(p) + (1 - p) * math.log(1 - p))], [math.log(2)]]])
    torch.testing.assert_close(predictive_entropy(ints), expected)
    with pytest.raises(ValueError) as e:
        predictive_entropy(np.zeros((3, 4)))
    assert str(e.value) == "expected S×N×C×H×W (or N×C×H×W) logits, got shape (3, 4)"


def test_logits_that_require_grad_are_read_without_autograd():
    x = torch.randn(2, 1, 3, 2, 2, requires_grad=True)
    maps = uncertainty_maps(x)
    assert not maps["predictive_entropy"].requires_grad
    torch.testing.assert_close(maps["predictive_entropy"], predictive_entropy(x.detach()))
