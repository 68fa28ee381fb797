"""Latent-use measures (active units, KL per dimension, swap test, collapse-proof clustering)
against hand-computed values on toy PHGMMs whose latents are constant or matter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from phgmm import PHGMM
from phgmm.config import Config
from phgmm.engine.evaluation.evaluate import evaluate_model
from phgmm.engine.loaders import make_eval_loader
from phgmm.metrics import ConfusionMatrix
from phgmm.metrics.latent import active_units, adjacent_partner, collapse_proof_clustering, dominant_class

SMALL = dict(
    backbone="resnet18",
    decoder_units=(1, 1, 1, 1),
    latent_dim=8,
    component_dim=4,
    local_channels=16,
    global_dim=4,
    num_components=3,
    postnet=None,
)


class Pairs(Dataset):
    def __init__(self, n: int = 7, h: int = 64, w: int = 96) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, h, w, generator=g) * torch.linspace(0.2, 3, n)[:, None, None, None]
        self.y = torch.randint(0, 12, (n, h, w), generator=g)
        self.y[:, :4] = 255
        for i in range(n):  # a dominant class per image
            self.y[i, 10:50] = 1 + i % 3

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _cfg(partners: tuple[str, ...] = ()) -> Config:
    cfg = Config()
    cfg.model.num_classes = 12
    cfg.train.channels_last = "false"
    cfg.train.amp = "off"  # the hand-computed references are fp32 (auto may be bf16 on a CPU)
    # the other measures are tested in tests/test_latent_use.py
    cfg.eval.latent_partners = partners
    cfg.eval.latent_untrained = False
    cfg.eval.latent_sensitivity_batches = 0
    cfg.eval.latent_mi_samples = 2
    return cfg


def _evaluate(model, partners: tuple[str, ...] = ()):
    loader = make_eval_loader(Pairs(), batch_size=3, num_workers=0)
    return evaluate_model(
        model, loader, _cfg(partners), torch.device("cpu"), trimap=False, report_samples=0, progress=False
    )


def test_collapsed_latents_have_no_active_unit_and_swapping_changes_nothing():
    torch.manual_seed(0)
    model = PHGMM(**SMALL).eval()
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
    model = PHGMM(**SMALL).eval()
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
    model = PHGMM(**{**SMALL, "postnet": "light"}).eval()
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
    lat = _evaluate(PHGMM(**SMALL).eval()).metrics["latent"]
    assert "posterior_decode_miou" not in lat and "posterior_decode_gain" not in lat
