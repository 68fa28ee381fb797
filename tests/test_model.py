"""PHGMM forward shapes, distributions, inference behaviour and Alg. 1's gradient routing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, MixtureSameFamily

import phgmm
from phgmm import PHGMM, PHGMMLoss
from phgmm.models import build_model
from phgmm.models.postnet import one_hot_labels

SMALL = dict(backbone="resnet18", decoder_units=(1, 1, 1, 1))


def labels(n, h, w, c=12):
    y = torch.randint(0, c, (n, h, w))
    y[:, :3, :3] = 255
    return y


def test_training_output_holds_the_distributions():
    # the logits' size at odd sizes, for every network: tests/test_models_odd_sizes.py
    n, h, w = 2, 61, 97
    model = PHGMM(postnet="light", **SMALL).train()
    out = model(torch.randn(n, 3, h, w), labels(n, h, w))
    assert out.logits.shape == (n, 12, h, w)
    assert isinstance(out.q_z, MixtureSameFamily) and isinstance(out.p_z, MixtureSameFamily)
    assert isinstance(out.q_g, Independent)
    assert out.q_z.batch_shape == (n,) and out.q_z.event_shape == (256,)
    assert out.q_z.mixture_distribution.probs.shape == (n, 12)
    assert out.p_z.event_shape == (256,) and out.q_g.event_shape == (256,)


def test_paper_resolution_resnet18_train_and_eval():
    model = PHGMM(postnet="full", backbone="resnet18")
    x = torch.randn(1, 3, 384, 768)
    out = model(x, labels(1, 384, 768))
    assert out.logits.shape == (1, 12, 384, 768)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (1, 12, 384, 768)


@pytest.mark.parametrize("k", [1, 16])
@pytest.mark.parametrize("use_global", [True, False])
def test_components_and_global_switch(k, use_global):
    model = PHGMM(num_components=k, use_global=use_global, postnet="light", **SMALL)
    out = model(torch.randn(2, 3, 64, 128), labels(2, 64, 128))
    assert out.q_z.mixture_distribution.probs.shape == (2, k)
    assert out.p_z.mixture_distribution.probs.shape == (2, k)
    assert (out.q_g is not None) == use_global
    assert (model.global_space is not None) == use_global
    loss = PHGMMLoss()(out, labels(2, 64, 128))
    assert torch.isfinite(loss["total"])
    if not use_global:
        assert loss["g"].item() == 0.0


@pytest.mark.parametrize(
    "backbone,channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048), ("resnet101", 2048)]
)
def test_every_backbone_depth(backbone, channels):
    model = PHGMM(backbone=backbone, postnet=None, decoder_units=(1, 1, 1, 1))
    assert model.encoder.channels[-1] == channels
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 97)).shape == (1, 12, 65, 97)


def test_inference_never_runs_postnet():
    model = PHGMM(postnet="light", **SMALL).eval()
    calls = []
    model.postnet.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model(x)
        model.predict(x)
        model.sample_logits(x, 2)
    assert calls == []
    model.train()
    model(x, labels(2, 64, 64))
    assert calls == [1]


def test_p_z_none_without_labels_or_postnet():
    model = PHGMM(postnet="light", **SMALL)
    assert model(torch.randn(1, 3, 64, 64)).p_z is None
    model = PHGMM(postnet=None, **SMALL)
    assert model.postnet is None
    assert model(torch.randn(1, 3, 64, 64), labels(1, 64, 64)).p_z is None


def test_eval_forward_equals_forward_latent_logits_and_decodes_the_means():
    model = PHGMM(postnet=None, **SMALL).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_latent(x).logits)
        assert torch.equal(model.predict(x), model(x).argmax(1))


def literal_logits(model: PHGMM, x: torch.Tensor) -> torch.Tensor:
    """The eval forward written out as SPEC §2 reads: three separate convolutions per encoder level,
    every side map upsampled to H/4 and concatenated, then the merge's two 1×1 convolutions."""

    def up(t, size):
        return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)

    feats = model.encoder(x)
    ls, gs, dec, head = model.local_space, model.global_space, model.decoder, model.head
    grid, h4 = feats[3].shape[-2:], feats[0].shape[-2:]
    logits_pi, mu, _ = ls.heads(ls.summary(feats))
    h = dec.input(ls.decode_input(torch.softmax(logits_pi, 1), mu, tuple(grid)))
    maps = []
    for group, f in zip(dec.groups, reversed(feats), strict=True):
        h = group.units(up(h, f.shape[-2:]) + group.skip(f))
        maps.append(up(group.side(h), h4))
    if gs is not None:
        maps.append(up(gs.feature_map(gs.mu(gs.summary(feats)), tuple(grid)), h4))
    logits = head.upsample(head.classifier(head.fuse(torch.cat(maps, 1))))
    return logits[..., : x.shape[-2], : x.shape[-1]]


@pytest.mark.parametrize("use_global", [True, False])
@pytest.mark.parametrize("h,w", [(65, 97), (128, 64)])
def test_shared_level_convolution_and_early_merge_equal_the_literal_network(use_global, h, w):
    torch.manual_seed(3)
    model = PHGMM(postnet=None, use_global=use_global, decoder_channels=12, **SMALL)
    for m in model.modules():  # non-trivial BN statistics, so a misplaced BN would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        ref = literal_logits(model, x)
        out = model(x)
    assert ref.abs().max() > 1e-2  # not a vacuous comparison of near-zero maps
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    if use_global:  # the summaries inside the shared convolution are the modules' own
        feats = model.encoder(x)
        s_z, s_g, skips = model.level_maps(feats)
        torch.testing.assert_close(s_z, model.local_space.summary(feats))
        torch.testing.assert_close(s_g, model.global_space.summary(feats))
        torch.testing.assert_close(skips[0], model.decoder.groups[3].skip[0](feats[0]))


def test_autocast_keeps_the_latent_distributions_in_fp32():
    torch.manual_seed(0)
    model = PHGMM(postnet="light", **SMALL)
    x, y = torch.randn(2, 3, 64, 96), labels(2, 64, 96)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, y)
        loss = PHGMMLoss()(out, y)
    # the ×4 class upsampling runs in fp32 under CPU autocast (models/layers.ConvTranspose2d)
    assert out.logits.dtype == torch.float32
    for d in (out.q_z.component_distribution.base_dist, out.p_z.component_distribution.base_dist, out.q_g.base_dist):
        assert d.loc.dtype == torch.float32 and d.scale.dtype == torch.float32
    assert out.q_z.mixture_distribution.logits.dtype == torch.float32
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in loss.values())
    loss["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_merge_rejects_maps_of_the_wrong_width():
    model = PHGMM(postnet=None, **SMALL)
    with pytest.raises(ValueError, match="merge expects"):
        model.head([torch.zeros(1, 5, 4, 4)], (4, 4), (16, 16))


def test_sample_logits_draws_different_samples_around_the_mean():
    model = PHGMM(postnet=None, **SMALL).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        s = model.sample_logits(x, 4)
    assert s.shape == (4, 1, 12, 64, 96)
    assert not torch.allclose(s[0], s[1])
    with pytest.raises(ValueError, match="samples"):
        model.sample_logits(x, 0)


def test_one_hot_ignores_255():
    y = torch.tensor([[[0, 2], [255, 1]]])
    oh = one_hot_labels(y, 3)
    assert oh.shape == (1, 3, 2, 2)
    assert oh[0, :, 1, 0].sum() == 0
    assert oh[0, 2, 0, 1] == 1 and oh[0].sum() == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="postnet"):
        PHGMM(postnet="heavy")
    with pytest.raises(ValueError, match="resnet"):
        PHGMM(backbone="vgg16")
    with pytest.raises(ValueError, match="decoder_units"):
        PHGMM(backbone="resnet18", decoder_units=(1, 1))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("segformer")


def _grads(module, loss):
    module.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return module


def _touched(part) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_gradient_routing_of_algorithm_1():
    model = PHGMM(postnet="light", **SMALL)
    x, y = torch.randn(2, 3, 64, 96), labels(2, 64, 96)
    out = model(x, y)
    terms = PHGMMLoss()(out, y)
    parts = {
        "encoder": model.encoder,
        "local": model.local_space,
        "global": model.global_space,
        "decoder": model.decoder,
        "head": model.head,
        "postnet": model.postnet,
    }
    expected = {
        "s": {"encoder", "local", "global", "decoder", "head"},
        "z": {"encoder", "local", "postnet"},
        "g": {"encoder", "global"},
    }
    for term, reached in expected.items():
        _grads(model, terms[term])
        got = {name for name, part in parts.items() if _touched(part)}
        assert got == reached, (term, got)
    # ℓ_g reaches only μ/σ heads and the summary of the global space, not its decoder-side layers
    _grads(model, terms["g"])
    assert model.global_space.project.weight.grad is None or model.global_space.project.weight.grad.abs().sum() == 0
    # ℓ_s does not reach the log-variances (the decoder reads the means)
    _grads(model, terms["s"])
    g = model.local_space.heads.logvar.weight.grad
    assert g is None or g.abs().sum() == 0


def test_resnet101_forward_backward_at_paper_resolution():
    model = phgmm.PHGMM(backbone="resnet101", postnet="light")
    x = torch.randn(1, 3, 384, 768)
    y = labels(1, 384, 768)
    loss = PHGMMLoss()(model(x, y), y)
    assert all(torch.isfinite(v) for v in loss.values())
    loss["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    counts = model.parameter_counts()
    assert abs(counts["encoder"] - 42.50e6) / 42.50e6 < 0.005


def test_encode_decode_equals_forward_and_swapping_codes_changes_the_output():
    model = PHGMM(postnet=None, **SMALL).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        enc = model.encode(x)
        torch.testing.assert_close(model.decode(enc), model(x))
        pi, mu = torch.softmax(enc.local[0], 1), enc.local[1]
        swapped = model.decode(enc, pi.flip(0), mu.flip(0), enc.glob[0].flip(0))
    assert not torch.allclose(swapped, model(x))


def test_without_z_the_decoder_reads_the_skips_alone():
    model = PHGMM(use_local=False, postnet="light", **SMALL)
    assert model.local_space is None and model.postnet is None and model.decoder.input is None
    out = model(torch.randn(2, 3, 64, 96), labels(2, 64, 96))
    assert out.logits.shape == (2, 12, 64, 96) and out.q_z is None and out.p_z is None
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 97)).shape == (1, 12, 65, 97)
    with pytest.raises(ValueError, match="no local space"):
        model.sample_logits(torch.randn(1, 3, 64, 64), 2)


def test_decode_posterior_decodes_a_sample_of_postnet_in_training_only():
    with pytest.raises(ValueError, match="needs PostNet"):
        PHGMM(postnet=None, decode_posterior=0.5, **SMALL)
    model = PHGMM(postnet="light", decode_posterior=0.5, **SMALL)
    x, y = torch.randn(2, 3, 64, 96), labels(2, 64, 96)
    out = model(x, y)
    assert out.posterior_logits is not None and out.posterior_logits.shape == out.logits.shape
    # ℓ_s of the posterior decode reaches PostNet (the conditional-VAE route)
    PHGMMLoss(decode_posterior=0.5, lambda_z=0.0, lambda_g=0.0)(out, y)["total"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.postnet.parameters())
    assert model(x).posterior_logits is None  # no labels: nothing to decode from
    assert model.eval()(x).shape == (2, 12, 64, 96)  # evaluation: plain logits


def test_sample_latent_decodes_samples_of_z_and_g_in_training():
    model = PHGMM(postnet=None, sample_latent=True, **SMALL)
    x = torch.randn(1, 3, 64, 96)
    torch.manual_seed(1)
    a = model(x).logits
    torch.manual_seed(2)
    b = model(x).logits
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))  # evaluation decodes the means


def test_sample_logits_leaves_the_model_unchanged_in_train_mode():
    model = PHGMM(postnet=None, **SMALL).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.sample_logits(torch.randn(2, 3, 64, 96), 3)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_skip_dropout_drops_whole_images_skips_in_training_only():
    model = PHGMM(postnet=None, skip_dropout=0.5, **SMALL)
    x = torch.randn(6, 3, 64, 96)
    seed = next(
        s for s in range(100) if 0 < (torch.rand(6, generator=torch.Generator().manual_seed(s)) >= 0.5).sum() < 6
    )
    torch.manual_seed(seed)
    out = model(x).logits
    torch.manual_seed(seed)
    keep = (torch.rand(6, 1, 1, 1) >= 0.5).float()
    assert 0 < keep.sum() < 6
    feats = model.encoder(x)
    _, _, skips = model.level_maps(feats)
    logits_pi, mu, _ = model.local_space.heads(model.level_maps(feats)[0])
    g = model.global_space.mu(model.level_maps(feats)[1])
    expected = model._decode(x.shape[-2:], feats, skips, torch.softmax(logits_pi, 1), mu, g, keep)
    torch.testing.assert_close(out, expected)
    kept_all = model._decode(x.shape[-2:], feats, skips, torch.softmax(logits_pi, 1), mu, g)
    dropped = keep.flatten() == 0
    assert not torch.allclose(out[dropped], kept_all[dropped])  # (kept images move too: BN batch statistics)
    no_skip = PHGMM(postnet=None, **SMALL)
    no_skip.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), no_skip.eval()(x))  # evaluation: the paper's network
    with pytest.raises(ValueError, match="skip_dropout"):
        PHGMM(skip_dropout=1.0, **SMALL)
