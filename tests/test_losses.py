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


def random_mixture(n: int, k: int, dim: int, seed: int, spread: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g)
    mu = spread * torch.randn(n, k, dim, generator=g)
    logvar = 0.5 * torch.randn(n, k, dim, generator=g)
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
            num = sum(
                pq[b] * torch.exp(-gaussian_kl_closed_form(mq[n, a], lq[n, a].exp(), mq[n, b], lq[n, b].exp()))
                for b in range(3)
            )
            den = sum(
                pp[b] * torch.exp(-gaussian_kl_closed_form(mq[n, a], lq[n, a].exp(), mp[n, b], lp[n, b].exp()))
                for b in range(3)
            )
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
    exp_g = gaussian_kl_closed_form(mu, sd**2, torch.zeros(4), torch.ones(4)).mean()
    assert out["g"].item() == pytest.approx(exp_g.item(), rel=1e-5)
    assert out["z"].item() == pytest.approx(gmm_kl(q, p).mean().item(), rel=1e-5)
    assert out["total"].item() == pytest.approx(
        1.1 * out["g"].item() + 0.4 * out["z"].item() + 0.4 * out["s"].item(), rel=1e-5
    )
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
    k, dim = 3, 4
    g = torch.Generator().manual_seed(7)
    shape = (*batch, k)

    def mixture(scale):
        return gaussian_mixture(
            torch.randn(shape, generator=g),
            scale * torch.randn(*shape, dim, generator=g),
            0.3 * torch.randn(*shape, dim, generator=g),
        )

    q, p = mixture(1.0), mixture(1.5)
    torch.manual_seed(0)
    kl = gmm_kl(q, p, method, num_samples=4000 if method == "mc" else 1)
    assert kl.shape == batch
    flat_q = [
        gaussian_mixture(
            q.mixture_distribution.logits.reshape(-1, k)[i : i + 1],
            q.component_distribution.base_dist.loc.reshape(-1, k, dim)[i : i + 1],
            2 * q.component_distribution.base_dist.scale.log().reshape(-1, k, dim)[i : i + 1],
        )
        for i in range(int(np.prod(batch)) if batch else 1)
    ]
    flat_p = [
        gaussian_mixture(
            p.mixture_distribution.logits.reshape(-1, k)[i : i + 1],
            p.component_distribution.base_dist.loc.reshape(-1, k, dim)[i : i + 1],
            2 * p.component_distribution.base_dist.scale.log().reshape(-1, k, dim)[i : i + 1],
        )
        for i in range(len(flat_q))
    ]
    torch.manual_seed(0)
    one_by_one = torch.stack(
        [
            gmm_kl(a, b, method, num_samples=4000 if method == "mc" else 1)[0]
            for a, b in zip(flat_q, flat_p, strict=True)
        ]
    ).reshape(batch)
    tol = dict(rtol=0.1, atol=0.1) if method == "mc" else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl, one_by_one, **tol)
    assert (kl > -0.05).all()  # a KL (mc within its noise)


def test_free_bits_floor_each_dimension_and_keep_the_reported_terms():
    from phgmm.losses import gaussian_kl_per_dim, gmm_kl_per_dim

    q, _ = random_mixture(2, 3, 4, seed=20)
    p, _ = random_mixture(2, 3, 4, seed=21)
    mu, sd = 0.01 * torch.randn(2, 4), torch.ones(2, 4)
    mu[:, 0] = 3.0  # one dimension far above the floor
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
    assert g_dims[0] > 0.5 and (g_dims[1:] < 0.5).all()  # the floor binds where it should
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
        PHGMMOutput(logits=logits, q_z=q, posterior_logits=post), y
    )
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
    target[0, 0] = 7  # this loss's ignore index
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
    for bad in (
        dict(free_bits=-0.1),
        dict(warmup_steps=-1),
        dict(free_bits=0.5, kl="mc"),
        dict(geco_alpha=1.0),
        dict(geco_alpha=-0.1),
        dict(geco_rate=-1e-3),
        dict(geco_init=0.0),
    ):
        with pytest.raises(ValueError):
            PHGMMLoss(**bad)
    for good in (dict(free_bits=0.0, kl="mc"), dict(geco_alpha=0.0), dict(geco_rate=0.0), dict(warmup_steps=0)):
        PHGMMLoss(**good)
    loss = PHGMMLoss(mc_samples=3, geco_target=0.5, geco_init=2.0)
    assert loss.mc_samples == 3 and loss.geco_target == 0.5
    assert float(loss.geco_lambda) == 2.0 and float(loss.geco_average) == 0.0 and not bool(loss.geco_started)
    assert {"geco_lambda", "geco_average", "geco_started"} <= set(loss.state_dict())


def _message(fn, *args, error=ValueError, **kw):
    with pytest.raises(error) as e:
        fn(*args, **kw)
    return str(e.value)


def test_error_messages_in_full():
    """The messages say what was wrong and what is accepted; they are the interface for a bad setting."""
    from torch.distributions import Categorical, Laplace, MixtureSameFamily

    from phgmm.losses import gmm_kl_per_dim

    q3, _ = random_mixture(2, 3, 4, seed=0)
    q2, _ = random_mixture(2, 2, 4, seed=1)
    assert _message(gmm_kl, q3, q3, "exact") == "unknown KL method 'exact'; choose one of matched, mc, variational"
    same = "the matched KL needs the same number of components in q and p"
    assert _message(gmm_kl, q3, q2) == same and _message(gmm_kl_per_dim, q3, q2) == same
    assert _message(gmm_kl, q3, q3, "mc", 0) == "num_samples must be >= 1, got 0"
    # components that are not Independent(Normal): plain Normals, or Independent Laplaces
    mix = Categorical(logits=torch.zeros(2, 3))
    not_independent = MixtureSameFamily(mix, Normal(torch.zeros(2, 3), torch.ones(2, 3)))
    laplace = MixtureSameFamily(mix, Independent(Laplace(torch.zeros(2, 3, 4), torch.ones(2, 3, 4)), 1))
    for bad in (not_independent, laplace):
        assert _message(gmm_kl, bad, q3, error=TypeError) == "gmm_kl expects mixtures of Independent(Normal) components"
        assert _message(gmm_kl, q3, bad, error=TypeError) == "gmm_kl expects mixtures of Independent(Normal) components"
    logits, target = torch.randn(2, 3, 4, 5), torch.zeros(2, 4, 6, dtype=torch.long)
    assert _message(segmentation_loss, logits, target) == "logits are (4, 5) but labels are (4, 6)"
    assert _message(segmentation_loss, logits, target[..., :5], ce_scale="half") == (
        "unknown ce_scale 'half'; choose one of mean, eq7, sum"
    )
    assert _message(PHGMMLoss, kl="exact") == "unknown KL method 'exact'; choose one of matched, mc, variational"
    assert _message(PHGMMLoss, ce_scale="half") == "unknown ce_scale 'half'; choose one of mean, eq7, sum"
    assert _message(PHGMMLoss, kl_direction="both") == (
        "unknown kl_direction 'both'; choose one of q_to_posterior, posterior_to_q"
    )
    assert _message(PHGMMLoss, free_bits=-1) == "free_bits and warmup_steps must be >= 0"
    assert (
        _message(PHGMMLoss, free_bits=0.5, kl="mc") == "free bits need a KL per dimension: use kl='matched', not 'mc'"
    )
    assert _message(PHGMMLoss, geco_alpha=1.0) == "GECO needs 0 <= geco_alpha < 1, geco_rate >= 0 and geco_init > 0"


def test_kl_per_dimension_against_the_closed_form_written_out():
    """gaussian_kl_per_dim against a given prior, and the matched bound's parts, item by item."""
    from phgmm.losses import gaussian_kl_per_dim, gmm_kl_per_dim

    g = torch.Generator().manual_seed(3)
    mq, sq = torch.randn(2, 5, 4, generator=g), torch.rand(2, 5, 4, generator=g) + 0.5
    mp, sp = torch.randn(2, 5, 4, generator=g), torch.rand(2, 5, 4, generator=g) + 0.5
    q, p = Independent(Normal(mq, sq), 1), Independent(Normal(mp, sp), 1)
    by_hand = 0.5 * (torch.log(sp**2 / sq**2) + (sq**2 + (mq - mp) ** 2) / sp**2 - 1)
    torch.testing.assert_close(gaussian_kl_per_dim(q, p), by_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        gaussian_kl_per_dim(q), 0.5 * (sq**2 + mq**2 - 1 - torch.log(sq**2)), rtol=1e-5, atol=1e-6
    )
    # mixtures with batch 2×5 and K = 3 components over L = 4 dimensions
    qm, (lq, muq, lvq) = random_mixture(10, 3, 4, seed=8)
    pm, (lp, mup, lvp) = random_mixture(10, 3, 4, seed=9)
    shape = lambda t: t.reshape(2, 5, *t.shape[1:])  # noqa: E731
    qm, pm = gaussian_mixture(shape(lq), shape(muq), shape(lvq)), gaussian_mixture(shape(lp), shape(mup), shape(lvp))
    cat, per_dim = gmm_kl_per_dim(qm, pm)
    assert cat.shape == (2, 5) and per_dim.shape == (2, 5, 4)
    for n in range(10):
        b, h = divmod(n, 5)
        pq, pp = torch.softmax(lq[n], 0), torch.softmax(lp[n], 0)
        vq, vp = lvq[n].exp(), lvp[n].exp()
        kl_k = 0.5 * (torch.log(vp / vq) + (vq + (muq[n] - mup[n]) ** 2) / vp - 1)  # K×L
        assert cat[b, h].item() == pytest.approx((pq * torch.log(pq / pp)).sum().item(), rel=1e-5, abs=1e-6)
        torch.testing.assert_close(per_dim[b, h], (pq[:, None] * kl_k).sum(0), rtol=1e-5, atol=1e-6)
    # batch N alone (N×K×L components): the sum runs over K there too
    flat_cat, flat_per_dim = gmm_kl_per_dim(gaussian_mixture(lq, muq, lvq), gaussian_mixture(lp, mup, lvp))
    torch.testing.assert_close(flat_per_dim, per_dim.reshape(10, 4))
    torch.testing.assert_close(flat_cat, cat.reshape(10))


def test_mc_draws_one_sample_per_component_unless_told():
    q, _ = random_mixture(3, 2, 4, seed=12)
    p, _ = random_mixture(3, 2, 4, seed=13)

    def seeded(fn):
        torch.manual_seed(5)
        return fn()

    one = seeded(lambda: gmm_kl(q, p, "mc", num_samples=1))
    assert torch.equal(seeded(lambda: gmm_kl(q, p, "mc")), one)
    assert not torch.equal(seeded(lambda: gmm_kl(q, p, "mc", num_samples=2)), one)
    # the same draw by hand: z = μ + σ·ε for every component, log q(z) − log p(z) weighted by π
    torch.manual_seed(5)
    eps = torch.randn(1, 3, 2, 4)
    comp = q.component_distribution.base_dist
    z = (comp.loc + comp.scale * eps)[0]  # 3×2×4
    ratio = torch.stack([q.log_prob(z[:, k]) - p.log_prob(z[:, k]) for k in range(2)], -1)  # 3×2
    torch.testing.assert_close(one, (q.mixture_distribution.probs * ratio).sum(-1), rtol=1e-5, atol=1e-5)
    # PHGMMLoss passes its own mc_samples (1 by default)
    logits, y = torch.randn(3, 4, 2, 2), torch.randint(0, 4, (3, 2, 2))
    out = PHGMMOutput(logits=logits, q_z=q, p_z=p)
    assert seeded(lambda: PHGMMLoss(kl="mc")(out, y)["z"]).item() == pytest.approx(one.mean().item(), rel=1e-6)
    three = seeded(lambda: gmm_kl(q, p, "mc", num_samples=3)).mean()
    assert seeded(lambda: PHGMMLoss(kl="mc", mc_samples=3)(out, y)["z"]).item() == pytest.approx(three.item(), rel=1e-6)
    assert three.item() != pytest.approx(one.mean().item(), rel=1e-3)


@pytest.mark.parametrize("kl", ["matched", "variational"])
def test_the_loss_uses_its_kl_method_on_any_batch_shape(kl):
    """ℓ_z is the chosen estimator's KL averaged over every batch item (N×H here), with free bits
    or without; ℓ_g likewise sums each item's dimensions."""
    _, (lq, muq, lvq) = random_mixture(6, 3, 4, seed=14)
    _, (lp, mup, lvp) = random_mixture(6, 3, 4, seed=15)
    shape = lambda t: t.reshape(2, 3, *t.shape[1:])  # noqa: E731
    q, p = gaussian_mixture(shape(lq), shape(muq), shape(lvq)), gaussian_mixture(shape(lp), shape(mup), shape(lvp))
    mu, sd = torch.randn(2, 3, 4), torch.rand(2, 3, 4) + 0.5
    qg = Independent(Normal(mu, sd), 1)
    logits, y = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    items_z = torch.stack(
        [
            gmm_kl(
                gaussian_mixture(lq[n : n + 1], muq[n : n + 1], lvq[n : n + 1]),
                gaussian_mixture(lp[n : n + 1], mup[n : n + 1], lvp[n : n + 1]),
                kl,
            )[0]
            for n in range(6)
        ]
    )
    items_g = 0.5 * (sd**2 + mu**2 - 1 - torch.log(sd**2)).sum(-1)  # 2×3
    out = PHGMMLoss(kl=kl)(PHGMMOutput(logits=logits, q_z=q, p_z=p, q_g=qg), y)
    assert out["z"].item() == pytest.approx(items_z.mean().item(), rel=1e-5)
    assert out["g"].item() == pytest.approx(items_g.mean().item(), rel=1e-5)
    if kl == "matched":
        floored = PHGMMLoss(free_bits=1e-4)(PHGMMOutput(logits=logits, q_z=q, p_z=p, q_g=qg), y)
        assert floored["z"].item() == pytest.approx(items_z.mean().item(), rel=1e-5)
    else:  # the variational estimate is not the matched bound
        assert abs(out["z"].item() - gmm_kl(q, p, "matched").mean().item()) > 1e-3


def test_ignore_index_reaches_the_soft_iou_term():
    """Pixels labelled with a custom ignore index (7) leave both terms of ℓ_s."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 5, generator=g)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[:, 0] = 7
    keep = target != 7
    ce = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], target[keep])
    probs = torch.softmax(logits, 1).permute(0, 2, 3, 1)[keep]  # P×3
    onehot = torch.nn.functional.one_hot(target[keep], 3).float()
    iou = ((probs * onehot).sum(0) + 1) / ((probs + onehot - probs * onehot).sum(0) + 1)
    assert segmentation_loss(logits, target, ignore_index=7).item() == pytest.approx(
        (ce + 1 - iou.mean()).item(), rel=1e-5
    )


def test_warmup_of_one_step_and_the_defaults_of_the_remedies():
    q, _ = random_mixture(2, 3, 4, seed=30)
    p, _ = random_mixture(2, 3, 4, seed=31)
    assert PHGMMLoss(warmup_steps=1).kl_weight(0) == 0.0 and PHGMMLoss(warmup_steps=1).kl_weight(1) == 1.0
    assert PHGMMLoss(warmup_steps=4).kl_weight(1) == 0.25 and PHGMMLoss().kl_weight(0) == 1.0
    logits, post, y = torch.randn(2, 5, 4, 4), torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    s = segmentation_loss(logits, y).item()
    # by default the posterior decode is not trained on, and is not even in the graph
    post.requires_grad_(True)
    out = PHGMMLoss(lambda_z=0.0)(PHGMMOutput(logits=logits, q_z=q, p_z=p, posterior_logits=post), y)
    assert out["total"].item() == pytest.approx(0.4 * s, rel=1e-6)
    assert not out["total"].requires_grad and post.grad is None
    # a share of the posterior decode without posterior logits: ℓ_s alone
    out = PHGMMLoss(decode_posterior=0.5, lambda_z=0.0)(PHGMMOutput(logits=logits, q_z=q, p_z=p), y)
    assert out["total"].item() == pytest.approx(0.4 * s, rel=1e-6)
    # GECO's default rate (0.01) and averaging (0.99), and its value outside training steps
    geco = PHGMMLoss(geco_target=0.5, lambda_z=0.0)
    t0 = geco(logits, y, step=0)
    assert t0["total"].item() == pytest.approx(s - 0.5, rel=1e-5)
    assert geco.geco_lambda.item() == pytest.approx(math.exp(0.01 * (s - 0.5)), rel=1e-6)
    geco(logits * 2, y, step=1)
    s2 = segmentation_loss(logits * 2, y).item()
    avg = 0.99 * (s - 0.5) + 0.01 * (s2 - 0.5)
    assert geco.geco_average.item() == pytest.approx(avg, rel=1e-5)
    lam = geco.geco_lambda.item()
    assert lam == pytest.approx(math.exp(0.01 * (s - 0.5)) * math.exp(0.01 * avg), rel=1e-6)
    geco.eval()
    assert geco(logits, y, step=2)["total"].item() == pytest.approx(lam * (s - 0.5), rel=1e-5)
    assert geco.geco_lambda.item() == lam


def test_geco_multiplier_is_kept_between_1e_minus_6_and_1e6():
    logits, y = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    up = PHGMMLoss(geco_target=-100.0, geco_rate=1.0)  # constraint ≈ +100: exp(100) unclamped
    up(logits, y, step=0)
    assert up.geco_lambda.item() == 1e6
    down = PHGMMLoss(geco_target=100.0, geco_rate=1.0)  # constraint ≈ −100
    down(logits, y, step=0)
    assert down.geco_lambda.item() == pytest.approx(1e-6, rel=1e-6)
    inside = PHGMMLoss(geco_target=0.0, geco_rate=1.0, geco_init=3.0)
    inside(logits, y, step=0)
    assert inside.geco_lambda.item() == pytest.approx(3.0 * math.exp(segmentation_loss(logits, y).item()), rel=1e-5)


def test_geco_in_a_process_group_follows_the_mean_constraint(tmp_path):
    """With torch.distributed initialised (gloo, one process), the constraint is all-reduced and
    divided by the world size: the multiplier moves exactly as without a group."""
    import torch.distributed as dist

    logits, y = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    s = segmentation_loss(logits, y).item()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loss = PHGMMLoss(geco_target=0.5, geco_rate=0.3)
        t = loss(logits, y, step=0)
    finally:
        dist.destroy_process_group()
    assert t["total"].item() == pytest.approx(s - 0.5, rel=1e-5)
    assert loss.geco_average.item() == pytest.approx(s - 0.5, rel=1e-5)
    assert loss.geco_lambda.item() == pytest.approx(math.exp(0.3 * (s - 0.5)), rel=1e-5)
