"""run_benchmark's pipeline in about a second: tiny stand-in networks (a convolution, a BatchNorm and
a 1×1 classifier; the latent one has PHGMM's interface and a stand-in PostNet), a scripted
``time_interleaved`` that calls each function once and returns set times, and a scripted
resident-set high-water mark, so that every time, ratio, images/s, MFU, peak memory, progress
line and setting of the result is compared with a number worked out here, as its name says.
The real timing (round-robin order, medians) is checked in test_benchmark_timing.py."""

from __future__ import annotations

import platform
import types

import pytest
import torch
from torch import nn

import phgmm.benchmark.run as run
import phgmm.benchmark.timing as timing
import phgmm.benchmark.user as user
from phgmm.benchmark import RATIO_KEYS
from phgmm.config import Config

pytestmark = pytest.mark.usefixtures("one_thread")

W, H, C = 6, 4, 3  # input size (W, H) and classes: W ≠ H so that a swapped size shows


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


class TinyNet(nn.Module):
    """A baseline: 3×3 convolution 3 → 4 (no bias), BatchNorm, ReLU, 1×1 classifier 4 → C."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Conv2d(4, num_classes, 1)

    def forward(self, x, *args):
        return self.head(self.encoder(x))

    def parameter_counts(self) -> dict[str, int]:
        return {"encoder": _count(self.encoder), "inference_total": _count(self), "training_total": _count(self)}


class TinyLatent(TinyNet):
    """PHGMM's interface (LatentNetwork): ``postnet`` read in the training forward ``net(x, y)``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.local_space = nn.Identity()
        self.postnet = None
        self.build_args = {"summary_norm": "group"}
        self.num_components, self.latent_dim = 2, 5
        self.postnet_calls: list[str] = []

    def forward(self, x, y=None):
        out = super().forward(x)
        if self.postnet is not None and y is not None:
            self.postnet_calls.append(self.postnet.kind)
            out = out + 0 * self.postnet.weight.sum()
        return out

    def forward_latent(self, x, y=None, sample=None):
        return self(x)

    def encode(self, x):
        return x

    def decode(self, enc, pi=None, mu_z=None, mu_g=None):
        return self(enc)

    def sample_logits(self, x, n):
        return self(x)


class FakePostNet(nn.Module):
    """PostNet's constructor arguments kept; 24 parameters when full, 12 when light."""

    made: list[tuple] = []
    instances: list[FakePostNet] = []

    def __init__(self, num_classes, k, latent_dim, backbone, kind, ignore_index, norm) -> None:
        super().__init__()
        FakePostNet.made.append((num_classes, k, latent_dim, backbone, kind, ignore_index, norm))
        FakePostNet.instances.append(self)
        self.kind = kind
        # ones, so that AdamW's weight decay moves them once they are in an optimiser; 4-D, so that
        # the memory format shows
        self.weight = nn.Parameter(torch.ones(2 if kind == "full" else 1, 3, 2, 2))


#: the times time_interleaved returns, call by call: PHGMM's inference (with its encoder and both
#: folded), PHGMM's training step per PostNet, DeepLab's inference, DeepLab's training step
TIMES = [
    {"model": 0.5, "encoder": 0.125, "folded": 0.375, "folded_encoder": 0.3125},
    {"none": 2.0, "light": 2.5, "full": 4.0},
    {"model": 0.625},
    {"step": 1.25},
]


class FakeTimes:
    def __init__(self, table: list[dict[str, float]]) -> None:
        self.table, self.calls = table, []

    def __call__(self, fns, device, iters):
        self.calls.append((list(fns), device, iters))
        for fn in fns.values():
            fn()
        return {k: self.table[(len(self.calls) - 1) % len(self.table)][k] for k in fns}


@pytest.fixture
def fakes(monkeypatch):
    built: list[tuple[str, dict, nn.Module]] = []

    def build_model(name, num_classes, backbone, **kwargs):
        if name == "phgmm":
            model = TinyLatent(num_classes)
        elif name == "unet":  # a network without parameter_counts
            model = nn.Sequential(TinyNet(num_classes))
        else:
            model = TinyNet(num_classes)
        built.append((name, {"num_classes": num_classes, "backbone": backbone, **kwargs}, model))
        return model

    rss = iter(1000 * k * k for k in range(1000))
    times = FakeTimes(TIMES)
    FakePostNet.made, FakePostNet.instances = [], []
    monkeypatch.setattr(run, "build_model", build_model)
    monkeypatch.setattr(run, "PostNet", FakePostNet)
    monkeypatch.setattr(run, "time_interleaved", times)
    monkeypatch.setattr(timing, "maxrss_bytes", lambda: next(rss))
    return types.SimpleNamespace(built=built, times=times)


def _benchmark(models=("phgmm",), **kw):
    said: list[str] = []
    args = dict(
        backbone="resnet7",
        size=(W, H),
        batch=4,
        train_batch=2,
        warmup=2,
        iters=1,
        infer_iters=5,
        num_classes=C,
        peak_flops=1e6,
        count_flops=True,
        model_kwargs={"PHGMM": {"latent_dim": 5}},
        progress=said.append,
    )
    return run.run_benchmark(list(models), **{**args, **kw}), said


#: FLOPs of one inference of TinyNet on 4 images of 6×4 (FlopCounterMode counts 2 per
#: multiply-add): the 3×3 convolution 2·4·24·(3·9)·4 = 20736, the classifier 2·4·24·4·3 = 2304
ENCODER_FLOPS = 20736
INFER_FLOPS = ENCODER_FLOPS + 2304


def test_every_number_of_a_tiny_run(fakes):
    result, said = _benchmark()
    assert [c[2] for c in fakes.times.calls] == [5, 1, 5, 1]  # inference infer_iters, training iters
    assert {c[1] for c in fakes.times.calls} == {torch.device("cpu")}
    assert [c[0] for c in fakes.times.calls] == [list(t) for t in TIMES]
    assert result["ratios"] == {
        "phgmm_infer_over_encoder": 0.5 / 0.125,
        "phgmm_infer_flops_over_encoder": INFER_FLOPS / ENCODER_FLOPS,
        "phgmm_infer_over_deeplabv3": 0.5 / 0.625,
        "phgmm_folded_over_unfolded": 0.375 / 0.5,
        "phgmm_folded_infer_over_encoder": 0.375 / 0.3125,
        "train_full_postnet_over_none": 4.0 / 2.0,
        "train_light_postnet_over_none": 2.5 / 2.0,
        "phgmm_train_images_per_s_over_deeplabv3": (2 / 4.0) / (2 / 1.25),
    }
    assert list(result["ratios"]) == list(RATIO_KEYS)
    assert result["phgmm_train_step_s"] == {"none": 2.0, "light": 2.5, "full": 4.0}
    assert result["encoder_infer_s"] == 0.125
    assert (result["loader"], result["predict"], result["onnx"]) == (None, None, None)
    p, d = result["models"]["phgmm"], result["models"]["deeplabv3"]
    # the k-th warm-up phase sees RSS grow from (2k)²·1000 to (2k+1)²·1000: (4k + 1)·1000
    mem = [1000 * (4 * k + 1) for k in range(9)]
    assert p["infer_peak_memory"] == mem[0] and d["infer_peak_memory"] == mem[7]
    assert [p[f"train_peak_memory_postnet_{v}"] for v in ("none", "light", "full")] == mem[4:7]
    assert p["train_peak_memory"] == mem[6] and d["train_peak_memory"] == mem[8]
    assert (p["infer_s"], p["infer_images_per_s"], d["infer_s"], d["infer_images_per_s"]) == (0.5, 8.0, 0.625, 6.4)
    assert (p["train_step_s"], p["train_images_per_s"], d["train_step_s"], d["train_images_per_s"]) == (
        4.0,
        0.5,
        1.25,
        1.6,
    )
    assert p["infer_flops"] == d["infer_flops"] == INFER_FLOPS
    assert p["infer_mfu"] == INFER_FLOPS / 0.5 / 1e6 and d["infer_mfu"] == INFER_FLOPS / 0.625 / 1e6
    assert p["train_flops"] > INFER_FLOPS and p["train_flops"] == d["train_flops"]  # the PostNet stand-in: 0 FLOPs
    assert p["train_mfu"] == p["train_flops"] / 4.0 / 1e6 and d["train_mfu"] == d["train_flops"] / 1.25 / 1e6
    assert p["memory_kind"] == d["memory_kind"] == "cpu_rss_highwater_delta" and p["train_postnet"] == "full"
    assert "train_postnet" not in d
    tiny = _count(TinyNet(C))  # 3·9·4 + 2·4 (BatchNorm) + 4·3 + 3 = 131
    assert tiny == 131
    assert d["params"] == {"encoder": 116, "inference_total": 131, "training_total": 131}
    assert p["params"] == {"encoder": 116, "inference_total": 131 + 24, "training_total": 131 + 24, "postnet_light": 12}
    for e in (p, d):
        assert e["train_kernels"] > e["infer_kernels"] > 0
    assert p["infer_kernels"] == d["infer_kernels"]  # the inference network has no PostNet
    assert set(p) == {*d, "train_peak_memory_postnet_none", "train_peak_memory_postnet_light"} | {
        "train_peak_memory_postnet_full",
        "train_postnet",
    }


def test_postnets_and_the_models_built(fakes):
    _benchmark()
    # the full PostNet (the paper's) is attached, then the light one built, from PHGMM's K and width
    assert FakePostNet.made == [
        (C, 2, 5, "resnet7", "full", 255, "group"),
        (C, 2, 5, "resnet7", "light", 255, "group"),
    ]
    names = [(n, kw) for n, kw, _ in fakes.built]
    assert names == [
        ("phgmm", {"num_classes": C, "backbone": "resnet7", "latent_dim": 5, "postnet": None}),
        ("deeplabv3", {"num_classes": C, "backbone": "resnet7", "postnet": None}),
    ]
    phgmm = fakes.built[0][2]
    assert phgmm.postnet.kind == "full" and phgmm.decode_posterior == 0.0
    # warm-up twice per variant (none: no PostNet call), one timed call each, then with the full
    # PostNet: the FLOP count's step, the kernel count's first step and its counted step
    assert phgmm.postnet_calls == ["light", "light", "full", "full", "light", "full", "full", "full", "full"]
    assert fakes.built[1][2].training is False  # left in eval mode by the kernel count's inference


def test_progress_lines(fakes):
    _, said = _benchmark(warmup=2)
    threads = torch.get_num_threads()
    assert said == [
        f"measuring phgmm, deeplabv3 on cpu ({threads} threads): resnet7 at 6x4, inference batch 4 (5 timed), "
        "training batch 2 (1 timed after 2 warm-up); a line per measurement follows (at full size on a CPU, "
        "minutes per model: --models, --iters and --size shorten it)",
        "[1/2] phgmm",
        "phgmm: bare encoder 125.0 ms/batch of 4; BatchNorm folded: 375.0 ms, its encoder 312.5 ms",
        "phgmm: inference 500.0 ms/batch of 4",
        "phgmm: training step, PostNet none: 2000.0 ms/batch of 2",
        "phgmm: training step, PostNet light: 2500.0 ms/batch of 2",
        "phgmm: training step, PostNet full: 4000.0 ms/batch of 2",
        "[2/2] deeplabv3",
        "deeplabv3: inference 625.0 ms/batch of 4",
        "deeplabv3: training step 1250.0 ms/batch of 2",
    ]


def test_settings_of_the_result(fakes):
    result, _ = _benchmark(channels_last=False)
    assert result["settings"] == {
        "backbone": "resnet7",
        "size_wh": [6, 4],
        "batch": 4,
        "train_batch": 2,
        "warmup": 2,
        "iters": 1,
        "infer_iters": 5,
        "device": "cpu",
        "device_name": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "amp": None,
        "channels_last": False,
        "num_classes": 3,
        "torch": torch.__version__,
        "peak_flops": 1e6,
        "memory_kind": "cpu_rss_highwater_delta",
        "phgmm_kwargs": {"latent_dim": 5},
        "config_model": None,
        "cuda_graphs": False,
        "timing": "median seconds per call",
    }


def test_defaults_of_a_run(fakes):
    """No FLOPs counted on the CPU by default, no peak FLOP/s, at least 20 inference iterations,
    channels-last by default."""
    result, said = _benchmark(count_flops=None, peak_flops=None, infer_iters=None, amp="none", iters=3)
    p = result["models"]["phgmm"]
    assert "infer_mfu" not in p and "train_flops" not in p and "train_mfu" not in p
    assert p["infer_flops"] == INFER_FLOPS  # PHGMM's inference FLOPs are counted for the FLOP ratio
    assert "infer_flops" not in result["models"]["deeplabv3"]
    s = result["settings"]
    assert (s["infer_iters"], s["iters"], s["peak_flops"], s["amp"], s["channels_last"]) == (20, 3, None, None, True)
    assert [c[2] for c in fakes.times.calls] == [20, 3, 20, 3]
    assert "inference batch 4 (20 timed), training batch 2 (3 timed after 2 warm-up)" in said[0]


def test_infer_iters_is_at_least_twenty_unless_given(fakes):
    result, _ = _benchmark(infer_iters=None, iters=21)
    assert result["settings"]["infer_iters"] == 21
    assert _benchmark(infer_iters=0)[0]["settings"]["infer_iters"] == 0


def test_loader_predict_and_onnx_are_wired(fakes, monkeypatch):
    clock = iter([10.0, 10.5])
    monkeypatch.setattr(user, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    asked = {}

    def fake_predict(model, size, **kw):
        asked["predict"] = (model, size, kw)
        return {"predict_over_forward": 1.5}

    def fake_onnx(model, size, **kw):
        asked["onnx"] = (model, size, kw)
        return {"onnx_over_pytorch": 0.75}

    monkeypatch.setattr(run, "measure_predict", fake_predict)
    monkeypatch.setattr(run, "measure_onnx", fake_onnx)
    data = torch.utils.data.TensorDataset(torch.zeros(9, 3, H, W), torch.zeros(9, H, W, dtype=torch.long))
    result, said = _benchmark(
        loader=data, loader_workers=0, loader_batches=3, predict_images=4, predict_workers=2, onnx=True, seed=7
    )
    # the first (untimed) batch, then three of 2 images in 0.5 s: 12 images/s, 24× PHGMM's 0.5
    assert result["loader"] == {
        "images_per_s": 12.0,
        "batches": 3,
        "images": 6,
        "workers": 0,
        "over_phgmm_train_images_per_s": 24.0,
        "at_least_2x_training": True,
    }
    assert "loader: 12.0 images/s" in said
    assert said[0].startswith(
        "measuring phgmm, deeplabv3, the data loader, phgmm predict on 4 images, ONNX Runtime on cpu ("
    )
    assert result["ratios"]["predict_over_forward_images_per_s"] == 1.5
    assert result["ratios"]["onnx_over_pytorch_time"] == 0.75
    assert result["predict"] == {"predict_over_forward": 1.5} and result["onnx"] == {"onnx_over_pytorch": 0.75}
    fresh = fakes.built[2]
    assert fresh[0] == "phgmm" and len(fakes.built) == 3 and fresh[2].training is False
    assert fresh[2].encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    model, size, kw = asked["predict"]
    assert model is fresh[2] and size == (W, H)
    assert kw == {
        "images": 4,
        "batch": 4,
        "rounds": 3,  # max(iters, 3)
        "device": torch.device("cpu"),
        "workers": 2,
        "mf": torch.channels_last,
        "seed": 7,
        "say": kw["say"],
    }
    assert kw["say"].__self__ is said  # the run's progress
    model, size, kw = asked["onnx"]
    assert model is fresh[2] and size == (W, H)
    assert {k: v for k, v in kw.items() if k != "say"} == {"batch": 4, "warmup": 2, "iters": 5, "seed": 7}
    assert kw["say"].__self__ is said


def test_predict_rounds_and_a_skipped_onnx(fakes, monkeypatch):
    asked = {}
    monkeypatch.setattr(run, "measure_predict", lambda m, s, **kw: asked.update(kw) or {"predict_over_forward": 2.0})
    monkeypatch.setattr(run, "measure_onnx", lambda m, s, **kw: {"skipped": "no"})
    result, _ = _benchmark(predict_images=1, predict_rounds=4, onnx=True, iters=5)
    assert asked["rounds"] == 4 and asked["workers"] is None
    assert "onnx_over_pytorch_time" not in result["ratios"] and result["onnx"] == {"skipped": "no"}
    result, _ = _benchmark(predict_images=1, iters=5)
    assert asked["rounds"] == 5 and result["onnx"] is None


@pytest.mark.parametrize("dtype, amp", [(torch.bfloat16, "bf16"), (None, None)])
def test_amp_is_what_the_device_runs(fakes, monkeypatch, dtype, amp):
    asked = []
    monkeypatch.setattr(run, "amp_dtype", lambda setting, dev: asked.append((setting, dev)) or dtype)
    result, _ = _benchmark(amp="bf16")
    assert result["settings"]["amp"] == amp and asked == [("bf16", torch.device("cpu"))]
    _benchmark(amp=None)
    assert asked[-1] == ("off", torch.device("cpu"))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"amp": "fp16"}, "amp must be None or 'bf16', got 'fp16'"),
        (
            {"config": Config()},
            "give model_kwargs or config, not both (the config's model section has the keys)",
        ),
        ({"batch": 0}, "batch sizes must be positive"),
        ({"train_batch": -1}, "batch sizes must be positive"),
    ],
)
def test_argument_errors_in_full(fakes, kw, message):
    with pytest.raises(ValueError) as err:
        _benchmark(**kw)
    assert str(err.value) == message and fakes.built == []


def test_names_and_defaults():
    from phgmm.models import MODEL_NAMES

    assert run._names(["UNet", "phgmm", "fcn8s", "unet", "DeepLabV3"]) == ["phgmm", "deeplabv3", "unet", "fcn8s"]
    assert run._names([]) == ["phgmm", "deeplabv3"]
    with pytest.raises(ValueError) as err:
        run._names(["fcn8s", "Nope", "x"])
    assert str(err.value) == f"unknown model(s) ['nope', 'x']; choose from {', '.join(MODEL_NAMES)}"
    assert run._defaults(None, None, None, None, None) == ("resnet101", 12, 2, (768, 384))
    assert run._defaults(None, "resnet18", 5, 3, ["64", 32.0]) == ("resnet18", 5, 3, (64, 32))
    cfg = Config()
    cfg.model.backbone, cfg.model.num_classes, cfg.train.batch_size, cfg.data.size = "resnet34", 7, 4, (96, 48)
    assert run._defaults(cfg, None, None, None, None) == ("resnet34", 7, 4, (96, 48))
    assert run._defaults(cfg, "resnet50", 9, 6, (32, 16)) == ("resnet50", 9, 6, (32, 16))


@pytest.mark.parametrize("h, band", [(16, 1), (48, 3), (8, 1)])
def test_inputs_shapes_labels_and_the_ignored_band(h, band):
    x_inf, x_tr, y_tr = run._inputs(torch.device("cpu"), torch.channels_last, (5, h), 2, 3, 4, seed=1)
    assert x_inf.shape == (2, 3, h, 5) and x_tr.shape == (3, 3, h, 5) and y_tr.shape == (3, h, 5)
    assert x_inf.is_contiguous(memory_format=torch.channels_last) and x_tr.dtype == torch.float32
    assert (y_tr[:, :band] == 255).all() and y_tr[:, band:].max() == 3 and y_tr[:, band:].min() == 0
    torch.manual_seed(1)
    assert torch.equal(x_inf, torch.randn(2, 3, h, 5))  # seeded: the same inputs for every run
    again = run._inputs(torch.device("cpu"), torch.contiguous_format, (5, h), 2, 3, 4, seed=1)
    assert torch.equal(again[1], x_tr) and torch.equal(again[2], y_tr) and again[0].is_contiguous()


def _run_of(**kw) -> run._BenchmarkRun:
    x = torch.zeros(3, 3, H, W)
    args = dict(
        dev=torch.device("cpu"),
        dtype=None,
        mf=torch.contiguous_format,
        x_inf=x,
        x_tr=torch.zeros(2, 3, H, W),
        y_tr=torch.zeros(2, H, W, dtype=torch.long),
        warmup=0,
        iters=1,
        infer_iters=1,
        count_flops=False,
        peak_flops=None,
        say=lambda _m: None,
        cfg=Config(),
    )
    return run._BenchmarkRun(**{**args, **kw})


def test_mfu_and_warm_up():
    r = _run_of(peak_flops=100.0)
    assert run._mfu(r, 1000, 2.0) == 5.0
    assert run._mfu(r, 0, 2.0) is None and run._mfu(r, None, 2.0) is None and run._mfu(r, 1000, 0.0) is None
    assert run._mfu(r, 1000, -1.0) is None and run._mfu(_run_of(), 1000, 2.0) is None
    calls = []
    assert run._warm(_run_of(warmup=0), lambda: calls.append(1)) >= 0 and calls == [1]  # at least once
    run._warm(_run_of(warmup=3), lambda: calls.append(2))
    assert calls == [1, 2, 2, 2]


def test_inference_runs_without_gradients_under_the_runs_autocast():
    seen = []
    r = _run_of(dtype=torch.bfloat16)
    run._infer(r, lambda x: seen.append((x, torch.is_grad_enabled(), torch.get_autocast_dtype("cpu"))))()
    assert seen[0][0] is r.x_inf and seen[0][1] is False
    with r.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with _run_of().autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_attach_postnets_needs_the_local_space(monkeypatch):
    monkeypatch.setattr(run, "PostNet", FakePostNet)
    FakePostNet.made = []
    model = TinyLatent(C)
    model.local_space = None
    with pytest.raises(ValueError) as err:
        run._attach_postnets(model, C, "resnet7", Config())
    assert str(err.value) == "the benchmark measures PHGMM's PostNet: PHGMM needs its local space (use_local)"
    del model.local_space  # a network without the attribute at all
    with pytest.raises(ValueError):
        run._attach_postnets(model, C, "resnet7", Config())
    model = TinyLatent(C)
    model.build_args = {}
    cfg = Config()
    cfg.model.decode_posterior = 0.25
    light = run._attach_postnets(model, C, "resnet7", cfg)
    assert (light.kind, model.postnet.kind, model.decode_posterior) == ("light", "full", 0.25)
    assert [m[-1] for m in FakePostNet.made] == ["none", "none"]


def test_model_builder_from_a_config(monkeypatch):
    import phgmm.engine.builders as builders

    got = []
    monkeypatch.setattr(builders, "build_model_from_config", lambda cfg, inference: got.append((cfg, inference)) or 1)
    cfg = Config()
    build = run._model_builder(cfg, "resnet18", 5, {"unet": {"x": 1}})
    assert build("unet") == 1
    made, inference = got[0]
    assert inference is True and (made.model.name, made.model.backbone, made.model.num_classes) == (
        "unet",
        "resnet18",
        5,
    )
    assert cfg.model.name == "phgmm" and cfg.model.num_classes == 12  # the config itself is left as it was
    assert made.train == cfg.train


def test_count_kernels_leaves_the_postnet_in_place():
    model = TinyLatent(C)
    postnet = FakePostNet(C, 2, 5, "r", "full", 255, "none")
    model.postnet = postnet
    entry: dict = {}
    run._count_kernels(_run_of(), model, entry)
    assert model.postnet is postnet and entry["train_kernels"] > entry["infer_kernels"] > 0
    plain: dict = {}
    run._count_kernels(_run_of(), TinyNet(C), plain)
    assert plain["infer_kernels"] == entry["infer_kernels"]  # the same network without its PostNet


class FakeGraphedStep:
    made: list = []
    instances: list = []

    def __init__(self, *args) -> None:
        FakeGraphedStep.made.append(args)
        FakeGraphedStep.instances.append(self)
        self.steps = 0

    def step(self, x, y) -> None:
        self.steps += 1
        self.xy = (x, y)


class FakeGraphedForward:
    made: list = []
    instances: list = []

    def __init__(self, model, dev, dtype) -> None:
        FakeGraphedForward.made.append((model, dev, dtype))
        FakeGraphedForward.instances.append(self)
        self.inputs = []

    def __call__(self, x):
        self.inputs.append(x)


def test_cuda_graph_measurements(monkeypatch):
    """_measure_graphs with stand-ins for the graphed step and forward (CUDA only otherwise)."""
    import phgmm.engine.inference.graphed as graphed_forward
    import phgmm.engine.training.graphed as graphed_step

    FakeGraphedStep.made, FakeGraphedForward.made = [], []
    FakeGraphedStep.instances, FakeGraphedForward.instances = [], []
    monkeypatch.setattr(graphed_step, "GraphedTrainStep", FakeGraphedStep)
    monkeypatch.setattr(graphed_forward, "GraphedForward", FakeGraphedForward)
    times = FakeTimes([{"step": 0.25}, {"infer": 0.0625}])
    monkeypatch.setattr(run, "time_interleaved", times)
    said: list[str] = []
    cfg = Config()
    cfg.train.grad_clip = 1.5
    r = _run_of(
        say=said.append,
        iters=4,
        infer_iters=6,
        warmup=2,
        cfg=cfg,
        dtype=torch.bfloat16,
        x_inf=torch.zeros(4, 3, H, W),
        mf=torch.channels_last,
    )
    model = TinyNet(C)
    entry: dict = {}
    run._measure_graphs(r, "tiny", model, entry)
    assert entry == {
        "train_graphed_step_s": 0.25,
        "train_graphed_images_per_s": 8.0,
        "infer_graphed_folded_s": 0.0625,
        "infer_graphed_folded_images_per_s": 64.0,  # 4 images in 62.5 ms
    }
    assert said == ["tiny: CUDA graphs: training step 250.0 ms, folded inference 62.5 ms"]
    assert times.calls == [(["step"], r.dev, 4), (["infer"], r.dev, 6)]
    # two warm-up calls (the capture) and one timed call each, on the run's batches
    (step,) = FakeGraphedStep.instances
    assert step.steps == 3 and step.xy[0] is r.x_tr and step.xy[1] is r.y_tr
    (forward,) = FakeGraphedForward.instances
    assert len(forward.inputs) == 3 and all(x is r.x_inf for x in forward.inputs)
    (args,) = FakeGraphedStep.made
    m, loss_fn, opt, dev, dtype, clip, labels, mf = args
    assert m is model and dev == r.dev and dtype == torch.bfloat16 and clip == 1.5 and labels is False
    assert mf == r.mf and type(loss_fn).__name__ == "PHGMMLoss" and isinstance(opt, torch.optim.AdamW)
    ((folded, dev, dtype),) = FakeGraphedForward.made
    assert dev == r.dev and dtype == torch.bfloat16 and isinstance(folded.encoder[1], nn.Identity)  # folded
    assert folded.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)  # in the run's format
    assert model.training is True  # the graphed step runs in training mode


def _result(**extra) -> dict:
    """A run_benchmark result with a different number in every field, for format_table."""
    phgmm = {
        "params": {"inference_total": 2_375_000, "postnet": 1},  # 2.375 M: "2.38" (half to even)
        "train_images_per_s": 1.234,
        "infer_images_per_s": 5.678,
        "infer_s": 0.01234,
        "train_peak_memory": 3 * 2**20,
        "infer_peak_memory": 5.4 * 2**20,
        "train_mfu": 0.1234,
        "infer_mfu": 0.0567,
        "train_kernels": 700,
        "infer_kernels": 160,
        "train_postnet": "full",
        "train_step_s": 0.5,
    }
    deeplab = {"params": {}, "train_images_per_s": 9.0, "infer_images_per_s": 10.0, "infer_s": 0.25}
    return {
        "settings": {
            "backbone": "resnet18",
            "size_wh": [64, 32],
            "device": "cpu",
            "device_name": "x86_64",
            "amp": None,
            "batch": 3,
            "train_batch": 2,
            "iters": 4,
            "infer_iters": 20,
            "warmup": 1,
            "memory_kind": "cpu_rss_highwater_delta",
        },
        "models": {"phgmm": phgmm, "deeplabv3": deeplab},
        "ratios": {"phgmm_infer_over_encoder": 1.23456, "train_full_postnet_over_none": 0.5},
        "phgmm_train_step_s": {"none": 0.25, "light": 0.3, "full": 0.5},
        "encoder_infer_s": 0.012345,
        **extra,
    }


def test_format_table_line_by_line():
    assert format_table_lines(_result()) == [
        "resnet18, 64×32 (W×H), cpu (x86_64), amp=None, inference batch 3, training batch 2, median of 4 "
        "(training) / 20 (inference) after 1 warm-up",
        "",
        "| model | params (inference) | train img/s | infer img/s | infer ms/batch | train RSS HWM +MiB (CPU) | "
        "infer RSS HWM +MiB (CPU) | train MFU | infer MFU | kernels/train step | kernels/inference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| phgmm (PostNet full) | 2.38 M | 1.23 | 5.68 | 12.3 | 3 | 5 | 12.3% | 5.7% | 700 | 160 |",
        "| deeplabv3 | 0.00 M | 9.00 | 10.00 | 250.0 | - | - | - | - | - | - |",
        "",
        "| ratio | value |",
        "|---|---:|",
        "| phgmm_infer_over_encoder | 1.235 |",
        "| train_full_postnet_over_none | 0.500 |",
        "",
        "PHGMM training step (s): PostNet none: 0.250, PostNet light: 0.300, PostNet full: 0.500",
        "PHGMM bare encoder forward (s): 0.0123",
    ]
    cuda = _result()
    cuda["settings"]["memory_kind"] = "cuda_max_allocated"
    assert format_table_lines(cuda)[2].startswith(
        "| model | params (inference) | train img/s | infer img/s | infer ms/batch | train peak MiB (CUDA max "
        "allocated) | infer peak MiB (CUDA max allocated) | train MFU |"
    )


def format_table_lines(result: dict) -> list[str]:
    return run.format_table(result).split("\n")


def test_format_table_graphs_loader_predict_and_onnx():
    r = _result(
        loader={
            "images_per_s": 12.34,
            "workers": 2,
            "over_phgmm_train_images_per_s": 1.96,
            "at_least_2x_training": False,
        },
        predict={
            "predict_images_per_s": 1.5,
            "forward_images_per_s": 2.25,
            "predict_over_forward": 0.6667,
            "images": 4,
            "size_wh": [64, 32],
            "batch": 2,
            "rounds": 3,
        },
        onnx={"onnx_s": 0.25, "pytorch_s": 0.5, "batch": 2, "onnx_over_pytorch": 0.5},
    )
    r["models"]["phgmm"].update(
        train_graphed_step_s=0.25,
        train_graphed_images_per_s=8.0,
        train_graphed_mfu=0.25,
        infer_graphed_folded_images_per_s=64.5,
    )
    lines = format_table_lines(r)
    assert lines[6:10] == [
        "",
        "| model (CUDA graphs) | train img/s eager | train img/s graphed | graphed ÷ eager step | "
        "train MFU graphed | folded infer img/s graphed |",
        "|---|---:|---:|---:|---:|---:|",
        "| phgmm | 1.23 | 8.00 | 0.500 | 25.0% | 64.50 |",
    ]
    assert lines[10] == ""
    assert lines[-3:] == [
        "loader: 12.3 images/s with 2 workers = 2.0× PHGMM training images/s (< 2×)",
        "predict: 1.50 images/s vs bare forward 2.25 images/s = 0.667× (4 PNGs of 64×32, batch 2, median of 3 rounds)",
        "onnx: onnxruntime 250.0 ms vs PyTorch 500.0 ms per batch of 2 on the CPU = 0.500×",
    ]
    r["loader"]["at_least_2x_training"] = True
    r["onnx"] = {"skipped": "skipped: onnxruntime is not installed"}
    assert format_table_lines(r)[-3].endswith("(≥ 2×)")
    assert format_table_lines(r)[-1] == "onnx: skipped: onnxruntime is not installed"
    assert format_table_lines(_result(loader=None, predict={}, onnx=None))[-1].startswith("PHGMM bare encoder")
    assert run._mib(None) == "-" and run._mib(2**20 * 1.5) == "2" and run._pct(None) == "-" and run._pct(0.5) == "50.0%"


def test_loader_from_config_is_the_training_split_with_augmentation(monkeypatch):
    import phgmm.engine.builders as builders

    got = []
    monkeypatch.setattr(
        builders, "build_dataset_from_config", lambda cfg, split, train: got.append((cfg, split, train)) or 3
    )
    cfg = Config()
    cfg.data.train_split = "trainval"
    assert run.loader_from_config(cfg) == 3 and got == [(cfg, "trainval", True)]


@pytest.mark.parametrize("train_images_per_s, twice", [(6.0, True), (6.000001, False), (4.8, True)])
def test_loader_is_at_least_twice_training_at_exactly_two(monkeypatch, train_images_per_s, twice):
    clock = iter([0.0, 0.5])
    monkeypatch.setattr(user, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    data = torch.utils.data.TensorDataset(torch.zeros(9, 1), torch.zeros(9))
    info = run._loader_check(data, 2, 0, 3, train_images_per_s, lambda _m: None)
    # 6 images in 0.5 s: 12 images/s, twice 6.0, 2.5 times 4.8
    assert info["images_per_s"] == 12.0 and info["over_phgmm_train_images_per_s"] == 12.0 / train_images_per_s
    assert info["at_least_2x_training"] is twice


def test_memory_format_optimised_postnets_and_a_network_without_part_counts(fakes):
    fakes.times.table = [*TIMES, {"model": 0.25}, {"step": 0.5}]
    result, said = _benchmark(models=["unet"], graphs=True)
    phgmm, light = fakes.built[0][2], FakePostNet.instances[1]
    assert phgmm.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fakes.built[2][2][0].encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert light.weight.is_contiguous(memory_format=torch.channels_last)
    assert phgmm.postnet.weight.is_contiguous(memory_format=torch.channels_last)
    # each PostNet variant trained with its own optimiser: weight decay moved the light one too
    assert (light.weight < 1).all() and (phgmm.postnet.weight < 1).all()
    assert result["models"]["unet"]["params"] == {"inference_total": 131}
    # CUDA graphs asked for on the CPU: a line, no graphed measurement
    assert said[1] == "CUDA graphs: CUDA only; not measured on this device"
    assert not any("graphed" in k for e in result["models"].values() for k in e)
    assert result["settings"]["cuda_graphs"] is False


def test_announce_on_a_gpu_has_no_cpu_hint_and_no_graphs_note():
    said: list[str] = []
    r = _run_of(dev=torch.device("cuda", 1), say=said.append, graphs=True, iters=2, infer_iters=7, warmup=3)
    run._announce(r, ["phgmm", "deeplabv3"], "resnet50", (64, 32), False, 0, False)
    assert said == [
        f"measuring phgmm, deeplabv3 on cuda:1 ({torch.get_num_threads()} threads): resnet50 at 64x32, inference "
        "batch 3 (7 timed), training batch 2 (2 timed after 3 warm-up); a line per measurement follows"
    ]


def test_settings_on_a_gpu_and_from_a_config(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: asked.append(d) or "Fake GPU")
    dev = torch.device("cuda", 1)
    cfg = Config()
    cfg.model.backbone = "resnet34"
    s = run._settings(_run_of(dev=dev, graphs=True, peak_flops=2.0), "resnet34", (8, 6), True, "bf16", 5, {}, cfg)
    assert (s["device"], s["device_name"], asked) == ("cuda:1", "Fake GPU", [dev])
    assert (s["memory_kind"], s["cuda_graphs"], s["phgmm_kwargs"], s["peak_flops"]) == (
        "cuda_max_allocated",
        True,
        {},
        2.0,
    )
    assert s["config_model"]["backbone"] == "resnet34" and s["config_model"]["name"] == "phgmm"
    assert run._settings(_run_of(dev=dev), "r", (8, 6), True, None, 5, {}, None)["cuda_graphs"] is False


def test_run_benchmark_defaults(fakes, monkeypatch):
    """One inference image, one warm-up, three timed steps (20 inferences), seed 0, the loader's 2
    workers and 20 batches, fp32, on the CPU."""
    made = []

    class FakeLoader:
        def __init__(self, dataset, **kw) -> None:
            made.append(kw)

        def __iter__(self):
            return (torch.zeros(2) for _ in range(30))

    monkeypatch.setattr(torch.utils.data, "DataLoader", FakeLoader)
    data = torch.utils.data.TensorDataset(torch.zeros(4, 1))
    result = run.run_benchmark([], size=(W, H), num_classes=C, loader=data)
    s = result["settings"]
    assert (s["batch"], s["warmup"], s["iters"], s["infer_iters"], s["device"], s["amp"]) == (1, 1, 3, 20, "cpu", None)
    assert (s["backbone"], s["train_batch"], s["channels_last"]) == ("resnet101", 2, True)
    assert made[0]["num_workers"] == 2 and result["loader"]["batches"] == 20 and result["loader"]["workers"] == 2
    torch.manual_seed(0)  # each network is built from the seed (and trained a few AdamW steps of 1e-4 since)
    assert torch.allclose(fakes.built[1][2].head.weight, TinyNet(C).head.weight, atol=0.005)
    assert [c[2] for c in fakes.times.calls] == [20, 3, 20, 3]


def test_smallest_batches_and_a_contiguous_run(fakes):
    result, _ = _benchmark(batch=1, train_batch=1, channels_last=False)
    assert (result["settings"]["batch"], result["settings"]["train_batch"]) == (1, 1)
    weight = fakes.built[0][2].encoder[0].weight
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)


def test_a_run_from_a_config(fakes, monkeypatch):
    import phgmm.engine.builders as builders

    def from_config(cfg, inference):
        return (
            fakes.built.append((cfg.model.name, {}, TinyLatent(C) if cfg.model.name == "phgmm" else TinyNet(C)))
            or (fakes.built[-1][2])
        )

    monkeypatch.setattr(builders, "build_model_from_config", from_config)
    cfg = Config()
    cfg.model.backbone, cfg.model.num_classes, cfg.train.batch_size, cfg.data.size = "resnet34", C, 3, (W, H)
    cfg.model.decode_posterior = 0.25
    result, _ = _benchmark(config=cfg, model_kwargs=None, backbone=None, num_classes=None, train_batch=None, size=None)
    s = result["settings"]
    assert (s["backbone"], s["num_classes"], s["train_batch"], s["size_wh"]) == ("resnet34", C, 3, [W, H])
    assert s["config_model"]["decode_posterior"] == 0.25 and s["phgmm_kwargs"] == {}
    assert [b[0] for b in fakes.built] == ["phgmm", "deeplabv3"]
    assert fakes.built[0][2].decode_posterior == 0.25  # the config's share of ℓ_s decoded from PostNet


def test_training_steps_get_the_runs_config_precision_and_format(fakes, monkeypatch):
    asked = []
    real = run.train_step

    def spy(model, x, y, cfg, dev, dtype, mf):
        asked.append((cfg, dev, dtype, mf))
        return real(model, x, y, cfg, dev, dtype, mf)

    monkeypatch.setattr(run, "train_step", spy)
    monkeypatch.setattr(run, "amp_dtype", lambda setting, dev: torch.bfloat16)
    cfg = Config()
    monkeypatch.setattr(run, "Config", lambda: cfg)
    _benchmark(amp="bf16")
    assert asked and all(a == (cfg, torch.device("cpu"), torch.bfloat16, torch.channels_last) for a in asked)


def test_inference_and_peak_flops_follow_the_precision(fakes, monkeypatch):
    seen = []
    monkeypatch.setattr(
        TinyNet,
        "forward",
        lambda self, x, *a: seen.append(torch.is_autocast_enabled("cpu")) or self.head(self.encoder(x)),
    )
    monkeypatch.setattr(run, "amp_dtype", lambda setting, dev: torch.bfloat16)
    asked = []
    monkeypatch.setattr(run, "device_peak_flops", lambda dev, amp: asked.append((dev, amp)) or 7.0)
    result, _ = _benchmark(amp="bf16", peak_flops=None)
    assert result["settings"]["peak_flops"] == 7.0 and asked == [(torch.device("cpu"), "bf16")]
    assert seen and all(seen)  # every forward (inference and training) under bf16 autocast
