"""Latent-use measures (active units, KL per dimension, swap test, collapse-proof clustering)
against hand-computed values on toy PHGMMs whose latents are constant or matter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support import TOY_PHGMM, Pairs, toy_eval_config

from phgmm import PHGMM
from phgmm.engine.evaluation.evaluate import evaluate_model
from phgmm.engine.loaders import make_eval_loader
from phgmm.metrics import ConfusionMatrix
from phgmm.metrics.latent import (
    active_units,
    adjacent_partner,
    collapse_proof_clustering,
    dominant_class,
    latent_summary,
)


def _evaluate(model, partners: tuple[str, ...] = ()):
    loader = make_eval_loader(Pairs(), batch_size=3, num_workers=0)
    return evaluate_model(
        model, loader, toy_eval_config(partners), torch.device("cpu"), trimap=False, report_samples=0, progress=False
    )


def test_collapsed_latents_have_no_active_unit_and_swapping_changes_nothing():
    torch.manual_seed(0)
    model = PHGMM(**TOY_PHGMM).eval()
    with torch.no_grad():  # posterior means independent of the image: a collapsed posterior
        for lin in (model.local_space.heads.mu, model.local_space.heads.logits, model.global_space.mu):
            lin.weight.zero_()
            lin.bias.normal_()
    m = _evaluate(model, ("adjacent",)).metrics
    lat = m["latent"]
    assert lat["z_active_units"] == 0 and lat["z_units"] == 3 * 8
    assert lat["g_active_units"] == 0 and lat["g_units"] == 8
    assert lat["swap_z_adjacent_miou_drop"] == 0 and lat["swap_z_adjacent_pixels_changed"] == 0
    assert lat["swap_g_adjacent_miou_drop"] == 0 and lat["swap_g_adjacent_pixels_changed"] == 0
    # the paper's index calls twelve constant vectors perfect clusters; the variants do not
    assert m["clustering"]["silhouette"] > 0.99
    assert m["clustering_active"]["silhouette"] == 0 and m["clustering_active"]["davies_bouldin"] is None
    assert m["clustering_by_class"]["silhouette"] == 0
    assert "no active unit" in m["clustering_by_class"]["reason"]


def test_latents_that_matter_are_active_and_swapping_them_costs():
    torch.manual_seed(0)
    model = PHGMM(**TOY_PHGMM).eval()
    with torch.no_grad():
        model.local_space.heads.mu.weight.mul_(400.0)  # μ_z varies strongly with the image
        model.local_space.fuse.weight.mul_(50.0)  # and the decoder listens to it
    result = _evaluate(model, ("adjacent",))
    lat = result.metrics["latent"]

    # by hand: the same images in the same order, one at a time
    data = Pairs()
    with torch.no_grad():
        encs = [model.encode(data.x[i : i + 1]) for i in range(len(data))]
    mu = torch.cat([e.local[1] for e in encs]).numpy().astype(np.float64)
    var = mu.reshape(len(data), -1).var(axis=0)
    assert lat["z_active_units"] == int((var > 0.01).sum()) > 0
    # partner: the previous image in evaluation order, the first takes the last
    partner = [6, 0, 1, 2, 3, 4, 5]
    cm, changed, pixels = ConfusionMatrix(12), 0, 0
    with torch.no_grad():
        for i, j in enumerate(partner):
            own = model.decode(encs[i]).argmax(1)
            pi_j, mu_j = torch.softmax(encs[j].local[0], 1), encs[j].local[1]
            swapped = model.decode(encs[i], pi_j, mu_j).argmax(1)
            cm.update(swapped, data.y[i : i + 1])
            valid = data.y[i : i + 1] != 255
            changed += int(((own != swapped) & valid).sum())
            pixels += int(valid.sum())
    assert changed > 0
    assert lat["swap_z_adjacent_pixels_changed"] == pytest.approx(changed / pixels)
    assert lat["swap_z_adjacent_miou"] == pytest.approx(cm.compute()["miou"])
    assert lat["swap_z_adjacent_miou_drop"] == pytest.approx(lat["decode_miou"] - cm.compute()["miou"])
    assert lat["decode_miou"] == pytest.approx(result.metrics["miou"])
    # g's KL per dimension against N(0, I), written out
    mu_g = torch.cat([e.glob[0] for e in encs]).double()
    lv = torch.cat([e.glob[1] for e in encs]).double()
    kl = 0.5 * (mu_g**2 + lv.exp() - 1 - lv)
    np.testing.assert_allclose(lat["g_kl_per_dim"], kl.mean(0).numpy(), rtol=1e-4, atol=1e-6)
    assert lat["g_kl"] == pytest.approx(float(kl.sum(1).mean()), rel=1e-4)


def test_active_units_and_partners_by_hand():
    means = np.zeros((4, 3))
    means[:, 1] = [0.0, 0.3, 0.0, 0.3]  # variance 0.0225 > 0.01
    means[:, 2] = [0.0, 0.1, 0.0, 0.1]  # variance 0.0025
    au = active_units(means)
    assert au["active"] == 1 and au["units"] == 3 and au["mask"].tolist() == [False, True, False]
    assert adjacent_partner(3).tolist() == [2, 0, 1]
    y = np.array([[[0, 0, 3], [3, 255, 255]], [[0, 0, 0], [255, 255, 0]]])
    assert dominant_class(y, 12).tolist() == [3, -1]
    with pytest.raises(ValueError, match="at least 2 images"):
        active_units(np.zeros((1, 4)))


def test_collapse_proof_clustering_separates_informative_codes():
    rng = np.random.default_rng(0)
    n, k, dim = 40, 3, 5
    dom = np.repeat([1, 2], n // 2)
    mu = rng.normal(size=(1, k, dim)) + 0.01 * rng.normal(size=(n, k, dim))
    mu[:, 0, 0] += np.where(dom == 1, -3.0, 3.0)  # one unit tells the two classes apart
    pi = np.full((n, k), 1 / k)
    out = collapse_proof_clustering(mu, pi, dom)
    assert out["by_class"]["silhouette"] > 0.9
    constant = np.broadcast_to(mu[:1], mu.shape).copy()
    low = collapse_proof_clustering(constant, pi, dom)
    assert low["by_class"]["silhouette"] == 0 and low["active"]["silhouette"] == 0


def test_decoding_postnets_posterior_is_scored_against_a_hand_decoded_loop():
    torch.manual_seed(0)
    model = PHGMM(**{**TOY_PHGMM, "postnet": "light"}).eval()
    with torch.no_grad():
        model.postnet.heads.mu.weight.mul_(400.0)  # p(z|x,y) moves with the labels
        model.local_space.fuse.weight.mul_(50.0)  # and the decoder listens to z
    lat = _evaluate(model).metrics["latent"]

    data = Pairs()
    cm, changed, pixels = ConfusionMatrix(12), 0, 0
    with torch.no_grad():
        for i in range(len(data)):
            x, y = data.x[i : i + 1], data.y[i : i + 1]
            enc = model.encode(x)
            _, (p_logits, p_mu, _) = model.postnet(x, y)
            own = model.decode(enc).argmax(1)
            decoded = model.decode(enc, torch.softmax(p_logits, 1), p_mu).argmax(1)
            cm.update(decoded, y)
            valid = y != 255
            changed += int(((own != decoded) & valid).sum())
            pixels += int(valid.sum())
    assert changed > 0
    assert lat["posterior_decode_pixels_changed"] == pytest.approx(changed / pixels)
    assert lat["posterior_decode_miou"] == pytest.approx(cm.compute()["miou"])


def test_no_posterior_decode_without_postnet():
    lat = _evaluate(PHGMM(**TOY_PHGMM).eval()).metrics["latent"]
    assert "posterior_decode_miou" not in lat and "posterior_decode_gain" not in lat


# -- the measures one by one, against values worked out here -----------------------------------


def test_active_units_at_the_threshold_and_with_two_images():
    means = np.array([[0.0, 0.0, 1.0], [1.0, 0.1, 1.0]])  # two images: variances 0.25, 0.0025, 0
    au = active_units(means, threshold=0.25)  # a variance equal to the threshold is not active
    assert au["active"] == 0 and au["units"] == 3 and au["fraction"] == 0.0
    au = active_units(means)
    assert au["active"] == 1 and au["mask"].tolist() == [True, False, False]
    np.testing.assert_allclose(au["variance"], [0.25, 0.0025, 0.0])
    assert active_units(np.zeros((3, 2, 4)))["units"] == 8  # trailing axes flattened
    with pytest.raises(ValueError) as e:
        active_units(np.zeros((1, 4)))
    assert str(e.value) == "need at least 2 images of posterior means (n × units), got shape (1, 4)"


def test_dominant_class_leaves_out_what_is_not_a_scored_class():
    y = np.full((6, 2, 3), 255)
    y[0] = [[20, 20, 20], [20, 4, 4]]  # an id beyond the classes is not counted: 4
    y[1] = [[12, 12, 12], [12, 5, 5]]  # nor the id equal to the class count: 5
    y[2, 0, 0] = 7  # a single scored pixel
    y[3] = 0  # background only
    y[5] = [[0, 0, 0], [0, 2, 255]]  # background dominant, kept when nothing is excluded
    assert dominant_class(y, 12).tolist() == [4, 5, 7, -1, -1, 2]  # image 4: every pixel ignored
    assert dominant_class(y, 12, exclude=()).tolist() == [4, 5, 7, 0, -1, 0]
    big = np.array([[[255, 255, 255, 3]]])  # with 300 classes 255 is a class, yet the ignore index
    assert dominant_class(big, 300).tolist() == [3]
    assert dominant_class(big, 300, ignore_index=3).tolist() == [255]


def test_collapse_proof_clustering_against_the_indices_of_its_points():
    from phgmm.metrics.clustering import clustering_indices

    rng = np.random.default_rng(3)
    n, k, dim = 30, 2, 3
    dom = np.repeat([0, 2, -1], 10)  # class 0 may be dominant (kept); -1 images are left out
    mu = 0.01 * rng.normal(size=(n, k, dim))
    mu[:, 1, 2] += np.where(dom == 0, -0.5, 0.5)  # variance 0.25: active at the default 0.01
    pi = rng.dirichlet([1.0, 1.0], size=n)
    out = collapse_proof_clustering(mu, pi, dom)
    keep = [False, False, True]
    ref_active = clustering_indices(mu[:, :, keep].reshape(n * k, 1), np.tile(np.arange(k), n))
    codes = (pi[:, :, None] * mu)[:, :, :].reshape(n, k * dim)[:, [5]]
    ref_class = clustering_indices(codes[dom >= 0], dom[dom >= 0])
    assert out == {"active": ref_active, "by_class": ref_class} and ref_class["n_points"] == 20
    # at a threshold above 0.25 no unit is active: every point coincides, by definition
    none = collapse_proof_clustering(mu, pi, dom, threshold=0.3)
    assert none["active"] == {
        "silhouette": 0.0,
        "calinski_harabasz": 0.0,
        "davies_bouldin": None,
        "n_points": n * k,
        "n_labels": k,
        "reason": "no active unit: every point coincides",
    }
    assert none["by_class"]["reason"] == "no active unit: every image's code coincides"
    # an active unit in a component no image uses (π = 0): the codes coincide though the unit varies
    unused = pi.copy()
    unused[:, 1], unused[:, 0] = 0.0, 1.0
    out = collapse_proof_clustering(mu, unused, dom)
    assert out["by_class"] == {
        "silhouette": 0.0,
        "calinski_harabasz": 0.0,
        "davies_bouldin": None,
        "n_points": 20,
        "n_labels": 2,
        "reason": "no active unit: every image's code coincides",
    }


def test_latent_summary_written_out():
    mu_z = np.array([[[0.0], [1.0]], [[0.4], [1.0]], [[0.0], [1.0]], [[0.4], [1.0]]])  # 4 images, K=2, L=1
    pi = np.array([[0.2, 0.8], [0.6, 0.4], [0.2, 0.8], [0.6, 0.4]])
    mu_g = np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0], [0.0, -1.0]])
    logvar_g = np.array([[0.0, 0.0], [0.0, 0.0], [np.log(2.0), 0.0], [np.log(2.0), 0.0]])
    s = latent_summary(mu_z, pi, mu_g, logvar_g)
    kl_dim0 = 0.5 * (2.0 - 1.0 - np.log(2.0)) / 2  # half the images have σ² = 2, the others N(0, 1)
    expected = {
        "active_threshold": 0.01,
        "z_active_units": 1,  # variance 0.04 and 0
        "z_units": 2,
        "z_active_fraction": 0.5,
        "z_mean_variance": 0.02,
        "pi_mean_variance": 0.04,  # each weight varies by ±0.2 over the images
        "g_active_units": 1,
        "g_units": 2,
        "g_active_fraction": 0.5,
        "g_mean_variance": 0.5,
        "g_kl": kl_dim0 + 0.5,
        "g_kl_per_dim": [kl_dim0, 0.5],
        "g_kl_dims_above_0_01": 2,
    }
    assert s.keys() == expected.keys()
    for key, value in expected.items():
        assert s[key] == pytest.approx(value), key
    s = latent_summary(mu_z, None, mu_g, logvar_g, threshold=0.05)
    assert "pi_mean_variance" not in s and s["active_threshold"] == 0.05 and s["z_active_units"] == 0
    assert latent_summary(None, pi, mu_g, None) == {
        "active_threshold": 0.01,
        "g_active_units": 1,
        "g_units": 2,
        "g_active_fraction": 0.5,
        "g_mean_variance": 0.5,
    }
    small = latent_summary(None, None, 0.1 * mu_g, np.zeros((4, 2)))  # KL 0.005 in dim 1: not above 0.01
    assert small["g_kl_dims_above_0_01"] == 0 and small["g_kl_per_dim"][1] == pytest.approx(0.005)


def test_partners_histograms_and_their_distance_by_hand():
    from phgmm.metrics.latent import label_histograms, partner_distance

    assert adjacent_partner(2).tolist() == [1, 0]
    with pytest.raises(ValueError) as e:
        adjacent_partner(1)
    assert str(e.value) == "a partner needs at least 2 images, got 1"
    y = np.array(
        [
            [0, 0, 1, 3, 255, -1],  # 3 = the class count, -1: neither is a class
            [2, 255, 255, 255, 255, 255],  # a single scored pixel
            [255] * 6,  # none
        ]
    )
    hist = label_histograms(y, 3)
    np.testing.assert_allclose(hist, [[2 / 3, 1 / 3, 0], [0, 0, 1], [0, 0, 0]])
    h = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    assert partner_distance(h, [1, 0, 0]) == pytest.approx((1 + 1 + 0.5) / 3)
    assert partner_distance(h.tolist(), np.array([2, 2, 1])) == pytest.approx((0.5 + 0.5 + 0.5) / 3)


def _pairwise_bound(d: np.ndarray) -> float:
    """I_D = -(1/N) Σ_i log (1/N) Σ_j exp(-D_ij) (Kolchinsky & Tracey 2017), written out."""
    n = len(d)
    return -float(np.mean([np.log(np.mean(np.exp(-d[i]))) for i in range(n)]))


def test_information_bounds_against_the_pairwise_formulas_written_out():
    from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

    from phgmm.metrics.latent import mutual_information_bounds

    mu = np.array([[0.0, 1.0], [0.7, -0.4], [2.0, 0.3]])
    sd = np.array([[1.0, 0.5], [0.6, 1.2], [1.5, 0.8]])
    kl = np.zeros((3, 3))
    bh = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):  # textbook closed forms, per dimension, summed
            m1, s1, m2, s2 = mu[i], sd[i], mu[j], sd[j]
            kl[i, j] = np.sum(np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5)
            bh[i, j] = np.sum((m1 - m2) ** 2 / (4 * (s1**2 + s2**2)) + 0.5 * np.log((s1**2 + s2**2) / (2 * s1 * s2)))
    q = Independent(Normal(torch.from_numpy(mu), torch.from_numpy(sd)), 1)
    b = mutual_information_bounds(q)
    assert b == {"upper": pytest.approx(_pairwise_bound(kl)), "lower": pytest.approx(_pairwise_bound(bh))}
    assert mutual_information_bounds(q, max_elements=6) == b  # one row of 3×2 parameters at a time
    # a mixture per image: KL(π_i‖π_j) + Σ_k π_ik KL(N_ik‖N_jk), the matched-component bound
    locs = np.array([[[-2.0], [1.0]], [[0.0], [3.0]], [[-1.0], [-0.5]]])
    scales = np.array([[[0.5], [1.0]], [[0.7], [0.4]], [[1.2], [0.3]]])
    w = np.array([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1]])
    mkl = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            comp = (
                np.log(scales[j] / scales[i]) + (scales[i] ** 2 + (locs[i] - locs[j]) ** 2) / (2 * scales[j] ** 2) - 0.5
            )
            mkl[i, j] = np.sum(w[i] * np.log(w[i] / w[j])) + np.sum(w[i] * comp.sum(-1))
    mix = MixtureSameFamily(
        Categorical(probs=torch.from_numpy(w)), Independent(Normal(torch.from_numpy(locs), torch.from_numpy(scales)), 1)
    )
    assert mutual_information_bounds(mix) == {"upper": pytest.approx(_pairwise_bound(mkl)), "lower": None}
    two = Independent(Normal(torch.from_numpy(mu[:2]), torch.from_numpy(sd[:2])), 1)
    assert mutual_information_bounds(two)["upper"] == pytest.approx(_pairwise_bound(kl[:2, :2]))
    with pytest.raises(ValueError) as e:
        mutual_information_bounds(Independent(Normal(torch.zeros(1, 2), torch.ones(1, 2)), 1))
    assert str(e.value) == "mutual information over images needs at least 2 images, got 1"


class _Recording(torch.distributions.Independent):
    """Diagonal Gaussians that record how many points each log-density call evaluates."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def log_prob(self, value):
        self.calls.append(int(value.shape[0]))
        return super().log_prob(value)


def test_mutual_information_samples_seed_chunks_and_two_images():
    from torch.distributions import Normal

    from phgmm.metrics.latent import latent_mutual_information

    def gaussians(n: int = 5) -> _Recording:
        g = torch.Generator().manual_seed(n)
        return _Recording(
            Normal(torch.randn(n, 2, generator=g, dtype=torch.float64), torch.ones(n, 2, dtype=torch.float64)), 1
        )

    q = gaussians()
    state = torch.random.get_rng_state()
    default = latent_mutual_information(q)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left as it was
    assert default == latent_mutual_information(q, samples=16, seed=0) and default != latent_mutual_information(
        q, seed=1
    )
    assert {s: latent_mutual_information(q, samples=s)["samples"] for s in (1, 2, 3, 16)} == {1: 2, 2: 2, 3: 4, 16: 16}
    assert default["n"] == 5 and default["upper_bound"] == math.log(5)
    assert default["fraction"] == pytest.approx(default["mi"] / math.log(5)) and 0 < default["mi"] < math.log(5)
    # one chunk of rows is at most max_elements numbers: 5 posteriors × 2 dimensions = 10 per row
    q.calls.clear()
    chunked = latent_mutual_information(q, samples=4, max_elements=30)  # 20 rows, 3 at a time
    assert q.calls == [3, 3, 3, 3, 3, 3, 2]
    q.calls.clear()
    whole = latent_mutual_information(q, samples=4)  # the CPU default, 2^17 numbers: every row at once
    assert q.calls == [20] and chunked["mi"] == pytest.approx(whole["mi"], rel=1e-12)
    two = latent_mutual_information(gaussians(2), samples=2)  # two images, one pair of draws each
    assert two["stderr"] > 0 and two["n"] == 2 and two["samples"] == 2
    with pytest.raises(ValueError) as e:
        latent_mutual_information(gaussians(1))
    assert str(e.value) == "mutual information over images needs at least 2 images, got 1"


def test_sensitivity_sums_add_and_result_by_hand():
    from phgmm.metrics.latent import SensitivitySums

    a = SensitivitySums({"z": 1.5, "skips": 1.0}, {"z": 1.0, "skips": 2.0}, {"z": 4, "skips": 8}, images=2)
    b = SensitivitySums(
        {"z": 0.5, "g": 3.0, "skips": 1.0}, {"z": 0.0, "g": 1.0, "skips": 0.0}, {"z": 0, "g": 2, "skips": 0}, 1
    )
    s = a + b
    assert s == SensitivitySums(
        {"z": 2.0, "g": 3.0, "skips": 2.0}, {"z": 1.0, "g": 1.0, "skips": 2.0}, {"z": 4, "g": 2, "skips": 8}, 3
    )
    c = math.sqrt(math.pi / 2)  # E|N(0, σ²)| = σ·sqrt(2/π)
    r = s.result()
    expected = {
        "sensitivity_images": 3,
        "jacobian_g": c * 3.0 / 2,
        "attribution_g": 0.25,
        "jacobian_skips": c * 2.0 / 8,
        "attribution_skips": 0.5,
        "jacobian_z": c * 2.0 / 4,
        "attribution_z": 0.25,
        "sensitivity_z": 2.0,
        "sensitivity_g": 6.0,
    }
    assert r.keys() == expected.keys() and list(r)[:3] == ["sensitivity_images", "jacobian_g", "attribution_g"]
    for key, value in expected.items():
        assert r[key] == pytest.approx(value), key
    # no attribution at all, an empty group, no skips' Jacobian
    flat = SensitivitySums({"z": 1.0, "skips": 0.0}, {"z": 0.0, "skips": 0.0}, {"z": 0, "skips": 3}, 1).result()
    assert flat["attribution_z"] == 0.0 and flat["jacobian_z"] == pytest.approx(c)
    assert math.isnan(flat["sensitivity_z"]) and "sensitivity_g" not in flat
    assert SensitivitySums({"z": 1.0}, {"z": 1.0}, {"z": 1}, 1).result().keys() == {
        "sensitivity_images",
        "jacobian_z",
        "attribution_z",
    }
    assert SensitivitySums() + SensitivitySums() == SensitivitySums()
    assert b + a == s  # keys that only the left one has
    small = SensitivitySums({"z": 1.0, "skips": 1.0}, {"z": 0.1, "skips": 0.3}, {"z": 1, "skips": 1}, 1).result()
    assert small["attribution_z"] == pytest.approx(0.25) and small["attribution_skips"] == pytest.approx(0.75)


def test_float32_inputs_are_measured_in_float64():
    from phgmm.metrics.latent import partner_distance

    rng = np.random.default_rng(5)
    mu_z = rng.normal(size=(8, 2, 3)).astype(np.float32)
    pi = rng.dirichlet([1.0, 1.0], size=8).astype(np.float32)
    mu_g = rng.normal(size=(8, 3)).astype(np.float32)
    lv = rng.normal(size=(8, 3)).astype(np.float32)
    wide = [a.astype(np.float64) for a in (mu_z, pi, mu_g, lv)]
    np.testing.assert_array_equal(active_units(mu_z)["variance"], active_units(wide[0])["variance"])
    assert latent_summary(mu_z, pi, mu_g, lv) == latent_summary(*wide)
    dom = np.repeat([1, 2], 4)
    assert collapse_proof_clustering(mu_z, pi, dom) == collapse_proof_clustering(wide[0], wide[1], dom)
    # the dominant classes may come in any shape (a column here)
    assert collapse_proof_clustering(mu_z, pi, dom[:, None].tolist()) == collapse_proof_clustering(mu_z, pi, dom)
    h = rng.dirichlet([1.0, 1.0, 1.0], size=8).astype(np.float32)
    partner = np.roll(np.arange(8), 1)
    assert partner_distance(h, partner) == partner_distance(h.astype(np.float64), partner)
    # the active-unit threshold applies to g as well as to z
    assert latent_summary(None, None, wide[2], None, threshold=100.0)["g_active_units"] == 0


def test_swap_partners_far_and_random():
    from phgmm.metrics.latent import far_partner, random_derangement

    # the total variation (half the L1 distance), not the Euclidean distance, picks the partner:
    # from h0, h2 is farther in L1 (1.2 against 1.0), h1 in L2 (0.707 against 0.693)
    hist = np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.4, 0.2, 0.2, 0.2]])
    assert far_partner(hist).tolist() == [2, 0, 0]
    assert far_partner(hist[:2]).tolist() == [1, 0]  # two images partner each other
    with pytest.raises(ValueError) as e:
        far_partner(hist[:1])
    assert str(e.value) == "a partner needs at least 2 images, got 1"
    assert random_derangement(9).tolist() == random_derangement(9, seed=0).tolist()  # seed 0 by default
    with pytest.raises(ValueError) as e:
        random_derangement(1)
    assert str(e.value) == "a derangement needs at least 2 images, got 1"


def test_information_estimate_emits_no_warning():
    import warnings

    from torch.distributions import Independent, Normal

    from phgmm.metrics.latent import latent_mutual_information

    q = Independent(Normal(torch.randn(6, 3, dtype=torch.float64), torch.ones(6, 3, dtype=torch.float64)), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. an output tensor resized in place
        latent_mutual_information(q, samples=4, max_elements=40)


def test_a_kl_of_exactly_0_01_is_not_above_0_01():
    # With log σ² = 0 each image's KL is ½((μ² + 1) − 1), a multiple of 2^-53; twelve of them can
    # average to the double nearest 0.01 exactly (fewer cannot, near 0.01).
    unit, n = 2.0**-53, 12
    total = next(j for j in range(round(0.01 * n / unit) - 50, round(0.01 * n / unit) + 50) if j * unit / n == 0.01)
    parts = [total // n] * (n - 1) + [total - (n - 1) * (total // n)]
    mu = np.array([[0.0, np.sqrt(2 * j * unit)] for j in parts])  # dimension 0: KL 0
    lv = np.zeros_like(mu)
    assert (0.5 * (mu**2 + np.exp(lv) - 1.0 - lv)).mean(axis=0)[1] == 0.01
    s = latent_summary(None, None, mu, lv)
    assert s["g_kl_per_dim"][1] == 0.01 and s["g_kl_dims_above_0_01"] == 0
