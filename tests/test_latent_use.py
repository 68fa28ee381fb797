"""Latent-use measures that tell whether the latents are used: swap partners, I(x; z) against the aggregate
posterior, the decoder's sensitivity and the untrained baseline, each against an independent
reference or a toy whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support import TOY_PHGMM
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal
from torch.utils.data import Dataset

from phgmm import PHGMM
from phgmm.config import Config
from phgmm.engine.evaluation.evaluate import evaluate_model
from phgmm.engine.loaders import make_eval_loader
from phgmm.metrics import ConfusionMatrix
from phgmm.metrics.latent import (
    SensitivitySums,
    adjacent_partner,
    decoder_sensitivity,
    far_partner,
    label_histograms,
    latent_mutual_information,
    mutual_information_bounds,
    partner_distance,
    random_derangement,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# -- partners -------------------------------------------------------------------------------------


def test_random_derangement_has_no_fixed_point_and_is_reproducible():
    for n in (2, 3, 7, 101):
        for seed in range(5):
            p = random_derangement(n, seed)
            assert sorted(p.tolist()) == list(range(n))  # a permutation
            assert not np.any(p == np.arange(n))  # without a fixed point
            assert np.array_equal(p, random_derangement(n, seed))  # the same seed, the same partners
    assert not np.array_equal(random_derangement(101, 0), random_derangement(101, 1))
    assert random_derangement(2, 3).tolist() == [1, 0]
    with pytest.raises(ValueError, match="at least 2"):
        random_derangement(1)
    assert adjacent_partner(4).tolist() == [3, 0, 1, 2]


def test_far_partner_is_the_brute_force_argmax_of_the_histogram_distance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=(9, 6, 7))
    y[:3, :, :4] = 255  # ignored pixels are left out of the histogram
    y[4] = 2  # a single-class image
    hist = label_histograms(torch.from_numpy(y), 5)
    for i in range(9):  # independent reference: counted by hand
        row = y[i][y[i] != 255]
        np.testing.assert_allclose(hist[i], np.bincount(row, minlength=5) / row.size)
    expected = []
    for i in range(9):
        dist = [
            sum(abs(a - b) for a, b in zip(hist[i], hist[j], strict=True)) / 2 if j != i else -1.0 for j in range(9)
        ]
        expected.append(int(np.argmax(dist)))
    assert far_partner(hist).tolist() == expected
    assert partner_distance(hist, expected) == pytest.approx(
        np.mean([0.5 * np.abs(hist[i] - hist[j]).sum() for i, j in enumerate(expected)])
    )
    # an image without any scored pixel has a row of zeros
    assert label_histograms(torch.full((1, 2, 2), 255), 5).tolist() == [[0.0] * 5]


# -- mutual information ----------------------------------------------------------------------------


def _gaussians(mu: torch.Tensor, sigma: float | torch.Tensor = 1.0) -> Independent:
    return Independent(Normal(mu.double(), torch.as_tensor(sigma, dtype=torch.float64).expand(mu.shape)), 1)


def test_mutual_information_of_known_posterior_sets():
    n, dim = 16, 4
    separated = _gaussians(torch.randn(n, dim) * 100)
    mi = latent_mutual_information(separated, samples=8)
    assert mi["mi"] == pytest.approx(math.log(n), abs=1e-9) and mi["upper_bound"] == math.log(n)
    assert mi["fraction"] == pytest.approx(1.0)
    same = latent_mutual_information(_gaussians(torch.zeros(n, dim) + 3.0, 0.5))
    assert same["mi"] == pytest.approx(0.0, abs=1e-12)  # every term is 0 up to rounding
    for q, value in ((separated, math.log(n)), (_gaussians(torch.zeros(n, dim) + 3.0, 0.5), 0.0)):
        bounds = mutual_information_bounds(q)
        assert bounds["upper"] == pytest.approx(value, abs=1e-9) and bounds["lower"] == pytest.approx(value, abs=1e-9)
    halves = torch.zeros(n, dim)
    halves[n // 2 :, 0] = 200.0  # two separated groups: one bit
    assert latent_mutual_information(_gaussians(halves))["mi"] == pytest.approx(math.log(2), abs=1e-9)
    # nearly identical posteriors: the antithetic pairs cancel the noise that would swamp the value
    near = _gaussians(torch.randn(20, 64) * 1e-3, 0.05)
    est, bounds = latent_mutual_information(near, samples=8), mutual_information_bounds(near)
    assert bounds["lower"] < est["mi"] < bounds["upper"] and est["stderr"] < 0.05 * est["mi"]
    # scale-free: rescaling every code (means and spreads) leaves it unchanged
    mu = torch.randn(n, dim)
    a = latent_mutual_information(_gaussians(mu, 0.7), seed=3)["mi"]
    b = latent_mutual_information(_gaussians(1e-3 * mu, 0.7e-3), seed=3)["mi"]
    assert a == pytest.approx(b, rel=1e-6) and 0 < a < math.log(n)


def _mi_by_quadrature(densities: list) -> float:
    """(1/N) Σ_n ∫ q_n log(q_n / q̄) on a fine 1-D grid: the definition, integrated numerically."""
    grid = torch.linspace(-20, 20, 200_001, dtype=torch.float64)
    p = torch.stack([d.log_prob(grid[:, None]).exp() for d in densities])  # N×grid
    mean = p.mean(0)
    integrand = torch.where(p > 0, p * (p.clamp_min(1e-300).log() - mean.clamp_min(1e-300).log()), 0.0)
    return float(torch.trapezoid(integrand, grid, dim=1).mean())


def test_mutual_information_matches_numerical_integration_for_overlapping_posteriors():
    mu = torch.tensor([[-1.0], [0.0], [0.5], [2.0]], dtype=torch.float64)
    sigma = torch.tensor([[0.8], [1.0], [0.6], [1.5]], dtype=torch.float64)
    q = Independent(Normal(mu, sigma), 1)
    ref = _mi_by_quadrature([Normal(mu[i], sigma[i]) for i in range(4)])
    est = latent_mutual_information(q, samples=20_000, seed=1)
    assert abs(est["mi"] - ref) < 4 * est["stderr"] and est["stderr"] < 0.01
    bounds = mutual_information_bounds(q)  # pairwise Bhattacharyya ≤ I ≤ pairwise KL
    assert bounds["lower"] < ref < bounds["upper"] < math.log(4)
    # a K-component mixture per image (z's posterior), again against the integral
    locs = torch.tensor([[[-2.0], [1.0]], [[0.0], [3.0]], [[-1.0], [-0.5]]], dtype=torch.float64)
    scales = torch.tensor([[[0.5], [1.0]], [[0.7], [0.4]], [[1.2], [0.3]]], dtype=torch.float64)
    weights = torch.tensor([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    mix = MixtureSameFamily(Categorical(probs=weights), Independent(Normal(locs, scales), 1))
    ref = _mi_by_quadrature(
        [MixtureSameFamily(Categorical(probs=weights[i]), Normal(locs[i, :, 0], scales[i, :, 0])) for i in range(3)]
    )
    est = latent_mutual_information(mix, samples=20_000, seed=2, max_elements=5000)  # chunked
    assert abs(est["mi"] - ref) < 4 * est["stderr"]
    bounds = mutual_information_bounds(mix, max_elements=5)  # one row at a time
    assert ref < bounds["upper"] < math.log(3) and bounds["lower"] is None
    assert bounds["upper"] == pytest.approx(mutual_information_bounds(mix)["upper"])
    with pytest.raises(ValueError, match="at least 2"):
        latent_mutual_information(_gaussians(torch.zeros(1, 2)))


def test_information_chunks_stay_small_on_the_cpu_and_do_not_change_the_estimate():
    """Large chunks made evaluate spend half its time faulting in fresh pages (bench_latent_mi.py);
    the CPU default keeps one chunk near 2^17 numbers (or one row), and the estimate is the same."""
    from phgmm.metrics.latent import _elements_per_row, _rows_per_chunk

    g = torch.Generator().manual_seed(0)
    locs = torch.randn(40, 3, 50, generator=g, dtype=torch.float64) * 0.3
    mix = MixtureSameFamily(
        Categorical(probs=torch.full((40, 3), 1 / 3, dtype=torch.float64)),
        Independent(Normal(locs, torch.ones_like(locs)), 1),
    )
    per_row = _elements_per_row(mix)
    assert per_row == 40 * 3 * 50
    rows = _rows_per_chunk(mix, None)
    assert rows == 2**17 // per_row and 1 < rows < 40  # chunked, each chunk near 1 MiB
    assert _rows_per_chunk(mix, 10) == 1  # never less than one row
    small, large = (
        latent_mutual_information(mix, samples=8, seed=3),
        latent_mutual_information(mix, samples=8, seed=3, max_elements=2**24),
    )
    assert small["mi"] == pytest.approx(large["mi"], rel=1e-12, abs=1e-15) and small["mi"] > 0.01
    assert mutual_information_bounds(mix)["upper"] == pytest.approx(
        mutual_information_bounds(mix, max_elements=2**24)["upper"], rel=1e-12
    )


# -- decoder sensitivity ---------------------------------------------------------------------------


class _LinearDecoder:
    """logits = A_z·vec(u_z) + A_g·u_g + A_s·vec(skips): Jacobian columns known in closed form."""

    def __init__(self, k: int, dim: int, skip_shape: tuple, outputs: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.a_z = torch.randn(outputs, k * dim, generator=g) * torch.linspace(0.1, 3, k * dim)
        self.a_g = torch.randn(outputs, dim, generator=g) * 0.5
        self.a_s = torch.randn(outputs, int(np.prod(skip_shape[1:])), generator=g) * 0.2
        self.outputs = outputs

    def decode(self, enc, pi, mu_z, mu_g):
        u = (pi.unsqueeze(-1) * mu_z).flatten(1)
        out = u @ self.a_z.T + mu_g @ self.a_g.T + enc.skips[0].flatten(1) @ self.a_s.T
        return out.view(len(u), self.outputs, 1, 1)


def test_sensitivity_estimates_the_jacobian_column_norms():
    from phgmm.models.phgmm import Encoded

    n, k, dim, skip_shape = 2, 3, 4, (2, 5, 2, 2)
    dec = _LinearDecoder(k, dim, skip_shape, outputs=6)
    enc = Encoded(
        (8, 8),
        [torch.zeros(n, 1, 2, 2)] * 4,
        [torch.randn(skip_shape)],
        (torch.randn(n, k), torch.randn(n, k, dim), torch.zeros(n, k, dim)),
        (torch.randn(n, dim), None),
    )
    res = decoder_sensitivity(dec, enc, probes=4000, seed=0).result()
    exact = {"z": dec.a_z.norm(dim=0).mean(), "g": dec.a_g.norm(dim=0).mean(), "skips": dec.a_s.norm(dim=0).mean()}
    for key, value in exact.items():
        assert res[f"jacobian_{key}"] == pytest.approx(float(value), rel=0.03), key
    assert res["sensitivity_z"] == pytest.approx(res["jacobian_z"] / res["jacobian_skips"])
    shares = [res[f"attribution_{k}"] for k in ("z", "g", "skips")]
    assert sum(shares) == pytest.approx(1.0) and res["sensitivity_images"] == n


class _IgnoresG(_LinearDecoder):
    """The linear decoder without its g term: g never enters the graph."""

    def decode(self, enc, pi, mu_z, mu_g):
        u = (pi.unsqueeze(-1) * mu_z).flatten(1)
        out = u @ self.a_z.T + enc.skips[0].flatten(1) @ self.a_s.T
        return out.view(len(u), self.outputs, 1, 1)


def test_sensitivity_sums_over_probes_are_the_projections_written_out():
    from phgmm.models.phgmm import Encoded

    n, k, dim, skip_shape = 2, 3, 4, (2, 5, 2, 2)
    g = torch.Generator().manual_seed(1)
    enc = Encoded(
        (8, 8),
        [torch.zeros(n, 1, 2, 2)] * 4,
        [torch.randn(skip_shape, generator=g)],
        (torch.randn(n, k, generator=g), torch.randn(n, k, dim, generator=g), torch.zeros(n, k, dim)),
        (torch.randn(n, dim, generator=g), None),
    )
    dec = _LinearDecoder(k, dim, skip_shape, outputs=6)
    u = {
        "z": (torch.softmax(enc.local[0], 1).unsqueeze(-1) * enc.local[1]).flatten(1),
        "g": enc.glob[0],
        "skips": enc.skips[0].flatten(1),
    }
    a = {"z": dec.a_z, "g": dec.a_g, "skips": dec.a_s}
    gen = torch.Generator().manual_seed(3)  # the estimator's probes, drawn in its order
    probes = [torch.randn(n, 6, 1, 1, generator=gen).flatten(1) for _ in range(2)]
    sums = decoder_sensitivity(dec, enc, probes=2, seed=3)
    # elements counted once per probe: the Jacobian column norm is the mean over both
    assert sums.images == n and sums.count == {"z": 2 * n * k * dim, "g": 2 * n * dim, "skips": 2 * n * 20}
    for key in ("z", "g", "skips"):
        grads = [v @ a[key] for v in probes]  # ∂(v·logits)/∂u = vᵀA
        assert sums.grad[key] == pytest.approx(sum(float(d.abs().sum()) for d in grads), rel=1e-5), key
        assert sums.attribution[key] == pytest.approx(sum(float((u[key] * d).abs().sum()) for d in grads), rel=1e-5)
    # one probe and seed 0 by default
    assert decoder_sensitivity(dec, enc) == decoder_sensitivity(dec, enc, probes=1, seed=0)
    assert decoder_sensitivity(dec, enc) != decoder_sensitivity(dec, enc, seed=1)
    assert decoder_sensitivity(dec, enc).count != decoder_sensitivity(dec, enc, probes=2).count
    # an input the decoder never reads has no gradient: sensitivity 0, its elements still counted
    res = decoder_sensitivity(_IgnoresG(k, dim, skip_shape, outputs=6), enc)
    assert res.grad["g"] == 0 and res.attribution["g"] == 0 and res.count["g"] == n * dim
    assert res.result()["sensitivity_g"] == 0 and res.result()["sensitivity_z"] > 0


def test_sensitivity_of_phgmm_matches_its_exact_jacobian_and_is_zero_when_ignored():
    torch.manual_seed(0)
    model = PHGMM(**TOY_PHGMM).eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        enc = model.encode(x)
    u = torch.softmax(enc.local[0], 1).unsqueeze(-1) * enc.local[1]
    # the exact Jacobian columns, one forward-mode derivative per code element (24 of them)
    columns = []
    for index in np.ndindex(*u.shape):
        tangent = torch.zeros_like(u)
        tangent[index] = 1.0
        _, column = torch.func.jvp(lambda v: model.decode(enc, torch.ones(1, 3), v, enc.glob[0]), (u,), (tangent,))
        columns.append(column.detach())
    # the probe the estimator draws (its seeded generator), projected on each exact column
    v = torch.randn(columns[0].shape, generator=torch.Generator().manual_seed(7))
    expected = math.sqrt(math.pi / 2) * np.mean([abs(float((v * c).sum())) for c in columns])
    res = decoder_sensitivity(model, enc, probes=1, seed=7).result()
    assert res["jacobian_z"] == pytest.approx(expected, rel=1e-4)
    with torch.no_grad():  # a decoder that ignores both codes
        model.local_space.component_weight.zero_()
        model.global_space.project.weight.zero_()
    res = decoder_sensitivity(model, enc).result()
    assert res["sensitivity_z"] == 0 and res["sensitivity_g"] == 0 and res["jacobian_skips"] > 0
    total = SensitivitySums() + decoder_sensitivity(model, enc) + decoder_sensitivity(model, enc, seed=1)
    assert total.images == 2


# -- the measures in evaluation, on toy PHGMMs -----------------------------------------------------


class Scenes(Dataset):
    """Six small images with different class mixtures (so the far partner is well defined)."""

    def __init__(self, n: int = 6, h: int = 32, w: int = 48) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, h, w, generator=g) * torch.linspace(0.2, 3, n)[:, None, None, None]
        self.y = torch.randint(0, 12, (n, h, w), generator=g)
        self.y[:, :2] = 255
        for i in range(n):
            self.y[i, 8 : 8 + 3 * i] = 1 + i % 4

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _cfg(**eval_keys) -> Config:
    cfg = Config()
    cfg.model.num_classes = 12
    cfg.train.channels_last = "false"
    cfg.train.amp = "off"  # the hand-decoded references are fp32 (auto may be bf16 on a CPU)
    cfg.eval.clustering = False
    for k, v in eval_keys.items():
        setattr(cfg.eval, k, v)
    return cfg


def _evaluate(model, data=None, batch_size: int = 3, level: str = "full", **eval_keys) -> dict:
    loader = make_eval_loader(data or Scenes(), batch_size=batch_size, num_workers=0)
    return evaluate_model(
        model,
        loader,
        _cfg(**eval_keys),
        torch.device("cpu"),
        trimap=False,
        report_samples=0,
        progress=False,
        latent_level=level,
    ).metrics


def _codes_matter(model: PHGMM) -> PHGMM:
    with torch.no_grad():
        model.local_space.heads.mu.weight.mul_(400.0)  # μ_z moves strongly with the image
        model.local_space.fuse.weight.mul_(50.0)  # and the decoder listens to it
        model.global_space.mu.weight.mul_(400.0)
        model.global_space.project.weight.mul_(50.0)
    return model


def _constant_codes(model: PHGMM) -> PHGMM:
    with torch.no_grad():  # every image gets the same posterior: a collapsed q
        for lin in (
            model.local_space.heads.mu,
            model.local_space.heads.logvar,
            model.local_space.heads.logits,
            model.global_space.mu,
            model.global_space.logvar,
        ):
            lin.weight.zero_()
    return model


def test_codes_that_matter_are_large_on_every_measure_and_constant_codes_near_zero():
    torch.manual_seed(0)
    matter = _evaluate(_codes_matter(PHGMM(**TOY_PHGMM).eval()), latent_untrained=False)["latent"]
    torch.manual_seed(0)
    constant = _evaluate(_constant_codes(PHGMM(**TOY_PHGMM).eval()), latent_untrained=False)["latent"]
    n = 6
    assert matter["images"] == n and matter["mi_upper_bound"] == pytest.approx(math.log(n))
    for space in ("z", "g"):
        assert matter[f"mi_{space}"] > 0.9 * math.log(n)
        assert constant[f"mi_{space}"] == pytest.approx(0.0, abs=1e-12)
        assert constant[f"mi_{space}_upper"] == pytest.approx(0.0, abs=1e-12)
        assert matter[f"mi_{space}_upper"] > 0.9 * math.log(n)
        for kind in ("random", "far"):
            assert matter[f"swap_{space}_{kind}_pixels_changed"] > 0.01, (space, kind)
            assert constant[f"swap_{space}_{kind}_pixels_changed"] == 0, (space, kind)
            assert constant[f"swap_{space}_{kind}_miou_drop"] == 0
        # a decoder that reads a constant code still changes when the code is zeroed
        assert f"swap_{space}_zero_pixels_changed" in constant
    assert matter["sensitivity_z"] > 10 * constant["sensitivity_z"] > 0
    assert matter["partner_far_distance"] >= matter["partner_random_distance"]


def test_swaps_are_scored_against_a_hand_decoded_loop():
    torch.manual_seed(0)
    model = _codes_matter(PHGMM(**TOY_PHGMM).eval())
    lat = _evaluate(
        model, latent_partners=("random", "far", "mean", "adjacent"), latent_untrained=False, latent_seed=5
    )["latent"]
    data = Scenes()
    with torch.no_grad():
        encs = [model.encode(data.x[i : i + 1]) for i in range(len(data))]
    hist = label_histograms(data.y, 12)
    pi = [torch.softmax(e.local[0], 1) for e in encs]
    mean_u = torch.cat([p.unsqueeze(-1) * e.local[1] for p, e in zip(pi, encs, strict=True)]).mean(0, keepdim=True)
    own_cm = ConfusionMatrix(12)
    for kind, partner in (
        ("random", random_derangement(6, 5)),
        ("far", far_partner(hist)),
        ("adjacent", adjacent_partner(6)),
        ("mean", None),
    ):
        cm, changed, pixels = ConfusionMatrix(12), 0, 0
        with torch.no_grad():
            for i in range(len(data)):
                own = model.decode(encs[i]).argmax(1)
                if kind == "random":
                    own_cm.update(own, data.y[i : i + 1])
                if partner is None:
                    swapped = model.decode(encs[i], torch.ones(1, 3), mean_u).argmax(1)
                else:
                    j = int(partner[i])
                    swapped = model.decode(encs[i], pi[j], encs[j].local[1]).argmax(1)
                cm.update(swapped, data.y[i : i + 1])
                valid = data.y[i : i + 1] != 255
                changed += int(((own != swapped) & valid).sum())
                pixels += int(valid.sum())
        assert lat[f"swap_z_{kind}_pixels_changed"] == pytest.approx(changed / pixels), kind
        assert lat[f"swap_z_{kind}_miou"] == pytest.approx(cm.compute()["miou"]), kind
    assert lat["decode_miou"] == pytest.approx(own_cm.compute()["miou"])
    assert lat["partner_seed"] == 5


def test_batching_does_not_change_the_partners_or_the_information():
    torch.manual_seed(0)
    model = _codes_matter(PHGMM(**TOY_PHGMM).eval())
    keys = ("swap_z_random_pixels_changed", "swap_g_far_pixels_changed", "mi_z", "mi_g")
    a = _evaluate(
        model, batch_size=1, latent_partners=("random", "far"), latent_untrained=False, latent_sensitivity_batches=0
    )["latent"]
    b = _evaluate(
        model, batch_size=4, latent_partners=("random", "far"), latent_untrained=False, latent_sensitivity_batches=0
    )["latent"]
    for k in keys:
        assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-9), k
    assert "sensitivity_z" not in a


def test_untrained_baseline_is_a_fresh_network_of_the_same_config_and_seed():
    torch.manual_seed(0)
    model = _codes_matter(PHGMM(**TOY_PHGMM).eval())
    lat = _evaluate(model, latent_partners=("random",), latent_mi_samples=4)["latent"]
    for key in (
        "untrained_z_active_units",
        "untrained_g_active_units",
        "untrained_mi_z",
        "untrained_mi_g",
        "untrained_sensitivity_z",
    ):
        assert key in lat, key
    # the same measures on a network built by hand with the same seed
    with torch.random.fork_rng():
        torch.manual_seed(0)  # Config().seed
        fresh = PHGMM(**TOY_PHGMM).eval()
    data = Scenes()
    with torch.no_grad():
        mu = torch.cat([fresh.encode(data.x[i : i + 1]).local[1] for i in range(len(data))])
    assert lat["untrained_z_active_units"] == int((mu.flatten(1).double().var(0, unbiased=False) > 0.01).sum())
    assert lat["z_active_units"] > lat["untrained_z_active_units"]


def test_one_image_split_and_light_level():
    torch.manual_seed(0)
    model = PHGMM(**TOY_PHGMM).eval()
    one = _evaluate(model, data=Scenes(n=1))["latent"]
    assert one["images"] == 1 and "at least 2" in one["measures_skipped"]
    light = _evaluate(model, level="light", latent_mi_samples=2)["latent"]
    assert {"swap_z_random_miou_drop", "swap_g_far_pixels_changed", "mi_z", "sensitivity_g"} <= set(light)
    assert not any(k.startswith(("swap_z_zero", "swap_z_mean", "untrained_")) for k in light)


def test_report_and_console_show_the_measures(tmp_path):
    from phgmm.report import _latent_section, latent_use_line

    lat = {
        "images": 5,
        "active_threshold": 0.01,
        "z_active_units": 0,
        "z_units": 24,
        "g_active_units": 1,
        "g_units": 8,
        "untrained_z_active_units": 0,
        "untrained_g_active_units": 0,
        "mi_z": 0.0123,
        "mi_z_stderr": 0.001,
        "mi_g": 1.5,
        "mi_g_stderr": 0.01,
        "mi_upper_bound": math.log(5),
        "sensitivity_z": 0.5,
        "sensitivity_g": 2.0,
        "untrained_sensitivity_z": 1.25,
        "swap_z_random_miou_drop": 0.002,
        "swap_z_random_pixels_changed": 0.0004,
        "swap_g_random_miou_drop": 0.01,
        "swap_g_random_pixels_changed": 0.05,
        "swap_z_far_miou_drop": 0.003,
        "swap_z_far_pixels_changed": 0.0006,
        "partner_far_distance": 0.7,
        "decode_miou": 0.4,
        "partner_seed": 0,
    }
    md = "\n".join(_latent_section({"latent": lat}))
    assert "| active units (variance of the posterior mean > 0.01) | 0 of 24 | 1 of 8 |" in md
    assert "| active units of an untrained network (same config and seed) | 0 | 0 |" in md
    assert "| I(x; ·) under q, nats (at most log N = 1.61) | 0.0123 ± 0.001 | 1.5 ± 0.01 |" in md
    assert (
        "a seeded derangement of the set" in md and "0.20 points, 0.04 % of pixels | 1.00 points, 5 % of pixels" in md
    )
    assert "label-histogram distance 0.7" in md and "zero code" not in md  # not measured: no row
    line = latent_use_line(lat)
    assert line.startswith("latent use (z | g): a random partner's code changes 0.04 % | 5 %")
    assert "I(x; ·) 0.0123 | 1.5 of at most 1.61 nats" in line and "untrained 1.25 | –" in line
    assert latent_use_line({}) == ""
    assert "I(x; ·) 0.0123 | 1.5 (noise-free upper bounds 0.02 | –) of" in latent_use_line({**lat, "mi_z_upper": 0.02})
    one = "\n".join(_latent_section({"latent": {"images": 1, "measures_skipped": "1 image: …"}}))
    assert "Not measured: 1 image" in one


def test_experiment_report_carries_the_measures(tmp_path):
    import csv
    import json

    from phgmm.experiments.report import write_experiment_report

    lat = {
        "z_active_units": 0,
        "z_units": 24,
        "swap_z_adjacent_miou_drop": 0.0005,
        "swap_z_adjacent_pixels_changed": 0.002,
        "swap_g_far_pixels_changed": 0.0123,
        "mi_z": 0.25,
        "mi_upper_bound": math.log(101),
        "untrained_mi_z": 0.125,
        "sensitivity_g": 3.5,
    }
    run = tmp_path / "literal"
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "run": "literal",
                "model": "phgmm",
                "miou": 0.3,
                "latent": lat,
                "class_names": ["background", "a"],
                "iou": {"a": 0.3},
            }
        )
    )
    (tmp_path / "experiment.json").write_text(json.dumps({"kind": "latent", "runs": [{"name": "literal"}]}))
    md = write_experiment_report(tmp_path).read_text()
    # the early table's swap (the previous image) reads the adjacent partner's keys
    assert "| literal | 30.00 | 0/24 | – | 0.05 | 0.20 |" in md
    assert "swap g far: px changed" in md and "| 1.230 |" in md
    with open(tmp_path / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["mi_z"]) == 0.25 and float(row["untrained_mi_z"]) == 0.125
    assert float(row["swap_g_far_pixels_changed"]) == 0.0123 and row["swap_z_random_pixels_changed"] == ""
