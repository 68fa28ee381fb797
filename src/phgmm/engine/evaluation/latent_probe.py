"""The latent-use measures of an evaluation (PHGMM only; :mod:`phgmm.metrics.latent` has the
definitions, docs/latent.md "How latent use is measured" the reading).

Swapping an image's codes for a partner's needs every image's codes first, so the measures take
two passes over the split:

1. during evaluation's own pass, :meth:`LatentProbe.update` stores each image's posterior
   parameters (π, μ_z, log σ²_z, μ_g, log σ²_g — a few KB per image), its label histogram and,
   when PostNet is kept, the KL of z to PostNet's posterior and the score of decoding PostNet's
   means;
2. :meth:`LatentProbe.finish` gathers them from every process in dataset order, computes active
   units and I(x; z), I(x; g), draws the partners (a seeded random derangement, the most
   different image, the zero and the mean code, optionally the previous image), runs a second
   pass that decodes every image with its partners' codes, measures the decoder's sensitivity
   on the first batches, and repeats active units, information and sensitivity on a freshly
   initialised network of the same configuration and seed (the untrained baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal
from tqdm.auto import tqdm

from ...conventions import IGNORE_INDEX, LATENT_PARTNERS
from .. import distributed as du

__all__ = ["LatentOptions", "LatentProbe"]


@dataclass
class LatentOptions:
    """What the second pass measures (``eval.latent_*`` of the config).

    Attributes:
        partners: swap partners, any of :data:`phgmm.conventions.LATENT_PARTNERS` ("adjacent", the
            previous image, is only an option).
        seed: seeds the random derangement, the Monte-Carlo draws and the sensitivity probes.
        mi_samples: Monte-Carlo draws per image for I(x; z) and I(x; g); 0 skips them.
        sensitivity_batches: batches (each process's first) on which the decoder's sensitivity is
            measured; 0 skips it.
        untrained: also measure a freshly initialised network (active units, information,
            sensitivity) on the same images.
    """

    partners: tuple[str, ...] = ("random", "far", "zero", "mean")
    seed: int = 0
    mi_samples: int = 16
    sensitivity_batches: int = 2
    untrained: bool = True

    @classmethod
    def from_config(cls, e, level: str = "full") -> LatentOptions:
        """``level`` "full" takes the config as it is; "light" (validation during training) keeps
        the random and far partners only, one sensitivity batch and no untrained baseline."""
        opts = cls(
            tuple(e.latent_partners),
            e.latent_seed,
            e.latent_mi_samples,
            e.latent_sensitivity_batches,
            e.latent_untrained,
        )
        if level == "light":
            opts.partners = tuple(p for p in opts.partners if p in ("random", "far"))
            opts.sensitivity_batches = min(1, opts.sensitivity_batches)
            opts.untrained = False
        return opts


class _Codes:
    """Per-image posterior parameters of one network, stored on the host in stream order."""

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {}

    def add(self, enc) -> None:
        from ...models.latent import LOGVAR_RANGE

        own = {}
        if enc.local is not None:
            own.update(
                pi=torch.softmax(enc.local[0].float(), dim=1),
                mu_z=enc.local[1].float(),
                logvar_z=enc.local[2].float().clamp(*LOGVAR_RANGE),
            )
        if enc.glob is not None:
            own.update(mu_g=enc.glob[0].float(), logvar_g=enc.glob[1].float().clamp(*LOGVAR_RANGE))
        for k, v in own.items():
            self.parts.setdefault(k, []).append(v.detach().cpu())

    def local_count(self) -> int:
        return sum(len(v) for v in next(iter(self.parts.values()), []))

    def gathered(self, order: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """Every process's codes, in dataset order (``order`` from :func:`_dataset_order`)."""
        return {k: du.all_gather_tensors(torch.cat(v).to(device))[order].cpu() for k, v in self.parts.items()}


def _dataset_order(loader, n_local: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(order, positions)``: the permutation that sorts the gathered images into dataset order,
    and where this process's images land in it. The sampler's indices give the order (so the
    partners are those a single process draws); with skipped samples, rank-then-stream order."""
    indices = getattr(getattr(loader, "sampler", None), "indices", None)
    if indices is not None and len(indices) == n_local:
        keys = torch.as_tensor(list(indices), dtype=torch.float64)
    else:
        keys = du.rank() * 1e9 + torch.arange(n_local, dtype=torch.float64)
    every = du.all_gather_tensors(keys.to(device)).cpu()
    order = torch.argsort(every)
    where = torch.empty_like(order)
    where[order] = torch.arange(len(order))
    sizes = du.all_gather_tensors(torch.tensor([n_local], device=device)).cpu().tolist()
    start = int(sum(sizes[: du.rank()]))
    return order.to(device), where[start : start + n_local]


def _posteriors(codes: dict[str, torch.Tensor], device: torch.device) -> dict[str, Any]:
    """q(z|x_n) (a K-component mixture) and q(g|x_n) (a diagonal Gaussian) of every image, float64."""
    out = {}
    if "mu_z" in codes:
        comp = Independent(
            Normal(
                codes["mu_z"].to(device, torch.float64),
                torch.exp(0.5 * codes["logvar_z"].to(device, torch.float64)),
                validate_args=False,
            ),
            1,
            validate_args=False,
        )
        mix = Categorical(probs=codes["pi"].to(device, torch.float64), validate_args=False)
        out["z"] = MixtureSameFamily(mix, comp, validate_args=False)
    if "mu_g" in codes:
        out["g"] = Independent(
            Normal(
                codes["mu_g"].to(device, torch.float64),
                torch.exp(0.5 * codes["logvar_g"].to(device, torch.float64)),
                validate_args=False,
            ),
            1,
            validate_args=False,
        )
    return out


def _information(
    codes: dict[str, torch.Tensor], opts: LatentOptions, device: torch.device, prefix: str = ""
) -> dict[str, float]:
    """I(x; z) and I(x; g): the Monte-Carlo estimate with its standard error, and the noise-free
    pairwise bounds (``mi_<space>_upper``; g also ``mi_g_lower``)."""
    from ...metrics.latent import latent_mutual_information, mutual_information_bounds

    out: dict[str, float] = {}
    if opts.mi_samples < 1:
        return out
    for space, q in _posteriors(codes, device).items():
        mi = latent_mutual_information(q, opts.mi_samples, opts.seed)
        out.update({f"{prefix}mi_{space}": mi["mi"], f"{prefix}mi_{space}_stderr": mi["stderr"]})
        out[f"{prefix}mi_upper_bound"] = mi["upper_bound"]
        bounds = mutual_information_bounds(q)
        out.update({f"{prefix}mi_{space}_{k}": v for k, v in bounds.items() if v is not None})
    if out and not prefix:
        out["mi_samples"] = opts.mi_samples
    return out


def _active(codes: dict[str, torch.Tensor], threshold: float, prefix: str = "") -> dict[str, Any]:
    from ...metrics.latent import active_units

    out: dict[str, Any] = {}
    for space, key in (("z", "mu_z"), ("g", "mu_g")):
        if key in codes:
            au = active_units(codes[key], threshold)
            out.update(
                {
                    f"{prefix}{space}_active_units": au["active"],
                    f"{prefix}{space}_mean_variance": float(au["variance"].mean()),
                }
            )
    return out


def _partner_index(kind: str, n: int, hist: np.ndarray, seed: int) -> np.ndarray | None:
    from ...metrics.latent import adjacent_partner, far_partner, random_derangement

    if kind == "random":
        return random_derangement(n, seed)
    if kind == "far":
        return far_partner(hist)
    if kind == "adjacent":
        return adjacent_partner(n)
    return None  # zero / mean: one code for every image


def _sensitivity_tensor(sums, device: torch.device) -> torch.Tensor:
    groups = ("z", "g", "skips")
    return torch.tensor(
        [
            sums.images,
            *[sums.grad.get(k, 0.0) for k in groups],
            *[sums.attribution.get(k, 0.0) for k in groups],
            *[float(sums.count.get(k, 0)) for k in groups],
        ],
        dtype=torch.float64,
        device=device,
    )


def _reduce_sensitivity(sums, device: torch.device) -> dict[str, float]:
    """Sum the sensitivity over processes (all must call it) and return its result."""
    from ...metrics.latent import SensitivitySums

    groups = ("z", "g", "skips")
    t = du.all_reduce_sum(_sensitivity_tensor(sums, device)).cpu().tolist()
    present = [k for i, k in enumerate(groups) if t[7 + i] > 0]
    total = SensitivitySums(
        {k: t[1 + groups.index(k)] for k in present},
        {k: t[4 + groups.index(k)] for k in present},
        {k: int(t[7 + groups.index(k)]) for k in present},
        int(t[0]),
    )
    return total.result() if total.images else {}


class LatentProbe:
    """Collects the latent-use measures of one evaluation (see the module's docstring)."""

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        device: torch.device,
        options: LatentOptions | None = None,
        miou_exclude: tuple[int, ...] = (0,),
    ) -> None:
        from ...metrics import ConfusionMatrix

        self.opts = options or LatentOptions()
        self.miou_exclude = tuple(miou_exclude)  # the evaluation's own mIoU, for every drop
        unknown = set(self.opts.partners) - set(LATENT_PARTNERS)
        if unknown:
            raise ValueError(f"unknown swap partners {sorted(unknown)}; choose from {', '.join(LATENT_PARTNERS)}")
        self.has_z = model.local_space is not None
        self.has_g = model.global_space is not None
        self.posterior = (
            ConfusionMatrix(num_classes, IGNORE_INDEX)
            if (self.has_z and getattr(model, "postnet", None) is not None)
            else None
        )
        self.posterior_changed = 0
        self.pixels = 0
        self.codes = _Codes()
        self.hist: list[np.ndarray] = []
        self.dominant: list[np.ndarray] = []
        self.z_kl = torch.zeros((), dtype=torch.float64)
        self.z_kl_dims: torch.Tensor | None = None
        self.z_kl_images = 0
        self.num_classes = num_classes
        self.device = device

    # -- pass 1 ---------------------------------------------------------------------------------
    def update(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, enc, logits: torch.Tensor, pred: torch.Tensor
    ) -> None:
        from ...metrics.latent import dominant_class, label_histograms

        self.codes.add(enc)
        self.hist.append(label_histograms(y, self.num_classes))
        self.dominant.append(dominant_class(y, self.num_classes))
        self.pixels += int((y != IGNORE_INDEX).sum())
        if self.posterior is not None:
            self._posterior(model, x, y, enc, pred)

    def _posterior(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, enc, pred: torch.Tensor) -> None:
        """z's KL to PostNet's posterior per dimension, and the score of decoding its means."""
        from ...losses import gmm_kl_per_dim
        from ...models.latent import gaussian_mixture

        q_z = gaussian_mixture(*enc.local)
        p_z, (p_logits, p_mu, _) = model.postnet(x, y.to(x.device))
        # what the decoder makes of the label-informed posterior's means: the most z could add
        decoded = model.decode(enc, torch.softmax(p_logits.float(), dim=1), p_mu.float()).argmax(1).cpu()
        self.posterior.update(decoded, y)
        self.posterior_changed += int(((decoded != pred) & (y != IGNORE_INDEX)).sum())
        cat_kl, per_dim = gmm_kl_per_dim(q_z, p_z)
        dims = per_dim.double().sum(0).cpu()
        self.z_kl_dims = dims if self.z_kl_dims is None else self.z_kl_dims + dims
        self.z_kl += cat_kl.double().sum().cpu()
        self.z_kl_images += x.shape[0]

    # -- after pass 1 ---------------------------------------------------------------------------
    def finish(
        self, model: nn.Module, loader, cfg, own_miou: float, threshold: float, progress: bool = False
    ) -> dict[str, Any]:
        """Every latent-use measure (every process must call it: codes are gathered, counts summed)."""
        from ...metrics.latent import collapse_proof_clustering, latent_summary, partner_distance

        n_local = self.codes.local_count()
        order, positions = _dataset_order(loader, n_local, self.device)
        codes = self.codes.gathered(order, self.device)
        hist = du.all_gather_tensors(
            torch.from_numpy(np.concatenate(self.hist) if self.hist else np.zeros((0, self.num_classes))).to(
                self.device
            )
        )
        hist = hist[order].cpu().numpy()
        dominant = (
            du.all_gather_tensors(
                torch.from_numpy(np.concatenate(self.dominant) if self.dominant else np.zeros(0, np.int64)).to(
                    self.device
                )
            )[order]
            .cpu()
            .numpy()
        )
        n = len(hist)
        out: dict[str, Any] = {"images": n}
        out.update(self._posterior_result(own_miou))
        clustering: dict[str, Any] = {}
        if n < 2 or not codes:
            # one image: no variance, no partner, no aggregate posterior to compare with
            if codes:
                out["measures_skipped"] = f"{n} image: the latent-use measures need at least 2"
            return {"latent": out}
        out.update(
            latent_summary(codes.get("mu_z"), codes.get("pi"), codes.get("mu_g"), codes.get("logvar_g"), threshold)
        )
        out.update(_information(codes, self.opts, self.device))
        partners = {kind: _partner_index(kind, n, hist, self.opts.seed) for kind in self.opts.partners}
        for kind, p in partners.items():
            if p is not None:
                out[f"partner_{kind}_distance"] = partner_distance(hist, p)
        if partners or self.opts.sensitivity_batches > 0:
            out.update(self._second_pass(model, loader, cfg, codes, partners, positions, progress))
        if self.opts.untrained:
            out.update(self._untrained(model, loader, cfg, threshold, progress))
        if partners:
            out["partner_seed"] = self.opts.seed
        if "mu_z" in codes:
            clustering = collapse_proof_clustering(codes["mu_z"].numpy(), codes["pi"].numpy(), dominant, threshold)
        return {
            "latent": out,
            **(
                {"clustering_active": clustering["active"], "clustering_by_class": clustering["by_class"]}
                if clustering
                else {}
            ),
        }

    def _posterior_result(self, own_miou: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        counts = du.all_reduce_sum(
            torch.tensor(
                [self.pixels, self.posterior_changed, self.z_kl_images], dtype=torch.float64, device=self.device
            )
        ).tolist()
        pixels, changed, kl_images = counts
        if self.posterior is None:
            return out
        du.all_reduce_sum(self.posterior.matrix)
        miou = self.posterior.compute(exclude_from_mean=self.miou_exclude)["miou"]
        out.update(
            posterior_decode_miou=miou,
            posterior_decode_gain=miou - own_miou,
            posterior_decode_pixels_changed=changed / max(1.0, pixels),
        )
        dims = (
            self.z_kl_dims if self.z_kl_dims is not None else torch.zeros(self.num_latent_dims(), dtype=torch.float64)
        )
        dims = du.all_reduce_sum(dims.to(self.device)).cpu()
        cat = float(du.all_reduce_sum(self.z_kl.to(self.device)).cpu())
        per_dim = (dims / max(1.0, kl_images)).tolist()
        out.update(
            z_kl_to_posterior=cat / max(1.0, kl_images) + sum(per_dim),
            z_kl_categorical=cat / max(1.0, kl_images),
            z_kl_per_dim=per_dim,
            z_kl_dims_above_0_01=int(sum(v > 0.01 for v in per_dim)),
        )
        return out

    def num_latent_dims(self) -> int:
        parts = self.codes.parts.get("mu_z")
        return int(parts[0].shape[-1]) if parts else 1

    # -- pass 2 ---------------------------------------------------------------------------------
    def _second_pass(
        self,
        model: nn.Module,
        loader,
        cfg,
        codes: dict[str, torch.Tensor],
        partners: dict[str, np.ndarray | None],
        positions: torch.Tensor,
        progress: bool,
    ) -> dict[str, Any]:
        """Decode every image with its partners' codes; the decoder's sensitivity on the first batches."""
        from ...metrics import ConfusionMatrix
        from ...metrics.latent import SensitivitySums, decoder_sensitivity
        from ..precision import amp_dtype, autocast

        spaces = [s for s, on in (("z", self.has_z), ("g", self.has_g)) if on]
        names = [(s, k) for s in spaces for k in partners]
        cms = {name: ConfusionMatrix(self.num_classes, IGNORE_INDEX) for name in [("own", ""), *names]}
        changed = {name: 0 for name in names}
        pixels, seen, batches = 0, 0, 0
        sums = SensitivitySums()
        fixed = self._fixed_codes(codes)
        dtype = amp_dtype(cfg.train.amp, self.device)
        skipped = list(getattr(loader, "skipped", []))  # the second pass meets the same files
        for x, y in tqdm(loader, desc="latent swaps", disable=not (progress and du.is_main()), dynamic_ncols=True):
            x = x.to(self.device, non_blocking=True)
            pos = positions[seen : seen + len(x)].numpy()
            seen += len(x)
            with autocast(dtype, self.device):
                enc = model.encode(x)
                own = model.decode(enc).argmax(1).cpu()
                cms[("own", "")].update(own, y)
                for space, kind in names:
                    swapped = (
                        model.decode(enc, **self._codes_for(space, kind, partners[kind], pos, codes, fixed, len(x)))
                        .argmax(1)
                        .cpu()
                    )
                    cms[(space, kind)].update(swapped, y)
                    changed[(space, kind)] += int(((swapped != own) & (y != IGNORE_INDEX)).sum())
            pixels += int((y != IGNORE_INDEX).sum())
            if batches < self.opts.sensitivity_batches:
                sums = sums + decoder_sensitivity(model, enc, seed=self.opts.seed + batches)
                batches += 1
        if hasattr(loader, "skipped"):
            loader.skipped[:] = skipped
        return self._swap_result(cms, changed, pixels, sums)

    def _swap_result(self, cms: dict, changed: dict, pixels: int, sums) -> dict[str, Any]:
        counts = du.all_reduce_sum(
            torch.tensor([pixels, *changed.values()], dtype=torch.float64, device=self.device)
        ).tolist()
        pixels, *n_changed = counts
        for cm in cms.values():
            du.all_reduce_sum(cm.matrix)
        reference = cms[("own", "")].compute(exclude_from_mean=self.miou_exclude)["miou"]
        out: dict[str, Any] = {"decode_miou": reference}
        for (space, kind), n in zip(changed, n_changed, strict=True):
            miou = cms[(space, kind)].compute(exclude_from_mean=self.miou_exclude)["miou"]
            out.update(
                {
                    f"swap_{space}_{kind}_miou": miou,
                    f"swap_{space}_{kind}_miou_drop": reference - miou,
                    f"swap_{space}_{kind}_pixels_changed": n / max(1.0, pixels),
                }
            )
        out.update(_reduce_sensitivity(sums, self.device))
        return out

    @staticmethod
    def _fixed_codes(codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The zero and the mean code. z's is the decoder's input π_k·μ_k (handed over with π = 1),
        averaged over the set; g's is μ_g."""
        out = {}
        if "mu_z" in codes:
            u = codes["pi"].unsqueeze(-1) * codes["mu_z"]
            out.update(z_mean=u.mean(0, keepdim=True), z_zero=torch.zeros_like(u[:1]))
        if "mu_g" in codes:
            out.update(g_mean=codes["mu_g"].mean(0, keepdim=True), g_zero=torch.zeros_like(codes["mu_g"][:1]))
        return out

    def _codes_for(
        self,
        space: str,
        kind: str,
        partner: np.ndarray | None,
        pos: np.ndarray,
        codes: dict[str, torch.Tensor],
        fixed: dict[str, torch.Tensor],
        b: int,
    ) -> dict[str, torch.Tensor]:
        """The keyword arguments of ``model.decode`` that replace one space's code for a batch."""
        dev = self.device
        if space == "z":
            if partner is None:
                u = fixed[f"z_{kind}"].expand(b, -1, -1)
                return {"pi": torch.ones(u.shape[:2], device=dev), "mu_z": u.to(dev)}
            other = torch.from_numpy(partner[pos])
            return {"pi": codes["pi"][other].to(dev), "mu_z": codes["mu_z"][other].to(dev)}
        if partner is None:
            return {"mu_g": fixed[f"g_{kind}"].expand(b, -1).to(dev)}
        return {"mu_g": codes["mu_g"][torch.from_numpy(partner[pos])].to(dev)}

    # -- the untrained baseline -----------------------------------------------------------------
    def _untrained(self, model: nn.Module, loader, cfg, threshold: float, progress: bool) -> dict[str, Any]:
        """Active units, information and sensitivity of a freshly initialised network of the same
        configuration (``build_args``, PostNet left out), seeded with ``cfg.seed``, on the same images."""
        from ...metrics.latent import SensitivitySums, decoder_sensitivity

        fresh = _fresh_copy(model, cfg.seed).to(self.device).eval()
        store, sums, batches = _Codes(), SensitivitySums(), 0
        skipped = list(getattr(loader, "skipped", []))
        for x, _ in tqdm(
            loader, desc="untrained baseline", disable=not (progress and du.is_main()), dynamic_ncols=True
        ):
            with torch.no_grad():
                enc = fresh.encode(x.to(self.device, non_blocking=True))
            store.add(enc)
            if batches < self.opts.sensitivity_batches:
                sums = sums + decoder_sensitivity(fresh, enc, seed=self.opts.seed + batches)
                batches += 1
        if hasattr(loader, "skipped"):
            loader.skipped[:] = skipped
        order, _ = _dataset_order(loader, store.local_count(), self.device)
        codes = store.gathered(order, self.device)
        out: dict[str, Any] = {}
        out.update(_active(codes, threshold, prefix="untrained_"))
        out.update(_information(codes, self.opts, self.device, prefix="untrained_"))
        out.update(
            {
                f"untrained_{k}": v
                for k, v in _reduce_sensitivity(sums, self.device).items()
                if k.startswith(("sensitivity_z", "sensitivity_g", "jacobian", "attribution"))
            }
        )
        return out


def _fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """A freshly initialised network built from ``model.build_args`` under ``seed`` (no PostNet:
    it never touches the encoder, the spaces or the decoder); the global RNG is restored."""
    args = {k: v for k, v in model.build_args.items() if k != "name"}
    args.update(postnet=None, decode_posterior=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return type(model).from_build_args(**args)
