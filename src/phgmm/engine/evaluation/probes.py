"""What an evaluation measures beside the segmentation scores, one probe each, fed batch by batch
during its pass over the split: how well uncertainty maps tell wrong pixels from right ones and the
calibration of the softmax (:class:`UncertaintyProbe`, any model), and the component means of z for
the clustering indices and t-SNE (:class:`ClusteringProbe`, PHGMM). The latent-use measures, which
need a second pass, are :class:`~phgmm.engine.evaluation.latent_probe.LatentProbe`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ...conventions import IGNORE_INDEX
from .. import distributed as du
from .result import EvalResult

__all__ = ["UncertaintyProbe", "ClusteringProbe"]


class UncertaintyProbe:
    """How well uncertainty maps tell wrong pixels from right ones, and calibration (any model).

    Maps: the softmax entropy of the prediction (every model); for PHGMM also the predictive
    entropy and the mutual information of ``samples`` decodes of z ~ q(z|x). Scores are binned
    on a log scale (the mutual information lives far below 1e-2 nats when z is unused).
    """

    def __init__(self, num_classes: int, samples: int) -> None:
        from ...metrics.calibration import CalibrationAccumulator, ErrorDetectionAccumulator

        top = math.log(num_classes)
        # log-spaced below 0.01 nats (mutual information of a barely used z), then 0.5-millinat steps
        edges = np.concatenate([[0.0], np.logspace(-9, -2, 700, endpoint=False), np.linspace(0.01, top, 5000)])
        self.maps = {
            name: ErrorDetectionAccumulator(edges=edges)
            for name in ("softmax_entropy", "sampled_entropy", "mutual_information")
        }
        self.calibration = CalibrationAccumulator(15)
        self.samples = samples

    def update(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, enc, logits: torch.Tensor, pred: torch.Tensor
    ) -> None:
        from ...metrics import uncertainty_maps
        from ...models.latent import gaussian_mixture

        probs = torch.softmax(logits.float(), dim=1).cpu()
        conf, pred = probs.max(1)
        valid = y != IGNORE_INDEX
        wrong = pred != y
        entropy = -(probs * probs.clamp_min(1e-30).log()).sum(1)
        self.maps["softmax_entropy"].update(entropy, wrong, valid)
        self.calibration.update(conf, ~wrong, valid)
        if enc is not None and enc.local is not None and self.samples > 1:
            logits_pi, mu, logvar = enc.local
            pi = torch.softmax(logits_pi, dim=1)
            z = gaussian_mixture(logits_pi, mu, logvar).component_distribution.sample((self.samples,))
            stack = torch.stack([model.decode(enc, pi, z[i].to(mu.dtype)) for i in range(self.samples)])
            maps = uncertainty_maps(stack.float().cpu())
            self.maps["sampled_entropy"].update(maps["predictive_entropy"], wrong, valid)
            self.maps["mutual_information"].update(maps["mutual_information"], wrong, valid)

    def compute(self, device: torch.device) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, acc in self.maps.items():
            state = du.all_reduce_sum(acc.state_tensor().to(device)).cpu()
            acc.load_state_tensor(state)
            scores = acc.compute()
            if scores["n_wrong"] + scores["n_right"] > 0:
                out[name] = scores
        state = du.all_reduce_sum(self.calibration.state_tensor().to(device)).cpu()
        self.calibration.load_state_tensor(state)
        out["calibration"] = self.calibration.compute()
        return out


class ClusteringProbe:
    """The per-image component means of z, for the paper's clustering indices and t-SNE (Fig. 9)."""

    def __init__(self) -> None:
        self.points: list[torch.Tensor] = []

    def update(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, enc, logits: torch.Tensor, pred: torch.Tensor
    ) -> None:
        self.points.append(enc.local[1].float().cpu())

    def compute(self, result: EvalResult, device: torch.device) -> None:
        if not self.points:
            return
        pts = du.all_gather_tensors(torch.cat(self.points).to(device)).cpu()  # images×K×L
        n_img, k, dim = pts.shape
        result.z_points = pts.reshape(n_img * k, dim).numpy()
        result.z_labels = np.tile(np.arange(k), n_img)
        if k > 1:
            from ...metrics import clustering_indices

            result.metrics["clustering"] = clustering_indices(result.z_points, result.z_labels)
