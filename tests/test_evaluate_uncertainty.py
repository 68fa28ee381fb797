"""evaluate --uncertainty: AUROC/AUPR of the uncertainty maps against scikit-learn on the same
pixels, the ECE against the calibration accumulator fed by hand, and the report's section."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import TOY_PHGMM, Pairs, toy_eval_config

from phgmm import PHGMM
from phgmm.engine.evaluation.evaluate import evaluate_model, write_evaluation
from phgmm.engine.loaders import make_eval_loader
from phgmm.models import build_model


@pytest.mark.parametrize("name", ["phgmm", "fcn8s"])
def test_uncertainty_scores_equal_scikit_learn_on_the_same_pixels(name, tmp_path):
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    model = (PHGMM(**TOY_PHGMM) if name == "phgmm" else build_model("fcn8s", backbone="resnet18")).eval()
    with torch.no_grad():  # confident, varied predictions: entropies spread over (0, log C)
        for p in model.parameters():
            if p.ndim == 4 and p.shape[0] == 12:
                p.mul_(30.0)
    cfg = toy_eval_config()
    cfg.eval.uncertainty_samples = 3
    data = Pairs()
    loader = make_eval_loader(data, batch_size=3, num_workers=0)
    result = evaluate_model(
        model, loader, cfg, torch.device("cpu"), trimap=False, report_samples=0, progress=False, uncertainty=True
    )
    unc = result.metrics["uncertainty"]
    assert ("mutual_information" in unc) == (name == "phgmm")
    with torch.no_grad():
        probs = torch.softmax(model(data.x), 1)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(1)
    valid = data.y != 255
    wrong = (probs.argmax(1) != data.y)[valid].numpy()
    ref = roc_auc_score(wrong, entropy[valid].numpy())
    assert unc["softmax_entropy"]["auroc"] == pytest.approx(ref, abs=2e-3)
    assert unc["softmax_entropy"]["n_wrong"] == int(wrong.sum())
    conf = probs.max(1).values[valid].numpy()
    ece = 0.0
    for lo in np.arange(15) / 15:
        sel = (conf > lo) & (conf <= lo + 1 / 15) if lo > 0 else conf <= 1 / 15
        if sel.any():
            ece += sel.mean() * abs((~wrong[sel]).mean() - conf[sel].mean())
    assert unc["calibration"]["ece"] == pytest.approx(ece, abs=1e-6)
    report = write_evaluation(result, tmp_path, [str(i) for i in range(12)], [(i, i, i) for i in range(12)], cfg)
    text = report.read_text()
    assert "## Uncertainty" in text and "reliability.png" in text
    assert ("## Use of the latent spaces" in text) == (name == "phgmm")
