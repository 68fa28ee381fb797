"""Values every layer shares: the ignore label and the choices of config keys, torch-free.

Each tuple is read by the code that acts on the key (losses.py, models, engine/evaluation/latent_probe.py,
engine/inference/tiling.py, data) and by config.py's checks, which must not import those modules: one
home, so that a value added to one cannot be refused by the other.
"""

from __future__ import annotations

__all__ = [
    "IGNORE_INDEX",
    "KL_METHODS",
    "CE_SCALES",
    "KL_DIRECTIONS",
    "POSTNET_VARIANTS",
    "SUMMARY_NORMS",
    "LATENT_PARTNERS",
    "VAL_LATENT_LEVELS",
    "EVAL_MODES",
    "UNKNOWN_IDS",
]

#: the label of pixels no loss or score counts (a class table maps its ignored ids to it)
IGNORE_INDEX = 255

#: loss.kl: how ℓ_z's KL between two mixtures is computed (:func:`phgmm.losses.gmm_kl`)
KL_METHODS = ("matched", "mc", "variational")
#: loss.ce_scale: the cross-entropy's reduction in ℓ_s (:func:`phgmm.losses.segmentation_loss`)
CE_SCALES = ("mean", "eq7", "sum")
#: loss.kl_direction: Eq. 6's KL(q(z|x) ‖ p(z|x,y)), or the Probabilistic U-Net's reverse
KL_DIRECTIONS = ("q_to_posterior", "posterior_to_q")

#: model.postnet (or null: no PostNet)
POSTNET_VARIANTS = ("full", "light")
#: model.summary_norm: what runs before the summaries' sigmoid
SUMMARY_NORMS = ("none", "batch")

#: eval.latent_partners: whose code replaces an image's in the swap test
LATENT_PARTNERS = ("random", "far", "zero", "mean", "adjacent")
#: eval.val_latent: the latent-use measures run at validation during training
VAL_LATENT_LEVELS = ("full", "light", "off")
#: eval.mode: the whole image at once, or a sliding window
EVAL_MODES = ("whole", "slide")

#: data.unknown_ids: what a native label id without a class becomes
UNKNOWN_IDS = ("error", "ignore")
