"""Does PHGMM use its latent spaces? Measures of latent use (docs/design.md, "Posterior collapse").

* **Active units** (Burda et al. 2016): a latent unit u is active when the variance across
  images of its posterior mean, ``Var_x(E[u | x])``, exceeds a threshold (0.01). A collapsed
  posterior returns the same mean for every image: no active unit. For z the units are the K·L
  component means μ_k,l; for g the L means μ_g,l.
* **KL per dimension**: how many nats each dimension's posterior spends, averaged over images —
  for g against its prior N(0, I), for z against PostNet's posterior (matched components).
* **Swap test**: the mIoU change when each image is decoded with another image's z (π and μ_z)
  or g (μ_g), everything else unchanged. A decoder that ignores a latent loses nothing. The
  partner is a seeded random derangement of the whole evaluated set
  (:func:`random_derangement`) or the image whose label histogram differs most
  (:func:`far_partner`); the previous image (:func:`adjacent_partner`) is only an option, since
  neighbouring video frames are near-duplicates.
* **Mutual information** I(x; z), I(x; g) under q against the aggregate posterior
  (:func:`latent_mutual_information`): scale-free, at most log N for N images.
* **Decoder sensitivity** (:func:`decoder_sensitivity`): how strongly the logits move with the
  codes the decoder reads, relative to the encoder's skip features.
* **Clustering that collapse cannot win** (:func:`collapse_proof_clustering`): the paper's
  clustering labels the per-image component means by their component index, and K constant
  vectors cluster perfectly. Here the indices are computed over active units only, and a second
  variant labels each image's code by the image's dominant class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..conventions import IGNORE_INDEX
from ..io import to_numpy

__all__ = [
    "active_units",
    "dominant_class",
    "collapse_proof_clustering",
    "latent_summary",
    "random_derangement",
    "adjacent_partner",
    "far_partner",
    "label_histograms",
    "partner_distance",
    "latent_mutual_information",
    "mutual_information_bounds",
    "decoder_sensitivity",
    "SensitivitySums",
]


def active_units(means: Any, threshold: float = 0.01) -> dict[str, Any]:
    """Active units of posterior means ``means`` (n_images × units, any trailing shape flattened).

    Returns ``{"active": count, "units": total, "fraction", "variance": per-unit variances (list),
    "mask": boolean NumPy array}``. The variance is the population variance over images.
    """
    m = to_numpy(means, np.float64)
    if m.ndim < 2 or m.shape[0] < 2:
        raise ValueError(f"need at least 2 images of posterior means (n × units), got shape {m.shape}")
    m = m.reshape(m.shape[0], -1)
    var = m.var(axis=0)
    mask = var > threshold
    return {
        "active": int(mask.sum()),
        "units": int(mask.size),
        "fraction": float(mask.mean()),
        "variance": var,
        "mask": mask,
    }


def dominant_class(
    labels: Any, num_classes: int, ignore_index: int = IGNORE_INDEX, exclude: tuple[int, ...] = (0,)
) -> np.ndarray:
    """The most frequent scored class of each label map (N×H×W → N), background excluded;
    -1 for an image without any such pixel."""
    y = to_numpy(labels).reshape(len(labels), -1)
    out = np.full(len(y), -1, dtype=np.int64)
    for i, row in enumerate(y):
        row = row[(row != ignore_index) & (row < num_classes)]
        counts = np.bincount(row.astype(np.int64), minlength=num_classes)
        counts[list(exclude)] = 0
        if counts.sum() > 0:
            out[i] = int(counts.argmax())
    return out


def _indices_or_none(points: np.ndarray, labels: np.ndarray, reason_if_empty: str) -> dict[str, Any]:
    from .clustering import clustering_indices

    if points.shape[1] == 0 or np.allclose(points, points[:1]):
        # All points coincide: no cluster structure at all. scikit-learn would give
        # Davies–Bouldin 0 ("perfect") here, so the score is set by definition.
        return {
            "silhouette": 0.0,
            "calinski_harabasz": 0.0,
            "davies_bouldin": None,
            "n_points": int(points.shape[0]),
            "n_labels": int(np.unique(labels).size),
            "reason": reason_if_empty,
        }
    return clustering_indices(points, labels)


def collapse_proof_clustering(mu_z: Any, pi: Any, dominant: Any, threshold: float = 0.01) -> dict[str, Any]:
    """Two clustering scores of z that a collapsed posterior cannot win.

    Args:
        mu_z: component means, n_images × K × L.
        pi: mixture weights, n_images × K.
        dominant: each image's dominant class (:func:`dominant_class`); -1 images are left out.
        threshold: the active-unit threshold.

    Returns:
        ``{"active": indices of the paper's points (μ_k labelled by k) over active units only,
        "by_class": indices of each image's code (π_k·μ_k over active units) labelled by its
        dominant class}``. Without an active unit every point coincides: silhouette 0,
        Calinski–Harabasz 0, Davies–Bouldin None (undefined), with the reason.
    """
    mu = to_numpy(mu_z, np.float64)
    w = to_numpy(pi, np.float64)
    n, k, dim = mu.shape
    mask = active_units(mu, threshold)["mask"].reshape(k, dim)
    # the paper's points, restricted to the units that are active in any component
    keep = mask.any(axis=0)
    pts = mu[:, :, keep].reshape(n * k, int(keep.sum()))
    labs = np.tile(np.arange(k), n)
    out = {"active": _indices_or_none(pts, labs, "no active unit: every point coincides")}
    codes = (w[:, :, None] * mu)[:, mask]
    dom = np.asarray(dominant).reshape(-1)
    sel = dom >= 0
    out["by_class"] = _indices_or_none(codes[sel], dom[sel], "no active unit: every image's code coincides")
    return out


def latent_summary(
    mu_z: Any | None, pi: Any | None, mu_g: Any | None, logvar_g: Any | None, threshold: float = 0.01
) -> dict[str, Any]:
    """Active units of z and g and g's KL to N(0, I) per dimension, from per-image parameters."""
    out: dict[str, Any] = {"active_threshold": threshold}
    if mu_z is not None:
        au = active_units(mu_z, threshold)
        out.update(
            z_active_units=au["active"],
            z_units=au["units"],
            z_active_fraction=au["fraction"],
            z_mean_variance=float(au["variance"].mean()),
        )
        if pi is not None:
            out["pi_mean_variance"] = float(to_numpy(pi, np.float64).var(axis=0).mean())
    if mu_g is not None:
        au = active_units(mu_g, threshold)
        out.update(
            g_active_units=au["active"],
            g_units=au["units"],
            g_active_fraction=au["fraction"],
            g_mean_variance=float(au["variance"].mean()),
        )
        if logvar_g is not None:
            mu = to_numpy(mu_g, np.float64)
            lv = to_numpy(logvar_g, np.float64)
            kl = 0.5 * (mu**2 + np.exp(lv) - 1.0 - lv)  # closed form per image and dim
            per_dim = kl.mean(axis=0)
            out.update(
                g_kl=float(kl.sum(axis=1).mean()),
                g_kl_per_dim=per_dim.tolist(),
                g_kl_dims_above_0_01=int((per_dim > 0.01).sum()),
            )
    return out


# -- partners of the swap test -------------------------------------------------------------------


def random_derangement(n: int, seed: int = 0) -> np.ndarray:
    """A uniformly drawn permutation ``p`` of ``range(n)`` without a fixed point (``p[i] != i``).

    Drawn by rejection from ``numpy.random.default_rng(seed)`` (a random permutation is a
    derangement with probability about 1/e, so about e draws are needed): the same ``n`` and
    ``seed`` give the same partners on every machine. Needs ``n >= 2``.
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 images, got {n}")
    rng = np.random.default_rng(seed)
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def adjacent_partner(n: int) -> np.ndarray:
    """The previous image in evaluation order (the first takes the last): near-duplicates on
    video data, so only an option beside :func:`random_derangement` and :func:`far_partner`."""
    if n < 2:
        raise ValueError(f"a partner needs at least 2 images, got {n}")
    return np.roll(np.arange(n), 1)


def label_histograms(labels: Any, num_classes: int) -> np.ndarray:
    """Class frequencies of each label map (N×H×W → N×C, rows summing to 1 over the pixels whose
    label is a class; ignored pixels, any value outside ``0..C-1``, are left out; an image
    without such a pixel gets a row of zeros)."""
    import torch

    y = torch.as_tensor(to_numpy(labels)).reshape(len(labels), -1).long()
    valid = (y >= 0) & (y < num_classes)
    offsets = torch.arange(len(y))[:, None] * num_classes
    counts = torch.bincount((y + offsets)[valid], minlength=len(y) * num_classes)
    counts = counts.reshape(len(y), num_classes).double()
    return (counts / counts.sum(1, keepdim=True).clamp_min(1)).numpy()


def _total_variation(hist: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    return 0.5 * pairwise_distances(np.asarray(hist, np.float64), metric="manhattan")


def far_partner(hist: Any) -> np.ndarray:
    """For each image, the other image whose label histogram differs most.

    The distance is the total variation ½‖h_i − h_j‖₁ of the class frequencies
    (:func:`label_histograms`), in [0, 1]; ties go to the lowest index. Brute force over all
    pairs (N² distances: a few MB for thousands of images). Needs ``n >= 2``.
    """
    h = to_numpy(hist, np.float64)
    if len(h) < 2:
        raise ValueError(f"a partner needs at least 2 images, got {len(h)}")
    d = _total_variation(h)
    np.fill_diagonal(d, -1.0)
    return d.argmax(axis=1)


def partner_distance(hist: Any, partner: Any) -> float:
    """Mean total-variation distance between each image's label histogram and its partner's:
    how different the swapped images are (0: identical class frequencies, 1: disjoint)."""
    h = to_numpy(hist, np.float64)
    p = np.asarray(partner)
    return float((0.5 * np.abs(h - h[p]).sum(axis=1)).mean())


# -- information: I(x; z) under q against the aggregate posterior ----------------------------------


def _elements_per_row(q) -> int:
    """Numbers one row of ``q.log_prob`` (one point against all N posteriors) touches."""
    comp = getattr(q, "component_distribution", None)
    return int((comp if comp is not None else q).mean.numel())


def _rows_per_chunk(q, max_elements: int | None) -> int:
    """Rows of N posteriors evaluated at once. On the CPU the default keeps each intermediate near
    1 MiB: glibc serves larger ones as fresh mappings whose pages fault in again every chunk, and
    with 2^24-element chunks the estimate of a demo model's z spent half its time in the kernel
    (5.3 s against 1.1 s at 2^17; docs/performance.md). A GPU takes large chunks (fewer launches)."""
    if max_elements is None:
        max_elements = 2**24 if q.mean.device.type == "cuda" else 2**17
    return max(1, max_elements // max(1, _elements_per_row(q)))


def _antithetic_draws(q, pairs: int):
    """``2·pairs`` draws per posterior (2P×N×L): P draws z, then their reflections 2m − z through
    the mean m of the Gaussian each was drawn from (for a mixture, its sampled component)."""
    import torch

    mix = getattr(q, "mixture_distribution", None)
    if mix is None:
        z = q.sample((pairs,))
        centre = q.mean.expand_as(z)
    else:
        comp = q.component_distribution
        k = mix.sample((pairs,))  # P×N
        every = comp.sample((pairs,))  # P×N×K×L
        index = k[..., None, None].expand(*k.shape, 1, every.shape[-1])
        z = every.gather(-2, index).squeeze(-2)
        centre = comp.mean.expand_as(every).gather(-2, index).squeeze(-2)
    return torch.cat([z, 2 * centre - z])


def latent_mutual_information(q, samples: int = 16, seed: int = 0, max_elements: int | None = None) -> dict[str, float]:
    """The mutual information I(x; z) between the image and its code under the encoder's q.

    With x uniform over the N evaluated images and z ~ q(z|x_n), the aggregate posterior is
    q(z) = (1/N) Σ_m q(z|x_m) (Hoffman & Johnson 2016) and
    I(x; z) = E_n E_{z~q(z|x_n)} [log q(z|x_n) − log q(z)] = (1/N) Σ_n KL(q(z|x_n) ‖ q(z)),
    estimated as He et al. (2019, "Lagging inference networks") do, by Monte Carlo: ``samples``
    draws per image, log q(z) by logsumexp over the N posteriors minus log N. The draws come in
    antithetic pairs (z and its reflection 2m − z through the mean m of the Gaussian it was drawn
    from, the same mixture component for z): each is a draw from q(z|x_n), so the estimate stays
    unbiased, and the term linear in z − m cancels within a pair — the term that dominates the
    noise when the posteriors nearly coincide.

    It is scale-free (unchanged by any invertible map applied to z), 0 when every image has the
    same posterior (each term is then exactly 0), and at most log N (since q(z) ≥ q(z|x_n)/N):
    with well-separated posteriors it saturates at log N, so values are comparable only between
    sets of the same size (hence ``fraction`` = MI / log N).

    Args:
        q: N posteriors as one batched distribution (``batch_shape == (N,)``), e.g.
            ``Independent(Normal(μ, σ), 1)`` or a ``MixtureSameFamily``; its dtype (float64
            recommended) is the arithmetic's.
        samples: Monte-Carlo draws per image (rounded up to an even number: pairs).
        seed: seeds the draws (the global RNG is restored afterwards).
        max_elements: bounds the size of one chunk of log-density evaluations (default: 2^17 on
            the CPU, 2^24 on a GPU).

    Returns:
        ``{"mi", "stderr" (Monte-Carlo standard error), "upper_bound" (log N), "fraction", "n",
        "samples"}`` in nats.
    """
    import torch

    n = int(q.batch_shape[0])
    if n < 2:
        raise ValueError(f"mutual information over images needs at least 2 images, got {n}")
    device = q.mean.device
    pairs = max(1, (samples + 1) // 2)
    samples = 2 * pairs
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        z = _antithetic_draws(q, pairs)  # S×N×L, draw s and s + S/2 a pair
    rows = z.transpose(0, 1).reshape(n * samples, -1)  # row r is a draw from image r // S
    owner = torch.arange(n, device=device).repeat_interleave(samples)
    chunk = _rows_per_chunk(q, max_elements)
    d = torch.empty(len(rows), dtype=rows.dtype, device=device)  # written in place, chunk by chunk
    for start in range(0, len(rows), chunk):
        lp = q.log_prob(rows[start : start + chunk].unsqueeze(-2))  # B×N: log q(z|x_m)
        own = lp.gather(1, owner[start : start + chunk, None]).squeeze(1)
        torch.sub(own, torch.logsumexp(lp, dim=1) - math.log(n), out=d[start : start + chunk])
    d = d.double().view(n, samples)
    d = 0.5 * (d[:, :pairs] + d[:, pairs:]).flatten()  # one independent term per pair
    mi = float(d.mean())
    return {
        "mi": mi,
        "stderr": float(d.std() / math.sqrt(len(d))) if len(d) > 1 else 0.0,
        "upper_bound": math.log(n),
        "fraction": mi / math.log(n),
        "n": n,
        "samples": samples,
    }


def _pairwise(q, start: int, stop: int, kind: str):
    """B×N divergences between the posteriors ``start:stop`` and all N of ``q``.

    ``kind`` "kl": KL(q_i ‖ q_j) — for a ``MixtureSameFamily`` the matched-component bound
    KL(π_i‖π_j) + Σ_k π_ik KL(N_ik‖N_jk), which is at least the true KL (log-sum inequality).
    ``kind`` "bhattacharyya" (diagonal Gaussians only): −log ∫ √(q_i q_j), in closed form
    Σ_l (μ_i − μ_j)²/(8σ̄²) + ½ log(σ̄² / (σ_i σ_j)) with σ̄² = (σ_i² + σ_j²)/2.
    """
    from torch.distributions import Normal, kl_divergence

    mix = getattr(q, "mixture_distribution", None)
    base = (q.component_distribution if mix is not None else q).base_dist
    loc, scale = base.loc, base.scale
    left, right = (
        Normal(loc[start:stop].unsqueeze(1), scale[start:stop].unsqueeze(1)),
        Normal(loc.unsqueeze(0), scale.unsqueeze(0)),
    )
    if kind == "bhattacharyya":
        var = 0.5 * (left.scale**2 + right.scale**2)
        d = (left.loc - right.loc) ** 2 / (8 * var) + 0.5 * (var.log() - left.scale.log() - right.scale.log())
        return d.sum(-1)
    per = kl_divergence(left, right).sum(-1)  # B×N (Gaussians) or B×N×K (components)
    if mix is None:
        return per
    pi = mix.probs
    cat = kl_divergence(type(mix)(probs=pi[start:stop].unsqueeze(1)), type(mix)(probs=pi.unsqueeze(0)))
    return cat + (pi[start:stop].unsqueeze(1) * per).sum(-1)


def mutual_information_bounds(q, max_elements: int | None = None) -> dict[str, float | None]:
    """Noise-free bounds on I(x; z) under q (Kolchinsky & Tracey 2017, "Estimating mixture entropy
    with pairwise distances"), beside the Monte-Carlo estimate of :func:`latent_mutual_information`.

    For the aggregate posterior q(z) = (1/N) Σ_j q_j and any divergence D between its members,
    I_D = −(1/N) Σ_i log (1/N) Σ_j exp(−D(q_i, q_j)) is an upper bound of I(x; z) for D = KL
    (here for mixtures its matched-component bound, larger still, so still an upper bound) and a
    lower bound for D = the Bhattacharyya distance (computed for diagonal Gaussians, i.e. g).
    Both lie in [0, log N], are 0 for identical posteriors and log N for separated ones; near
    collapse the upper bound is about twice the true value, the lower about half.

    Returns ``{"upper", "lower" (None for mixtures)}`` in nats.
    """
    import torch

    n = int(q.batch_shape[0])
    if n < 2:
        raise ValueError(f"mutual information over images needs at least 2 images, got {n}")
    chunk = _rows_per_chunk(q, max_elements)  # one row: N posteriors' parameters
    # the KL bound is the upper; the Bhattacharyya bound (diagonal Gaussians only) the lower
    kinds = [("kl", "upper")] + ([] if hasattr(q, "mixture_distribution") else [("bhattacharyya", "lower")])
    out: dict[str, float | None] = {"upper": None, "lower": None}
    for kind, name in kinds:
        terms = [
            torch.logsumexp(-_pairwise(q, i, min(n, i + chunk), kind), dim=1) - math.log(n) for i in range(0, n, chunk)
        ]
        out[name] = float(-torch.cat(terms).double().mean())
    return out


# -- the decoder's sensitivity to its inputs ------------------------------------------------------


@dataclass
class SensitivitySums:
    """Running sums of :func:`decoder_sensitivity` over batches (add them with ``+``).

    Per input group (``"z"``: the decoder's z input π_k·μ_k, N×K×L; ``"g"``: μ_g, N×L;
    ``"skips"``: the four skip features): ``grad`` = Σ_i |∂φ/∂u_i|, ``attribution`` =
    Σ_i |u_i · ∂φ/∂u_i|, ``count`` = number of elements, over ``probes`` random projections φ.
    """

    grad: dict[str, float] = field(default_factory=dict)
    attribution: dict[str, float] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    images: int = 0

    def __add__(self, other: SensitivitySums) -> SensitivitySums:
        keys = set(self.count) | set(other.count)
        return SensitivitySums(
            {k: self.grad.get(k, 0.0) + other.grad.get(k, 0.0) for k in keys},
            {k: self.attribution.get(k, 0.0) + other.attribution.get(k, 0.0) for k in keys},
            {k: self.count.get(k, 0) + other.count.get(k, 0) for k in keys},
            self.images + other.images,
        )

    def result(self) -> dict[str, float]:
        """``jacobian_<group>`` (mean Jacobian column norm, below), ``sensitivity_z`` /
        ``sensitivity_g`` (their ratio to the skips'), ``attribution_<group>`` (share of the
        total first-order attribution) and ``sensitivity_images``."""
        out: dict[str, float] = {"sensitivity_images": self.images}
        # E|vᵀJe_i| = sqrt(2/π)·‖Je_i‖ for v ~ N(0, I): rescaled, the mean is the column norm's
        jac = {k: math.sqrt(math.pi / 2) * self.grad[k] / max(1, self.count[k]) for k in self.count}
        total_attr = sum(self.attribution.values())
        for k in sorted(self.count):
            out[f"jacobian_{k}"] = jac[k]
            out[f"attribution_{k}"] = self.attribution[k] / total_attr if total_attr > 0 else 0.0
        for k in ("z", "g"):
            if k in jac and "skips" in jac:
                out[f"sensitivity_{k}"] = jac[k] / jac["skips"] if jac["skips"] > 0 else float("nan")
        return out


def decoder_sensitivity(model, enc, probes: int = 1, seed: int = 0) -> SensitivitySums:
    """How strongly PHGMM's logits move with the codes the decoder reads, against the skips.

    The logits ``f(u_z, u_g, s)`` of a batch depend on three inputs: the local code
    u_z = (π_k · μ_k)_k (N×K×L, what each component's FC reads), the global code u_g = μ_g (N×L)
    and the encoder's skip features s (the four skip convolutions' outputs, ``enc.skips``). For
    an input element u_i its sensitivity is the norm of its Jacobian column, ‖∂logits/∂u_i‖₂
    over every class and pixel of its image. It is estimated with random projections: for
    φ = Σ v ⊙ logits with v ~ N(0, I), ∂φ/∂u_i = vᵀJe_i is N(0, ‖Je_i‖²), so
    sqrt(π/2)·E|∂φ/∂u_i| = ‖Je_i‖ (one backward pass per probe instead of one per logit).

    :meth:`SensitivitySums.result` reports, per group, the mean column norm (``jacobian_*``),
    the ratio ``sensitivity_z = jacobian_z / jacobian_skips`` (likewise g) and the share of
    the first-order attribution Σ|u_i·∂φ/∂u_i| (``attribution_*``). The ratio compares one
    element with one element: a code element reaches every pixel of the image, a skip element
    a neighbourhood, so equal use does not give 1; compare it between networks (and with the
    untrained baseline). A decoder that ignores a code gives 0. A decoder can be sensitive to
    a code that never varies (a learnt constant): the swap test and the mutual information
    tell that apart.

    Runs in float32 with autograd (under ``torch.no_grad`` callers too); the model's weights
    get no gradient.
    """
    import dataclasses

    import torch

    with torch.enable_grad():
        inputs: dict[str, torch.Tensor] = {}
        pi = None
        if enc.local is not None:
            weights = torch.softmax(enc.local[0].detach().float(), dim=1)
            inputs["z"] = (weights.unsqueeze(-1) * enc.local[1].detach().float()).requires_grad_()
            pi = torch.ones_like(weights)  # π_k·μ_k is handed over whole: 1 · u_k
        if enc.glob is not None:
            inputs["g"] = enc.glob[0].detach().float().requires_grad_()
        skips = [s.detach().float().requires_grad_() for s in enc.skips]
        plain = dataclasses.replace(enc, feats=[f.detach().float() for f in enc.feats], skips=skips)
        logits = model.decode(plain, pi, inputs.get("z"), inputs.get("g")).float()
        gen = torch.Generator(device=logits.device).manual_seed(seed)
        sums = SensitivitySums(images=int(logits.shape[0]))
        leaves = [*inputs.values(), *skips]
        for p in range(probes):
            v = torch.randn(logits.shape, generator=gen, device=logits.device)
            grads = torch.autograd.grad((logits * v).sum(), leaves, retain_graph=p < probes - 1, allow_unused=True)
            groups = {
                **{k: [(inputs[k], grads[i])] for i, k in enumerate(inputs)},
                "skips": list(zip(skips, grads[len(inputs) :], strict=True)),
            }
            for k, pairs in groups.items():
                grad = sum(float(g.abs().sum()) for _, g in pairs if g is not None)
                attr = sum(float((u.detach() * g).abs().sum()) for u, g in pairs if g is not None)
                sums.grad[k] = sums.grad.get(k, 0.0) + grad
                sums.attribution[k] = sums.attribution.get(k, 0.0) + attr
                sums.count[k] = sums.count.get(k, 0) + sum(u.numel() for u, _ in pairs)
    return sums
