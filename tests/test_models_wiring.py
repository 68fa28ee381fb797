"""How each registered network's pieces are connected, on tiny inputs and narrow widths.

The operators (criss-cross, position/channel attention, object regions, ...) are checked alone
against loops elsewhere; here the heads around them are. For every network in the registry:

* each distinctive branch matters: zeroing its output (or one element of a list output, such as
  one encoder level or one HRNet branch) changes the evaluation logits, so a fused output depends
  on every input it is documented to fuse;
* the attention maps matter: perturbing the weights of the query/key projections changes the logits;
* modules documented to run several times (CCNet's criss-cross attention, R = 2) run that often;
* the training output carries the documented auxiliary heads at their weights, and every parameter
  receives a gradient from the training loss;
* the network overfits a tiny fixed batch (two 32×32 images, 25 to 80 seeded AdamW steps) to a
  stated mIoU (0.8 for most; chance is below 0.15), which a head that drops or scrambles its
  inputs does not reach.

Zero-initialised parameters (the attention scales γ, residual BatchNorm weights, OCNet's output
projection) are given values first: at zero they silence the branch behind them by design, which
would hide a miswired branch as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from phgmm.losses import PHGMMLoss
from phgmm.models import build_model
from phgmm.models.auxiliary import AuxLogits, main_logits
from phgmm.models.backbone import ResNetEncoder
from phgmm.models.registry import registered

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_CLASSES = 4
SIZE = 32  # H = W: 4×4 cells at output stride 8, 1×1 at 32
LR = 1e-2  # AdamW, no weight decay: fitting two images fast is all that is asked


@dataclass(frozen=True)
class Case:
    """What one network documents about its wiring.

    ``zero``: (module path, index) pairs; the module's output (its ``index``-th element for a list
    output such as the encoder's levels) is replaced by zeros and the eval logits must change.
    ``perturb``: module paths whose weights, perturbed, must change the eval logits.
    ``calls``: module path -> times it runs in one forward.
    ``aux``: the weights of the auxiliary logits in the training output, in order.
    ``steps``, ``target``: the overfit's AdamW steps and the mIoU it must reach on its own batch
    (each target sits below what the network reached when written, by a margin for other CPUs).
    """

    kwargs: dict[str, Any] = field(default_factory=dict)
    zero: tuple[tuple[str, int | None], ...] = ()
    perturb: tuple[str, ...] = ()
    calls: dict[str, int] = field(default_factory=dict)
    aux: tuple[float, ...] = ()
    steps: int = 25
    target: float = 0.8


def _levels(*idx: int) -> tuple[tuple[str, int], ...]:
    return tuple(("encoder", i) for i in idx)


OCR = Case(
    kwargs={"width": 8, "depth": "small", "mid_channels": 32, "key_channels": 16},
    zero=(*_levels(0, 1, 2, 3), ("head.aux_head", None), ("head.conv3x3_ocr", None), ("head.attention", None)),
    perturb=("head.attention.f_pixel", "head.attention.f_object", "head.attention.f_down"),
    calls={"head.attention": 1, "head.aux_head": 1},
    aux=(0.4,),
    # fits more slowly than the plain HRNet (docs/comparisons.md, the HRNet + OCR row)
    steps=80,
    target=0.7,
)
HRNET = Case(kwargs={"width": 8, "depth": "small"}, zero=_levels(0, 1, 2, 3), steps=40)
OCNET = Case(
    zero=(("head.context", None), ("head.context.context", None)),
    perturb=("head.context.context.f_key",),
    calls={"head.context.context": 1},
    aux=(0.4,),
    steps=40,
)

CASES: dict[str, Case] = {
    "phgmm": Case(
        kwargs={
            "decoder_units": (1, 1, 1, 1),
            "latent_dim": 8,
            "num_components": 2,
            "component_dim": 8,
            "global_dim": 8,
            "local_channels": 32,
            "postnet": "light",
        },
        zero=(
            *_levels(0, 1, 2, 3),
            ("local_space.heads.mu", None),
            ("local_space.heads.logits", None),
            ("global_space.mu", None),
            ("global_space.conv", None),
        ),
        calls={"local_space.heads": 1, "global_space.mu": 1},
        steps=30,
    ),
    "deeplabv3": Case(
        kwargs={"aspp_channels": 32},
        zero=tuple((f"head.0.branches.{i}", None) for i in range(5)),
        calls={f"head.0.branches.{i}": 1 for i in range(5)},
    ),
    "fcn8s": Case(zero=_levels(1, 2, 3), calls={"head.up8": 1, "head.up4": 1, "head.up3": 1}),
    "pspnet": Case(
        kwargs={"channels": 32, "branch_channels": 16},
        zero=tuple((f"head.0.stages.{i}", None) for i in range(4)),
        calls={f"head.0.stages.{i}": 1 for i in range(4)},
    ),
    "unet": Case(kwargs={"channels": (32, 32, 16, 16, 8)}, zero=_levels(0, 1, 2, 3)),
    "hrnet_w48": HRNET,
    "hrnet_w18": HRNET,
    "hrnet_w48_ocr": OCR,
    "hrnet_w18_ocr": OCR,
    "danet": Case(
        zero=(("head.post_p", None), ("head.post_c", None), ("head.pam", None), ("head.cam", None)),
        perturb=("head.pam.query", "head.pam.key", "head.pam.value"),
        calls={"head.pam": 1, "head.cam": 1, "head.cls": 1},
        aux=(1.0, 1.0),
    ),
    "ocnet": OCNET,
    "ocnet_asp": Case(
        zero=(
            ("head.context.context", None),
            ("head.context.context_out", None),
            *((f"head.context.branches.{i}", None) for i in range(4)),
        ),
        perturb=("head.context.context.f_key",),
        calls={"head.context.context": 1},
        aux=(0.4,),
    ),
    "ccnet": Case(
        kwargs={"channels": 32},
        zero=(*_levels(3), ("head.cca", None), ("head.refine", None)),
        perturb=("head.cca.query", "head.cca.key", "head.cca.value"),
        calls={"head.cca": 2, "head.reduce": 1, "head.refine": 1},
        aux=(0.4,),
    ),
    "deeplabv2": Case(
        zero=tuple((f"head.branches.{i}", None) for i in range(4)), calls={f"head.branches.{i}": 1 for i in range(4)}
    ),
    "segnet": Case(
        kwargs={"channels": (8, 8, 16, 16, 16)}, zero=tuple((f"head.blocks.{i}", None) for i in range(5)), steps=60
    ),
    "segnet_half": Case(
        kwargs={"channels": (8, 8, 16, 16, 16)}, zero=tuple((f"head.blocks.{i}", None) for i in range(5)), steps=60
    ),
    # ENet starts from large logits (its last layer is a transposed convolution) and fits slowly
    "enet": Case(
        kwargs={"widths": (8, 16, 32)},
        zero=(("encoder.initial", None), ("encoder.stage3", None), ("head.up4", None), ("head.up5", None)),
        steps=80,
        target=0.45,
    ),
    "bisenet": Case(
        kwargs={"channels": 32},
        zero=(
            *_levels(2, 3),
            ("head.spatial", None),
            ("head.global_context", None),
            ("head.arm32", None),
            ("head.arm16", None),
            ("head.refine32", None),
            ("head.ffm", None),
        ),
        perturb=("head.arm32.attention", "head.arm16.attention", "head.ffm.excite"),
        calls={"head.ffm": 1},
        aux=(1.0, 1.0),
    ),
}


def test_every_registered_network_has_a_wiring_case():
    assert set(CASES) == set(registered())


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed SIZE×SIZE scenes of 4×4 blocks, each block one class (every class in each image),
    each class its own colour plus noise. The blocks are as large as one cell at output stride 8,
    so the dilated networks can draw them too."""
    g = torch.Generator().manual_seed(0)
    cells = torch.stack([torch.randperm(16, generator=g) % NUM_CLASSES for _ in range(2)]).view(2, 4, 4)
    y = cells.repeat_interleave(SIZE // 4, 1).repeat_interleave(SIZE // 4, 2)
    colours = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [-1.0, 1.0, 1.0], [0.5, 0.5, -1.0]])
    x = colours[y].permute(0, 3, 1, 2) + 0.5 * torch.randn(2, 3, SIZE, SIZE, generator=g)
    return x, y


def _build(name: str) -> nn.Module:
    """The network at its narrow test widths, with every zero-initialised parameter made live."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES, backbone="resnet18", **CASES[name].kwargs)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("gamma"):
                p.fill_(1.0)
            elif not p.any():
                p.normal_(0.0, 0.1)
    return model


def _forward(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
    return model(x, y) if getattr(model, "model_names", None) == ("phgmm",) else model(x)


def _calibrate(model: nn.Module, x: torch.Tensor) -> None:
    """BatchNorm statistics of ``x`` itself (a cumulative average over one pass), so that the eval
    forward normalises as the training forward did."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        _forward(model, x, torch.zeros(x.shape[0], *x.shape[2:], dtype=torch.long))
    model.eval()


def _zeroing_hook(index: int | None):
    def hook(_module, _inputs, output):
        if index is None:
            return torch.zeros_like(output)
        out = list(output)
        out[index] = torch.zeros_like(out[index])
        return type(output)(out) if isinstance(output, tuple) else out

    return hook


def _changed(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest change relative to the largest logit. An unused branch changes nothing at all: the
    same operations on the same numbers give the same bits, so any change means the branch is read
    (PHGMM's mixture weights, beside its large initial logits, change them least: about 1e-5)."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return _batch()


@pytest.mark.parametrize("name", list(CASES))
def test_branches_matter_and_run_as_often_as_documented(name, batch):
    case, x = CASES[name], batch[0]
    model = _build(name)
    _calibrate(model, x)
    calls: dict[str, int] = {path: 0 for path in case.calls}
    handles = [
        model.get_submodule(path).register_forward_hook(lambda *_, path=path: calls.__setitem__(path, calls[path] + 1))
        for path in case.calls
    ]
    with torch.no_grad():
        ref = _forward(model, x)
    for h in handles:
        h.remove()
    assert calls == case.calls
    assert torch.isfinite(ref).all() and ref.shape == (2, NUM_CLASSES, SIZE, SIZE)
    for path, index in case.zero:
        handle = model.get_submodule(path).register_forward_hook(_zeroing_hook(index))
        with torch.no_grad():
            out = _forward(model, x)
        handle.remove()
        assert _changed(out, ref) > 0, f"zeroing {path}[{index}] leaves the logits as they were"
    for path in case.perturb:
        module = model.get_submodule(path)
        saved = {k: v.clone() for k, v in module.state_dict().items()}
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn_like(p) * p.abs().mean().clamp_min(0.1))
            out = _forward(model, x)
        module.load_state_dict(saved)
        assert _changed(out, ref) > 0, f"perturbing {path}'s weights leaves the logits as they were"


@pytest.mark.parametrize("name", list(CASES))
def test_training_output_gradients_and_overfit(name, batch):
    case, (x, y) = CASES[name], batch
    model = _build(name)
    loss_fn = PHGMMLoss(ignore_index=255)
    model.train()
    out = _forward(model, x, y)
    if name != "phgmm":
        if case.aux:
            assert isinstance(out, AuxLogits)
            assert tuple(w for w, _ in out.aux) == case.aux
            for _, aux in out.aux:
                assert aux.shape == out.logits.shape and not torch.equal(aux, out.logits)
        else:
            assert isinstance(out, torch.Tensor)
    loss_fn(out, y)["total"].backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, f"no gradient reaches {dead[:5]}"
    # overfit the two images; the auxiliary heads train as in the engine (weighted into ℓ_s). A
    # ResNet encoder stays as initialised (the heads are under test; the ResNet is checked against
    # torchvision elsewhere), which makes the steps several times cheaper
    if isinstance(getattr(model, "encoder", None), ResNetEncoder):
        model.encoder.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=0.0)
    for _ in range(case.steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(_forward(model, x, y), y)["total"].backward()
        opt.step()
    miou = _miou(_batch_statistics_prediction(model, x).numpy(), y.numpy())
    assert miou >= case.target, f"{name}: mIoU {miou:.3f} on its own training batch after {case.steps} steps"


def _batch_statistics_prediction(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class indices from the training-mode forward with dropout off: BatchNorm uses the batch's
    own statistics, as in the steps (running statistics of a 1×1 map of two images would not)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout | nn.Dropout2d):
            m.eval()
    with torch.no_grad():
        return main_logits(_forward(model, x)).argmax(1)


def _miou(pred: np.ndarray, label: np.ndarray) -> float:
    ious = []
    for c in range(NUM_CLASSES):
        inter = np.sum((pred == c) & (label == c))
        union = np.sum((pred == c) | (label == c))
        ious.append(inter / union)
    return float(np.mean(ious))
