"""train.cuda_graph and the captured inference forward: what runs on a CPU (engine/training/graphed.py,
engine/inference/graphed.py).

The capture itself needs a GPU (benchmarks/gpu_check.sh checks graphed against eager losses there);
here: the refusals, the step's arithmetic run eagerly, the learning rate as a device tensor, the
non-finite skip, the static batch and the plain checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from support import four_class_phgmm

from phgmm import PHGMMLoss
from phgmm.engine.inference.graphed import GraphedForward
from phgmm.engine.training.graphed import GraphedTrainStep, StaticBatch, make_capturable, training_graph_refusal
from phgmm.engine.training.optimizer import build_optimizer, poly_lambda
from phgmm.engine.training.step import LOSS_TERMS, batched_bn_counters

pytestmark = pytest.mark.usefixtures("one_thread")
CUDA = torch.device("cuda")  # a device object only: nothing runs on it here


def _tiny():
    return four_class_phgmm("light").to(memory_format=torch.channels_last)


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 64, 96, generator=g)
    y = torch.randint(0, 4, (2, 64, 96), generator=g)
    y[:, :4] = 255
    return x, y


def test_refusals_are_one_line_each():
    model, loss = _tiny(), PHGMMLoss()
    assert training_graph_refusal(CUDA, torch.bfloat16, model=model, loss_fn=loss) is None
    assert training_graph_refusal(CUDA, None, model=model, loss_fn=loss) is None
    lines = [
        training_graph_refusal(torch.device("cpu"), None),
        training_graph_refusal(CUDA, torch.float16),
        training_graph_refusal(CUDA, torch.bfloat16, distributed=True),
        training_graph_refusal(CUDA, torch.bfloat16, compiled=True),
        training_graph_refusal(CUDA, torch.bfloat16, loss_fn=PHGMMLoss(warmup_steps=10)),
        training_graph_refusal(CUDA, torch.bfloat16, loss_fn=PHGMMLoss(geco_target=0.5)),
    ]
    model.decoder.groups[0].skip[1].momentum = None
    lines.append(training_graph_refusal(CUDA, torch.bfloat16, model=model))
    for line in lines:
        assert line.startswith("train.cuda_graph: ") and "\n" not in line
    assert "CUDA GPU" in lines[0] and "eagerly" in lines[0]
    assert "GradScaler" in lines[1] and "bf16" in lines[1]


def test_the_graphed_step_run_eagerly_equals_the_trainer_step():
    """The step the graph captures (static batch, found_inf, BN counters in one add), run eagerly
    on the CPU, against the trainer's eager step and schedule. Both optimisers hold the rate as a
    tensor: AdamW divides by √v, so a weight whose gradient is at rounding level would amplify the
    float32 rounding of a float64 rate into a visible difference (the rate itself is checked below)."""
    model, loss = _tiny(), PHGMMLoss()
    twin = copy.deepcopy(model)
    opt, opt2 = build_optimizer(model, 1e-3, 0.01), build_optimizer(twin, 1e-3, 0.01)
    make_capturable(opt, torch.device("cpu"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, poly_lambda(6, 0.9))
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, poly_lambda(6, 0.9))
    graphed = GraphedTrainStep(twin, loss, opt2, torch.device("cpu"), memory_format=torch.channels_last)
    assert isinstance(opt2.param_groups[0]["lr"], torch.Tensor)
    for i in range(3):
        x, y = _batch(i)
        model.train()
        opt.zero_grad(set_to_none=True)
        with batched_bn_counters(model):
            terms = loss(model(x.contiguous(memory_format=torch.channels_last), y), y)
        terms["total"].backward()
        opt.step()
        sched.step()
        stacked = graphed.step(x, y)
        sched2.step()
        expected = torch.stack([terms[k].detach().float() for k in LOSS_TERMS])
        torch.testing.assert_close(stacked, expected, rtol=1e-4, atol=1e-5)
    # the poly rate reached the tensor the graph reads (the rate is held in float32)
    assert float(opt2.param_groups[0]["lr"]) == pytest.approx(1e-3 * poly_lambda(6, 0.9)(3), rel=1e-6)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_a_non_finite_step_leaves_the_weights_and_moments_alone():
    model, loss = _tiny(), PHGMMLoss()
    opt = build_optimizer(model, 1e-3, 0.01)
    graphed = GraphedTrainStep(model, loss, opt, torch.device("cpu"))
    x, y = _batch(0)
    graphed.step(x, y)  # creates the moments
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    moments = {id(p): st["exp_avg"].clone() for p, st in opt.state.items()}
    x[0, 0, 0, 0] = float("nan")
    stacked = graphed.step(x, y)
    assert not bool(torch.isfinite(stacked).all())  # the trainer raises on this, as in eager
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    for p, st in opt.state.items():
        assert torch.equal(st["exp_avg"], moments[id(p)])
        assert float(st["step"]) == 1.0


def test_static_batch_copies_and_refuses_other_shapes():
    x, y = _batch(0)
    static = StaticBatch(x, y, torch.device("cpu"))
    assert static.fits(x, y) and not static.fits(x[:1], y[:1])
    address = static.x.data_ptr()
    static.load(x, y)
    assert static.x.data_ptr() == address and torch.equal(static.x, x) and torch.equal(static.y, y)
    assert static.x.is_contiguous(memory_format=torch.channels_last)


def test_checkpoints_keep_plain_learning_rates():
    model = _tiny()
    opt = build_optimizer(model, 1e-3, 0.01)
    make_capturable(opt, torch.device("cpu"))
    state = opt.state_dict()
    assert all(isinstance(g["lr"], float) and g["capturable"] is False for g in state["param_groups"])
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)  # the live group keeps its tensor
    build_optimizer(_tiny(), 1e-3, 0.01).load_state_dict(state)  # an eager run resumes from it


def test_graphed_forward_is_the_model_on_a_cpu():
    model = _tiny().eval()
    forward = GraphedForward(model, torch.device("cpu"))
    assert not forward.enabled
    x, _ = _batch(0)
    with torch.no_grad():
        torch.testing.assert_close(forward(x), model(x), rtol=0, atol=0)


def test_the_switch_is_refused_in_one_line_on_a_cpu(tmp_path, capsys):
    from phgmm.cli import main
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path / "synth"
    generate_dataset(root, num=4, size=(64, 32), seed=3, fmt="cityscapes", val_fraction=0.25, progress=False)
    sets = [
        f"data.root={root}",
        "data.size=[64, 32]",
        "data.num_workers=0",
        "model.backbone=resnet18",
        "model.decoder_units=[1, 1, 1, 1]",
        "model.latent_dim=8",
        "model.num_components=2",
        "model.postnet=light",
        "train.batch_size=2",
        "train.epochs=1",
        "train.max_steps_per_epoch=1",
        "train.val_every=0",
        "train.cuda_graph=true",
        f"output_dir={tmp_path / 'run'}",
    ]
    argv = ["train", "--config", "demo", "--no-progress"] + [a for kv in sets for a in ("--set", kv)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if "cuda_graph" in line]
    assert said == [
        "train.cuda_graph: CUDA graphs need a CUDA GPU, this run is on cpu; training runs eagerly (the same arithmetic)"
    ], out
    assert (Path(tmp_path) / "run" / "checkpoints" / "last.pt").is_file()
