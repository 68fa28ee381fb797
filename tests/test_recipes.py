"""The objectives beside the default: Eq. 7 as printed (1/C), the Probabilistic U-Net recipe
(KL(posterior ‖ prior), decoder on posterior samples, summed cross-entropy), GECO, and the
normalised summary — each against losses and values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from phgmm.config import RECIPES, ConfigError, config_from_dict, config_to_dict, load_config
from phgmm.engine.builders import build_loss, build_model_from_config
from phgmm.losses import PHGMMLoss, segmentation_loss
from phgmm.models.latent import MultiLevelSummary, gaussian_mixture
from phgmm.models.phgmm import PHGMM, PHGMMOutput

# Two images of 1×2 pixels, three classes; image 1's second pixel is ignored.
LOGITS = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]], [[-1.0, 0.0]]], [[[0.5, 0.0]], [[0.0, 0.0]], [[1.0, 3.0]]]])
LABELS = torch.tensor([[[0, 255]], [[2, 1]]])


def _hand_ce() -> list[float]:
    """Cross-entropy of each labelled pixel, written out: −log softmax."""
    out = []
    for n, w in ((0, 0), (1, 0), (1, 1)):
        z = [float(LOGITS[n, c, 0, w]) for c in range(3)]
        c = int(LABELS[n, 0, w])
        out.append(-(z[c] - math.log(sum(math.exp(v) for v in z))))
    return out


def _hand_soft_iou_loss() -> float:
    """1 − mean over classes of (Σ p·y + 1) / (Σ (p + y − p·y) + 1) over the labelled pixels."""
    pix = [(0, 0), (1, 0), (1, 1)]
    ious = []
    for c in range(3):
        inter = union = 0.0
        for n, w in pix:
            z = [float(LOGITS[n, k, 0, w]) for k in range(3)]
            p = math.exp(z[c]) / sum(math.exp(v) for v in z)
            y = 1.0 if int(LABELS[n, 0, w]) == c else 0.0
            inter += p * y
            union += p + y - p * y
        ious.append((inter + 1) / (union + 1))
    return 1 - sum(ious) / 3


def test_ce_scales_against_hand_computed_values():
    ce, iou = _hand_ce(), _hand_soft_iou_loss()
    mean = sum(ce) / 3  # three labelled pixels
    assert segmentation_loss(LOGITS, LABELS).item() == pytest.approx(mean + iou, rel=1e-6)
    assert segmentation_loss(LOGITS, LABELS, ce_scale="mean").item() == pytest.approx(mean + iou, rel=1e-6)
    # Eq. 7 as printed: −(1/C) Σ_c y_c log y'_c per pixel, C = 3
    assert segmentation_loss(LOGITS, LABELS, ce_scale="eq7").item() == pytest.approx(mean / 3 + iou, rel=1e-6)
    # summed over each image's labelled pixels, averaged over the two images
    assert segmentation_loss(LOGITS, LABELS, ce_scale="sum").item() == pytest.approx(sum(ce) / 2 + iou, rel=1e-6)
    with pytest.raises(ValueError, match="ce_scale"):
        segmentation_loss(LOGITS, LABELS, ce_scale="half")


def _k1(mu: float, var: float, dims: int = 2):
    """One-component mixtures (batch 1) over R^dims with equal means and variances."""
    m = torch.full((1, 1, dims), mu)
    return gaussian_mixture(torch.zeros(1, 1), m, torch.full((1, 1, dims), math.log(var)))


def test_kl_direction_picks_which_distribution_is_first():
    q, p = _k1(0.0, 1.0), _k1(1.0, 4.0)  # q(z|x) = N(0, 1), PostNet's posterior N(1, 4)
    # KL(N(a, va) ‖ N(b, vb)) per dimension = ½ (log(vb/va) + (va + (a − b)²)/vb − 1), two dimensions
    forward = 2 * 0.5 * (math.log(4) + (1 + 1) / 4 - 1)
    reverse = 2 * 0.5 * (math.log(1 / 4) + (4 + 1) / 1 - 1)
    logits = LOGITS[:1]
    out = PHGMMOutput(logits=logits, q_z=q, p_z=p)
    assert PHGMMLoss()(out, LABELS[:1])["z"].item() == pytest.approx(forward, rel=1e-5)
    assert PHGMMLoss(kl_direction="posterior_to_q")(out, LABELS[:1])["z"].item() == pytest.approx(reverse, rel=1e-5)
    assert PHGMMLoss(kl_direction="posterior_to_q", free_bits=0.1)(out, LABELS[:1])["z"].item() == pytest.approx(
        reverse, rel=1e-5
    )
    with pytest.raises(ValueError, match="kl_direction"):
        PHGMMLoss(kl_direction="sideways")


def test_paper_recipe_total_is_eq3_with_eq7_written_out():
    cfg = load_config(None, ["recipe=paper"])
    assert cfg.loss.ce_scale == "eq7" and cfg.recipe == "paper"
    q, p = _k1(0.0, 1.0), _k1(1.0, 4.0)
    q_g = torch.distributions.Independent(torch.distributions.Normal(torch.full((1, 3), 0.5), torch.ones(1, 3)), 1)
    terms = build_loss(cfg)(PHGMMOutput(logits=LOGITS[:1], q_z=q, p_z=p, q_g=q_g), LABELS[:1])
    ce = _hand_ce()[0]  # image 0 has one labelled pixel
    pix_logits = [float(LOGITS[0, c, 0, 0]) for c in range(3)]
    probs = [math.exp(v) / sum(math.exp(u) for u in pix_logits) for v in pix_logits]
    iou = 1 - sum(((probs[c] * (c == 0)) + 1) / ((probs[c] + (c == 0) - probs[c] * (c == 0)) + 1) for c in range(3)) / 3
    l_s = ce / 3 + iou
    l_g = 3 * 0.5 * 0.25  # KL(N(0.5, 1) ‖ N(0, 1)) = ½ μ² per dimension
    l_z = 2 * 0.5 * (math.log(4) + 2 / 4 - 1)
    assert terms["s"].item() == pytest.approx(l_s, rel=1e-5)
    assert terms["total"].item() == pytest.approx(1.1 * l_g + 0.4 * l_z + 0.4 * l_s, rel=1e-5)


def test_punet_recipe_expands_and_its_loss_is_the_elbo_on_posterior_samples():
    cfg = load_config(None, ["recipe=punet"])
    assert (cfg.model.decode_posterior, cfg.model.sample_latent, cfg.loss.kl_direction, cfg.loss.ce_scale) == (
        1.0,
        True,
        "posterior_to_q",
        "sum",
    )
    assert (cfg.loss.lambda_s, cfg.loss.lambda_z, cfg.loss.lambda_g) == (1.0, 1.0, 1.0)
    q, p = _k1(0.0, 1.0), _k1(1.0, 4.0)
    post_logits = LOGITS.flip(1)  # the decode of the posterior sample: other logits
    out = PHGMMOutput(logits=LOGITS, q_z=_k1_batch(q, 2), p_z=_k1_batch(p, 2), posterior_logits=post_logits)
    terms = build_loss(cfg)(out, LABELS)
    reverse = 2 * 0.5 * (math.log(1 / 4) + (4 + 1) / 1 - 1)
    # ℓ_s of the q path is logged; only the posterior decode's (summed) ℓ_s is optimised
    expected = reverse + segmentation_loss(post_logits, LABELS, ce_scale="sum").item()
    assert terms["total"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["s"].item() == pytest.approx(segmentation_loss(LOGITS, LABELS, ce_scale="sum").item(), rel=1e-6)
    # the q path's logits get no gradient: the decoder learns from posterior samples only
    logits = LOGITS[:1].clone().requires_grad_(True)
    post = post_logits[:1].clone().requires_grad_(True)
    build_loss(cfg)(PHGMMOutput(logits=logits, q_z=q, p_z=p, posterior_logits=post), LABELS[:1])["total"].backward()
    assert float(post.grad.abs().sum()) > 0
    assert logits.grad is None or float(logits.grad.abs().sum()) == 0.0


def _k1_batch(m, n: int):
    comp = m.component_distribution.base_dist
    return gaussian_mixture(torch.zeros(n, 1), comp.loc.expand(n, -1, -1), (2 * comp.scale.log()).expand(n, -1, -1))


def test_recipe_keys_beside_it_win_wherever_they_stand():
    cfg = config_from_dict({"model": {"decode_posterior": 0.5}, "recipe": "punet"})
    assert cfg.model.decode_posterior == 0.5 and cfg.loss.ce_scale == "sum"
    cfg = load_config(None, ["loss.ce_scale=mean", "recipe=punet"])
    assert cfg.loss.ce_scale == "mean" and cfg.loss.kl_direction == "posterior_to_q"
    # a saved config (recipe and every resolved key) loads back to the same values
    assert config_to_dict(config_from_dict(config_to_dict(cfg))) == config_to_dict(cfg)
    with pytest.raises(ConfigError, match="unknown recipe 'vae'"):
        load_config(None, ["recipe=vae"])
    assert set(RECIPES) >= {"paper", "punet", "geco"}


def test_geco_multiplier_follows_the_moving_average_by_hand():
    kappa, rate, alpha = 0.5, 0.3, 0.9
    loss = PHGMMLoss(geco_target=kappa, geco_rate=rate, geco_alpha=alpha)
    q, p = _k1(0.0, 1.0), _k1(1.0, 4.0)
    l_z = 2 * 0.5 * (math.log(4) + 2 / 4 - 1)
    logits1 = LOGITS.clone().requires_grad_(True)
    s1 = segmentation_loss(LOGITS, LABELS).item()
    t1 = loss(PHGMMOutput(logits=logits1, q_z=_k1_batch(q, 2), p_z=_k1_batch(p, 2)), LABELS, step=0)
    c1 = s1 - kappa  # first step: the average starts at the constraint
    assert t1["total"].item() == pytest.approx(0.4 * l_z + 1.0 * c1, rel=1e-5)
    lam1 = math.exp(rate * c1)
    assert loss.geco_lambda.item() == pytest.approx(lam1, rel=1e-6)
    logits2 = (LOGITS * 0.5).requires_grad_(True)
    s2 = segmentation_loss(LOGITS * 0.5, LABELS).item()
    t2 = loss(PHGMMOutput(logits=logits2, q_z=_k1_batch(q, 2), p_z=_k1_batch(p, 2)), LABELS, step=1)
    avg2 = alpha * c1 + (1 - alpha) * (s2 - kappa)
    assert t2["total"].item() == pytest.approx(0.4 * l_z + lam1 * avg2, rel=1e-5)
    assert loss.geco_average.item() == pytest.approx(avg2, rel=1e-6)
    assert loss.geco_lambda.item() == pytest.approx(lam1 * math.exp(rate * avg2), rel=1e-6)
    # the gradient is ℓ_s's, scaled by the multiplier in force at that step
    t2["total"].backward()
    ref = (LOGITS * 0.5).requires_grad_(True)
    segmentation_loss(ref, LABELS).backward()
    torch.testing.assert_close(logits2.grad, lam1 * ref.grad, rtol=1e-5, atol=1e-7)
    # no step (evaluation) moves nothing; the state travels in state_dict
    before = loss.state_dict()
    loss(PHGMMOutput(logits=LOGITS, q_z=_k1_batch(q, 2), p_z=_k1_batch(p, 2)), LABELS)
    assert loss.geco_lambda.item() == before["geco_lambda"].item()
    fresh = PHGMMLoss(geco_target=kappa, geco_rate=rate, geco_alpha=alpha)
    fresh.load_state_dict(before)
    assert fresh.geco_lambda.item() == pytest.approx(lam1 * math.exp(rate * avg2), rel=1e-6)
    assert bool(fresh.geco_started)


def test_geco_recipe_from_config():
    cfg = load_config(None, ["recipe=geco"])
    loss = build_loss(cfg)
    assert loss.geco_target == cfg.loss.geco_target == RECIPES["geco"]["loss.geco_target"]
    assert loss.geco_lambda.item() == 1.0
    with pytest.raises(ConfigError, match="geco_alpha"):
        load_config(None, ["loss.geco_alpha=1.0"])


def test_normalised_summary_cannot_be_saturated_off():
    torch.manual_seed(0)
    feats = [torch.randn(4, c, 6, 6) + torch.randn(4, 1, 1, 1) for c in (8, 16)]
    plain, normed = MultiLevelSummary((8, 16), 3), MultiLevelSummary((8, 16), 3, norm="batch")
    normed.convs.load_state_dict(plain.convs.state_dict())
    for m in (plain, normed):  # what training did to the shipped network: bias far below 0
        for conv in m.convs:
            torch.nn.init.constant_(conv.bias, -20.0)
    with torch.no_grad():
        s_plain, s_norm = plain(feats), normed(feats)
    assert float(s_plain.max()) < 1e-6  # saturated: a constant 0
    assert 0.2 < float(s_norm.mean()) < 0.8  # pre-sigmoid maps re-centred per channel
    assert float(s_norm.var(0).mean()) > 1e-4  # and the summary still differs between images
    with pytest.raises(ValueError, match="summary norm"):
        MultiLevelSummary((8,), 3, norm="group")


def test_summary_norm_from_config_reaches_every_summary():
    cfg = load_config(
        None,
        [
            "model.backbone=resnet18",
            "model.postnet=light",
            "model.summary_norm=batch",
            "model.decoder_units=[1,1,1,1]",
            "model.latent_dim=4",
            "model.num_components=2",
        ],
    )
    model = build_model_from_config(cfg)
    assert all(m.summary.norms is not None for m in (model.local_space, model.global_space, model.postnet))
    assert model.build_args["summary_norm"] == "batch"
    default = load_config(None, ["model.backbone=resnet18"]).model.summary_norm
    assert default == "none"
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 12, (2, 64, 64))
    s_z, s_g, _ = model.level_maps(model.encoder(x))
    ref = model.local_space.summary(model.encoder(x))  # the merged convolution gives the same summary
    torch.testing.assert_close(s_z, ref, rtol=1e-4, atol=1e-5)
    assert model(x, y).logits.shape == (2, 12, 64, 64)


def test_phgmm_class_has_its_docstring():
    assert PHGMM.__doc__ and PHGMM.__doc__.startswith("Probabilistic Hourglass")
    assert "summary_norm" in PHGMM.__doc__
