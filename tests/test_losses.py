"""ℓ_g, ℓ_z (three estimators) and ℓ_s against closed forms and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from phgmm.losses import PHGMMLoss, gaussian_kl_closed_form, gmm_kl, segmentation_loss, soft_iou_loss
from phgmm.models.latent import gaussian_mixture
from phgmm.models.phgmm import PHGMMOutput


def random_mixture(n: int, k: int, l: int, seed: int, spread: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g)
    mu = spread * torch.randn(n, k, l, generator=g)
    logvar = 0.5 * torch.randn(n, k, l, generator=g)
    return gaussian_mixture(logits, mu, logvar), (logits, mu, logvar)


def test_k1_all_estimators_equal_closed_form():
    q, (_, mq, lq) = random_mixture(4, 1, 6, seed=1)
    p, (_, mp, lp) = random_mixture(4, 1, 6, seed=2)
    exact = gaussian_kl_closed_form(mq[:, 0], lq[:, 0].exp(), mp[:, 0], lp[:, 0].exp())
    # independent check of the helper itself, with scalar NumPy arithmetic
    a, b = mq[0, 0].numpy(), mp[0, 0].numpy()
    va, vb = lq[0, 0].exp().numpy(), lp[0, 0].exp().numpy()
    ref0 = sum(0.5 * (math.log(vb[i] / va[i]) + (va[i] + (a[i] - b[i]) ** 2) / vb[i] - 1) for i in range(6))
    assert exact[0].item() == pytest.approx(ref0, rel=1e-5)
    torch.testing.assert_close(gmm_kl(q, p, "matched"), exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gmm_kl(q, p, "variational"), exact, rtol=1e-5, atol=1e-5)
    torch.manual_seed(0)
    n = 20000
    samples = torch.stack([gmm_kl(q, p, "mc", num_samples=1) for _ in range(50)])  # 50 one-draw estimates
    big = gmm_kl(q, p, "mc", num_samples=n)
    se = samples.std(0) / math.sqrt(n)
    assert torch.all((big - exact).abs() <= 4 * se + 1e-4), (big, exact, se)


@pytest.mark.parametrize("method", ["matched", "variational"])
def test_kl_of_a_mixture_with_itself_is_zero(method):
    q, _ = random_mixture(5, 7, 8, seed=3)
    torch.testing.assert_close(gmm_kl(q, q, method), torch.zeros(5), atol=1e-5, rtol=0)


def _mc_with_se(q, p, n: int):
    """A per-batch-item MC estimate of KL(q‖p) from n ancestral samples, with its standard error."""
    z = q.sample((n,))
    r = q.log_prob(z) - p.log_prob(z)
    return r.mean(0), r.std(0) / math.sqrt(n)


def test_matched_is_an_upper_bound_of_mc():
    q, _ = random_mixture(6, 4, 3, seed=4)
    p, _ = random_mixture(6, 4, 3, seed=5)
    torch.manual_seed(1)
    est, se = _mc_with_se(q, p, 20000)
    assert torch.all(gmm_kl(q, p, "matched") >= est - se)
    # and the stratified estimator of the library agrees with plain ancestral sampling
    mc = gmm_kl(q, p, "mc", num_samples=20000)
    assert torch.all((mc - est).abs() <= 3 * se * math.sqrt(2) + 1e-3)


def test_mc_agrees_with_bruteforce_numpy():
    q, (lq_pi, mq, lq) = random_mixture(3, 3, 2, seed=6)
    p, (lp_pi, mp, lp) = random_mixture(3, 3, 2, seed=7)
    torch.manual_seed(2)
    n = 20000
    mc = gmm_kl(q, p, "mc", num_samples=n).numpy()

    def softmax(x):
        e = np.exp(x - x.max())
        return e / e.sum()

    def mix_logpdf(x, pi, mu, var):
        # x: (S, L); explicit loop over components, plain NumPy densities
        dens = np.zeros(len(x))
        for k in range(len(pi)):
            d = np.prod(np.exp(-0.5 * (x - mu[k]) ** 2 / var[k]) / np.sqrt(2 * np.pi * var[k]), axis=1)
            dens += pi[k] * d
        return np.log(dens)

    rng = np.random.default_rng(0)
    for i in range(3):
        piq, pip_ = softmax(lq_pi[i].numpy().astype(np.float64)), softmax(lp_pi[i].numpy().astype(np.float64))
        muq, varq = mq[i].numpy().astype(np.float64), np.exp(lq[i].numpy().astype(np.float64))
        mup, varp = mp[i].numpy().astype(np.float64), np.exp(lp[i].numpy().astype(np.float64))
        comp = rng.choice(len(piq), size=n, p=piq)
        x = muq[comp] + np.sqrt(varq[comp]) * rng.standard_normal((n, muq.shape[1]))
        r = mix_logpdf(x, piq, muq, varq) - mix_logpdf(x, pip_, mup, varp)
        ref, se = r.mean(), r.std() / np.sqrt(n)
        assert abs(mc[i] - ref) <= 3 * se * math.sqrt(2), (i, mc[i], ref, se)


def test_variational_matches_hershey_olsen_formula_written_out():
    q, (aq, mq, lq) = random_mixture(2, 3, 4, seed=8)
    p, (ap, mp, lp) = random_mixture(2, 3, 4, seed=9)
    out = gmm_kl(q, p, "variational")
    for n in range(2):
        pq, pp = torch.softmax(aq[n], 0), torch.softmax(ap[n], 0)
        total = 0.0
        for a in range(3):
            num = sum(pq[b] * torch.exp(-gaussian_kl_closed_form(mq[n, a], lq[n, a].exp(), mq[n, b], lq[n, b].exp()))
                      for b in range(3))
            den = sum(pp[b] * torch.exp(-gaussian_kl_closed_form(mq[n, a], lq[n, a].exp(), mp[n, b], lp[n, b].exp()))
                      for b in range(3))
            total += pq[a] * torch.log(num / den)
        assert out[n].item() == pytest.approx(total.item(), rel=1e-4, abs=1e-5)


def test_unknown_kl_method_is_an_error():
    q, _ = random_mixture(1, 2, 2, seed=0)
    with pytest.raises(ValueError, match="unknown KL method 'exact'"):
        gmm_kl(q, q, "exact")
    with pytest.raises(ValueError, match="unknown KL method"):
        PHGMMLoss(kl="exact")


def test_soft_iou_against_explicit_loop():
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0, :] = 255
    probs = torch.softmax(logits, 1)
    ious = []
    for c in range(3):
        inter = union = 0.0
        for n in range(2):
            for i in range(4):
                for j in range(5):
                    if target[n, i, j] == 255:
                        continue
                    pc, yc = probs[n, c, i, j].item(), float(target[n, i, j] == c)
                    inter += pc * yc
                    union += pc + yc - pc * yc
        ious.append((inter + 1) / (union + 1))
    assert soft_iou_loss(logits, target).item() == pytest.approx(1 - sum(ious) / 3, rel=1e-5)


def test_segmentation_loss_is_ce_plus_soft_iou_and_ignores_255():
    logits = torch.randn(2, 4, 6, 6)
    target = torch.randint(0, 4, (2, 6, 6))
    target[:, :2] = 255
    ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    assert segmentation_loss(logits, target).item() == pytest.approx((ce + soft_iou_loss(logits, target)).item())
    # changing logits on ignored pixels changes nothing
    other = logits.clone()
    other[:, :, :2] += 10 * torch.randn_like(other[:, :, :2])
    assert segmentation_loss(other, target).item() == pytest.approx(segmentation_loss(logits, target).item())
    all_ignored = torch.full((2, 6, 6), 255)
    assert segmentation_loss(logits, all_ignored).item() == 0.0


def test_phgmm_loss_combines_terms_with_lambdas():
    q, _ = random_mixture(2, 3, 4, seed=10)
    p, _ = random_mixture(2, 3, 4, seed=11)
    mu, sd = torch.randn(2, 4), torch.rand(2, 4) + 0.5
    qg = Independent(Normal(mu, sd), 1)
    logits = torch.randn(2, 5, 8, 8)
    y = torch.randint(0, 5, (2, 8, 8))
    out = PHGMMLoss()(PHGMMOutput(logits=logits, q_z=q, p_z=p, q_g=qg), y)
    assert set(out) == {"total", "g", "z", "s"}
    exp_g = gaussian_kl_closed_form(mu, sd ** 2, torch.zeros(4), torch.ones(4)).mean()
    assert out["g"].item() == pytest.approx(exp_g.item(), rel=1e-5)
    assert out["z"].item() == pytest.approx(gmm_kl(q, p).mean().item(), rel=1e-5)
    assert out["total"].item() == pytest.approx(1.1 * out["g"].item() + 0.4 * out["z"].item() + 0.4 * out["s"].item(), rel=1e-5)
    # plain logits (baselines): only ℓ_s
    plain = PHGMMLoss()(logits, y)
    assert plain["z"].item() == 0 and plain["g"].item() == 0
    assert plain["total"].item() == pytest.approx(0.4 * plain["s"].item())
    # matches torch's own closed form
    ref = kl_divergence(qg, Independent(Normal(torch.zeros(2, 4), torch.ones(2, 4)), 1)).mean()
    assert out["g"].item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("method", ["matched", "mc", "variational"])
@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (4, 3)])
def test_gmm_kl_any_batch_shape_equals_the_items_one_by_one(method, batch):
    """Batch shapes without N, and N×H with H = K (3), give each item's own KL."""
    k, l = 3, 4
    g = torch.Generator().manual_seed(7)
    shape = (*batch, k)
    def mixture(scale):
        return gaussian_mixture(torch.randn(shape, generator=g), scale * torch.randn(*shape, l, generator=g),
                                0.3 * torch.randn(*shape, l, generator=g))
    q, p = mixture(1.0), mixture(1.5)
    torch.manual_seed(0)
    kl = gmm_kl(q, p, method, num_samples=4000 if method == "mc" else 1)
    assert kl.shape == batch
    flat_q = [gaussian_mixture(q.mixture_distribution.logits.reshape(-1, k)[i:i + 1],
                               q.component_distribution.base_dist.loc.reshape(-1, k, l)[i:i + 1],
                               2 * q.component_distribution.base_dist.scale.log().reshape(-1, k, l)[i:i + 1])
              for i in range(int(np.prod(batch)) if batch else 1)]
    flat_p = [gaussian_mixture(p.mixture_distribution.logits.reshape(-1, k)[i:i + 1],
                               p.component_distribution.base_dist.loc.reshape(-1, k, l)[i:i + 1],
                               2 * p.component_distribution.base_dist.scale.log().reshape(-1, k, l)[i:i + 1])
              for i in range(len(flat_q))]
    torch.manual_seed(0)
    one_by_one = torch.stack([gmm_kl(a, b, method, num_samples=4000 if method == "mc" else 1)[0]
                              for a, b in zip(flat_q, flat_p)]).reshape(batch)
    tol = dict(rtol=0.1, atol=0.1) if method == "mc" else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl, one_by_one, **tol)
    assert (kl > -0.05).all()   # a KL (mc within its noise)


def test_free_bits_floor_each_dimension_and_keep_the_reported_terms():
    from phgmm.losses import gaussian_kl_per_dim, gmm_kl_per_dim
    q, _ = random_mixture(2, 3, 4, seed=20)
    p, _ = random_mixture(2, 3, 4, seed=21)
    mu, sd = 0.01 * torch.randn(2, 4), torch.ones(2, 4)
    mu[:, 0] = 3.0                                  # one dimension far above the floor
    qg = Independent(Normal(mu, sd), 1)
    logits, y = torch.randn(2, 5, 8, 8), torch.randint(0, 5, (2, 8, 8))
    out = PHGMMLoss(free_bits=0.5)(PHGMMOutput(logits=logits, q_z=q, p_z=p, q_g=qg), y)
    plain = PHGMMLoss()(PHGMMOutput(logits=logits, q_z=q, p_z=p, q_g=qg), y)
    assert out["g"].item() == pytest.approx(plain["g"].item()) and out["z"].item() == pytest.approx(plain["z"].item())
    g_dims = gaussian_kl_per_dim(qg).mean(0)
    floored_g = torch.clamp(g_dims, min=0.5).sum()
    cat, z_dims = gmm_kl_per_dim(q, p)
    assert (cat.mean() + z_dims.sum(-1).mean()).item() == pytest.approx(gmm_kl(q, p).mean().item(), rel=1e-5)
    floored_z = cat.mean() + torch.clamp(z_dims.mean(0), min=0.5).sum()
    expected = 1.1 * floored_g + 0.4 * floored_z + 0.4 * out["s"]
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert g_dims[0] > 0.5 and (g_dims[1:] < 0.5).all()   # the floor binds where it should
    with pytest.raises(ValueError, match="per dimension"):
        PHGMMLoss(free_bits=0.5, kl="mc")


def test_kl_warmup_ramps_the_latent_terms_only():
    q, _ = random_mixture(2, 3, 4, seed=30)
    p, _ = random_mixture(2, 3, 4, seed=31)
    qg = Independent(Normal(torch.randn(2, 4), torch.ones(2, 4)), 1)
    logits, y = torch.randn(2, 5, 8, 8), torch.randint(0, 5, (2, 8, 8))
    loss = PHGMMLoss(warmup_steps=100)
    out = PHGMMOutput(logits=logits, q_z=q, p_z=p, q_g=qg)
    for step, w in [(0, 0.0), (25, 0.25), (100, 1.0), (500, 1.0), (None, 1.0)]:
        t = loss(out, y, step=step)
        expected = w * (1.1 * t["g"] + 0.4 * t["z"]) + 0.4 * t["s"]
        assert t["total"].item() == pytest.approx(expected.item(), rel=1e-6), step


def test_decode_posterior_mixes_the_two_segmentation_terms():
    logits, post = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 8, 8)
    y = torch.randint(0, 5, (2, 8, 8))
    q, _ = random_mixture(2, 3, 4, seed=40)
    out = PHGMMLoss(decode_posterior=0.75, lambda_z=0.0, lambda_g=0.0)(
        PHGMMOutput(logits=logits, q_z=q, posterior_logits=post), y)
    expected = 0.4 * (0.25 * segmentation_loss(logits, y) + 0.75 * segmentation_loss(post, y))
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["s"].item() == pytest.approx(segmentation_loss(logits, y).item(), rel=1e-6)


@pytest.mark.parametrize("ce_scale", ["mean", "sum"])
def test_auxiliary_heads_add_their_weighted_segmentation_loss(ce_scale):
    """A comparison network's training output: ℓ_s = ℓ_s(main) + Σ w_i ℓ_s(aux_i), each term with the
    loss's ignore index and cross-entropy scale; the total is λ_s ℓ_s (no latent terms)."""
    from phgmm.models.auxiliary import AuxLogits

    g = torch.Generator().manual_seed(0)
    main, a1, a2 = (torch.randn(2, 3, 4, 5, generator=g) for _ in range(3))
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[0, 0] = 7                                       # this loss's ignore index
    loss = PHGMMLoss(ignore_index=7, ce_scale=ce_scale)
    terms = loss(AuxLogits(main, ((0.4, a1), (1.5, a2))), target)
    parts = [segmentation_loss(t, target, 7, ce_scale) for t in (main, a1, a2)]
    assert len({float(p) for p in parts}) == 3
    assert float(terms["s"]) == pytest.approx(float(parts[0] + 0.4 * parts[1] + 1.5 * parts[2]), rel=1e-6)
    assert float(terms["total"]) == pytest.approx(0.4 * float(terms["s"]), rel=1e-6)
    assert float(terms["g"]) == float(terms["z"]) == 0.0
    plain = loss(main, target)
    assert float(plain["s"]) == pytest.approx(float(parts[0]), rel=1e-6)


def test_loss_settings_are_checked_at_their_bounds():
    for bad in (dict(free_bits=-0.1), dict(warmup_steps=-1), dict(free_bits=0.5, kl="mc"),
                dict(geco_alpha=1.0), dict(geco_alpha=-0.1), dict(geco_rate=-1e-3), dict(geco_init=0.0)):
        with pytest.raises(ValueError):
            PHGMMLoss(**bad)
    for good in (dict(free_bits=0.0, kl="mc"), dict(geco_alpha=0.0), dict(geco_rate=0.0), dict(warmup_steps=0)):
        PHGMMLoss(**good)
    loss = PHGMMLoss(mc_samples=3, geco_target=0.5, geco_init=2.0)
    assert loss.mc_samples == 3 and loss.geco_target == 0.5
    assert float(loss.geco_lambda) == 2.0 and float(loss.geco_average) == 0.0 and not bool(loss.geco_started)
    assert {"geco_lambda", "geco_average", "geco_started"} <= set(loss.state_dict())
