"""BatchNorm folded into the convolution before it, for inference (docs/design.md §8).

In eval mode a BatchNorm after a convolution is an affine map per channel, so it can be merged into
the convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one kernel and one
pass over the activations fewer per pair, with the same outputs up to rounding. PHGMM's decoder has
66 such pairs on narrow maps, where the extra pass costs as much as the convolution.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .backbone import BasicBlock, Bottleneck, ResNetEncoder

__all__ = ["fold_batchnorm", "count_batchnorms"]

#: modules whose forward applies ``bn<i>`` directly to the output of ``conv<i>``
_PAIRED_BLOCKS = {BasicBlock: (1, 2), Bottleneck: (1, 2, 3), ResNetEncoder: (1,)}


def _fold_pair(owner: nn.Module, conv_name: str, bn_name: str) -> bool:
    """Merge ``owner.<bn_name>`` into ``owner.<conv_name>`` when they are a Conv2d and a BatchNorm2d
    with running statistics; True when it did."""
    conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
    if not (
        isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
    ):
        return False
    # a transposed convolution's output channels are its weight's second axis (ENet's upsampling)
    setattr(owner, conv_name, fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d)))
    setattr(owner, bn_name, nn.Identity())
    return True


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm that follows a convolution merged into it.

    Pairs are the ResNet blocks' ``conv<i>``/``bn<i>`` and a Conv2d followed by a BatchNorm2d in an
    ``nn.Sequential`` (shortcuts, ``conv_bn_relu``). ``model`` itself is left as it was; the copy is
    for inference only (its BatchNorms are gone, so it cannot be trained).
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for i in _PAIRED_BLOCKS.get(type(module), ()):
            _fold_pair(module, f"conv{i}", f"bn{i}")
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second, after in zip(
                names, names[1:], names[2:] + [None], strict=False
            ):  # the last pair has no third
                if _fold_pair(module, first, second) and isinstance(module._modules.get(after), nn.ReLU):
                    # An in-place ReLU that read the BatchNorm's fresh output now reads the
                    # convolution's, which may be a caller's view (PHGMM's decoder skip is a slice
                    # of a shared convolution): autograd refuses to modify such a view in place.
                    module._modules[after].inplace = False
    return folded


def count_batchnorms(model: nn.Module) -> int:
    """How many BatchNorm layers ``model`` has (0 after :func:`fold_batchnorm`, for PHGMM and the
    baselines)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
