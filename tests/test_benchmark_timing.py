"""benchmark/timing.py and user.py with scripted clocks: the round-robin order, the medians, the
synchronisations, the peak memory of a phase, the GPUs' peak FLOP/s, FLOPs worked out by hand and the
images/s of a loader, ``phgmm predict`` and ONNX Runtime, each compared with the number its name
says (times chosen so that a median, a mean, a first or a last value all differ)."""

from __future__ import annotations

import types

import pytest
import torch
from torch import nn

import phgmm.benchmark.timing as timing
import phgmm.benchmark.user as user

pytestmark = pytest.mark.usefixtures("one_thread")


class Clock:
    """perf_counter stand-in: each call moves time on by the next step (the log shows the order)."""

    def __init__(self, steps) -> None:
        self.now, self.steps, self.log = 0.0, iter(steps), []

    def __call__(self) -> float:
        self.log.append("clock")
        self.now += next(self.steps)
        return self.now


def test_time_interleaved_is_round_robin_with_medians(monkeypatch):
    # per call: the step to t0 (ignored), then the call's duration; a: 1, 5, 2 (median 2, mean 8/3);
    # b: 4, 3, 7 (median 4)
    durations = [1.0, 4.0, 5.0, 3.0, 2.0, 7.0]
    clock = Clock(x for d in durations for x in (100.0, d))
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock))
    fns = {"a": lambda: clock.log.append("a"), "b": lambda: clock.log.append("b")}
    assert timing.time_interleaved(fns, torch.device("cpu"), 3) == {"a": 2.0, "b": 4.0}
    assert clock.log == ["clock", "a", "clock", "clock", "b", "clock"] * 3
    clock = Clock([1.0, 0.5, 1.0, 0.25])
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock))
    # no iterations asked: one anyway
    assert timing.time_interleaved({"a": lambda: None, "b": lambda: None}, torch.device("cpu"), 0) == {
        "a": 0.5,
        "b": 0.25,
    }
    # an even count: the median is the mean of the middle two
    clock = Clock([0.0, 1.0, 0.0, 2.0, 0.0, 4.0, 0.0, 8.0])
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock))
    assert timing.time_interleaved({"a": lambda: None}, torch.device("cpu"), 4) == {"a": 3.0}


def test_cuda_synchronises_around_every_call(monkeypatch):
    log = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: log.append(("sync", device)))
    clock = Clock([0.0, 1.0] * 4)
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: log.append("clock") or clock()))
    dev = torch.device("cuda", 1)
    timing.time_interleaved({"a": lambda: log.append("a"), "b": lambda: log.append("b")}, dev, 2)
    sync = ("sync", dev)
    call = lambda k: [sync, "clock", k, sync, "clock"]  # noqa: E731
    assert log == [sync, *call("a"), *call("b"), *call("a"), *call("b")]
    log.clear()
    timing.sync(torch.device("cpu"))
    assert log == []


def test_maxrss_in_bytes(monkeypatch):
    monkeypatch.setattr(timing.resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=5))
    assert timing.maxrss_bytes() == 5 * 1024  # Linux: kilobytes
    monkeypatch.setattr(timing, "sys", types.SimpleNamespace(platform="darwin"))
    assert timing.maxrss_bytes() == 5  # macOS: bytes
    monkeypatch.undo()
    import resource

    assert timing.maxrss_bytes() == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_peak_memory_of_a_phase(monkeypatch):
    rss = iter([1000, 1700])
    monkeypatch.setattr(timing, "maxrss_bytes", lambda: next(rss))
    with timing.PeakMemory(torch.device("cpu")) as mem:
        assert mem.value == 0 and mem.kind == "cpu_rss_highwater_delta"
    assert mem.value == 700
    log = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: log.append(("reset", d)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: log.append(("max", d)) or 12345.0)
    dev = torch.device("cuda", 0)
    with timing.PeakMemory(dev) as mem:
        assert log == [("reset", dev)] and mem.kind == "cuda_max_allocated"
    assert mem.value == 12345 and isinstance(mem.value, int) and log[-1] == ("max", dev)


@pytest.mark.parametrize(
    "name, amp, peak",
    [
        # dense tensor-core peaks from the vendors' data sheets: H100/H200 SXM bf16 989.4 TFLOP/s
        # (989e12 here), TF32 half of it; A100 bf16 312, TF32 156 TFLOP/s
        ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
        ("NVIDIA H100 80GB HBM3", None, 494.5e12),
        ("NVIDIA H200", "bf16", 989e12),
        ("NVIDIA H200", "fp16", 494.5e12),
        ("NVIDIA a100-SXM4-40GB", "bf16", 312e12),
        ("NVIDIA A100-SXM4-40GB", None, 156e12),
        ("NVIDIA GeForce RTX 4090", "bf16", None),
    ],
)
def test_device_peak_flops(monkeypatch, name, amp, peak):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: asked.append(d) or name)
    dev = torch.device("cuda", 1)
    assert timing.device_peak_flops(dev, amp) == peak and asked == [dev]
    assert timing.device_peak_flops(torch.device("cpu"), "bf16") is None


def test_count_flops_of_a_matrix_product_by_hand():
    lin = nn.Linear(3, 4, bias=False)
    # 2 × (5 rows · 3 inputs · 4 outputs) = 120 FLOPs
    assert timing.count_flops(lambda: lin(torch.zeros(5, 3))) == 120
    assert isinstance(timing.count_flops(lambda: None), int) and timing.count_flops(lambda: None) == 0


def test_batch_images():
    t = torch.zeros(3, 2)
    assert timing.batch_images(t) == 3
    assert timing.batch_images({"y": torch.zeros(9), "image": t}) == 3
    assert timing.batch_images({"y": torch.zeros(9), "images": t}) == 3
    assert timing.batch_images({"y": torch.zeros(9), "x": t}) == 3
    assert timing.batch_images({"y": torch.zeros(9), "z": t}) == 9  # else the first value
    assert timing.batch_images((t, torch.zeros(7))) == 3 and timing.batch_images([[t]]) == 3
    for bad, name in (((), "tuple"), ([], "list"), ("abc", "str")):
        with pytest.raises(TypeError) as err:
            timing.batch_images(bad)
        assert str(err.value) == f"cannot tell the batch size of a {name}"


def _fake_user_clock(monkeypatch, *times):
    it = iter(times)
    monkeypatch.setattr(user, "time", types.SimpleNamespace(perf_counter=lambda: next(it)))


def test_measure_loader_times_all_but_the_first_batch(monkeypatch):
    data = torch.utils.data.TensorDataset(torch.zeros(9, 3, 2, 2), torch.zeros(9, 2, 2))
    _fake_user_clock(monkeypatch, 3.0, 3.25)
    # 9 images in batches of 2: the first untimed, then 2 + 2 + 2 + 1 (drop_last off) in 0.25 s
    assert user.measure_loader(data, batch_size=2, workers=0, batches=10) == {
        "images_per_s": 28.0,
        "batches": 4,
        "images": 7,
        "workers": 0,
    }
    _fake_user_clock(monkeypatch, 3.0, 3.5)
    assert user.measure_loader(data, batch_size=4, workers=0, batches=1) == {
        "images_per_s": 8.0,
        "batches": 1,
        "images": 4,
        "workers": 0,
    }
    batches = [torch.zeros(5), torch.zeros(2), torch.zeros(3)]

    class Loader(list):
        num_workers = 3

    _fake_user_clock(monkeypatch, 1.0, 2.0)
    assert user.measure_loader(Loader(batches), workers=0) == {
        "images_per_s": 5.0,
        "batches": 2,
        "images": 5,
        "workers": 3,
    }
    _fake_user_clock(monkeypatch, 1.0, 2.0)
    assert user.measure_loader(iter(batches), workers=6)["workers"] == 6  # an iterable without num_workers


def test_measure_loader_wraps_a_dataset_in_a_shuffling_loader(monkeypatch):
    made = []

    class FakeLoader:
        def __init__(self, dataset, **kw) -> None:
            made.append(kw)
            self.dataset, self.size = dataset, kw["batch_size"]

        def __iter__(self):
            return (torch.zeros(self.size) for _ in range(len(self.dataset) // self.size))

    monkeypatch.setattr(torch.utils.data, "DataLoader", FakeLoader)
    _fake_user_clock(monkeypatch, 0.0, 2.0)
    data = torch.utils.data.TensorDataset(torch.zeros(50, 1))
    # the defaults: batches of 2 with 2 workers, the first untimed, then 20 batches of 2 in 2 s
    assert user.measure_loader(data) == {"images_per_s": 20.0, "batches": 20, "images": 40, "workers": 2}
    assert made == [
        {"batch_size": 2, "shuffle": True, "num_workers": 2, "drop_last": False, "persistent_workers": False}
    ]


def test_measure_loader_errors():
    with pytest.raises(ValueError) as err:
        user.measure_loader([])
    assert str(err.value) == "the loader yields no batches"
    with pytest.raises(ValueError) as err:
        user.measure_loader([torch.zeros(2)])
    assert str(err.value) == "the loader needs at least two batches to be timed"


class TinySeg(nn.Module):
    """A 3×3 convolution, BatchNorm, ReLU and a 1×1 classifier; ``calls`` keeps the batch size of each
    call (of any copy: Predictor runs a copy with BatchNorm folded)."""

    calls: list[int] = []

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        TinySeg.calls.append(x.shape[0])
        return self.head(self.conv(x))


@pytest.fixture
def predict_spy(monkeypatch):
    """time_interleaved calls each function once and returns set times; predict_paths and the image
    writer keep their arguments (the writer writes 6×4 images whatever the size asked)."""
    import phgmm.engine.inference as predict  # user.py takes predict_paths from the package

    spy = types.SimpleNamespace(timed=[], paths=[], written=[])

    def fake_timed(fns, device, iters):
        spy.timed.append((list(fns), device, iters))
        for fn in fns.values():
            fn()
        return {"forward": 0.5, "predict": 2.0}

    real_paths, real_write = predict.predict_paths, user._write_synthetic_images

    def paths(predictor, inputs, out, **kw):
        spy.paths.append((inputs, out, kw))
        return real_paths(predictor, inputs, out, **kw)

    def write(folder, size, n, seed):
        spy.written.append((folder.name, size, n, seed))
        return real_write(folder, (6, 4), n, seed)

    monkeypatch.setattr(user, "time_interleaved", fake_timed)
    monkeypatch.setattr(predict, "predict_paths", paths)
    monkeypatch.setattr(user, "_write_synthetic_images", write)
    TinySeg.calls = []
    return spy


def test_measure_predict_ratio_and_images_per_s(predict_spy):
    said: list[str] = []
    model = TinySeg()
    info = user.measure_predict(model, (6, 4), images=3, batch=2, rounds=5, workers=1, seed=2, say=said.append)
    assert predict_spy.timed == [(["forward", "predict"], torch.device("cpu"), 5)]
    assert info == {
        "images": 3,
        "batch": 2,
        "size_wh": [6, 4],
        "rounds": 5,
        "workers": 1,
        "forward_s": 0.5,
        "predict_s": 2.0,
        "forward_images_per_s": 6.0,
        "predict_images_per_s": 1.5,
        "predict_over_forward": 0.25,
    }
    assert said == ["predict: 1.50 images/s vs bare forward 6.00 images/s (0.250x)"]
    # 3 images in batches of 2 and 1: the untimed forward and predict, then the timed ones
    assert TinySeg.calls == [2, 1] * 4
    inputs, out, kw = predict_spy.paths[0]
    assert len(predict_spy.paths) == 2 and inputs[0].name == "images" and out.parent == inputs[0].parent
    assert out.name == "out" and out.parent.name.startswith("phgmm-bench-predict-")
    assert kw == {"overwrite": True, "progress": False, "batch": 2, "workers": 1}
    assert predict_spy.written == [("images", (6, 4), 3, 2)]


def test_measure_predict_defaults_and_bounds(predict_spy):
    model = TinySeg()
    info = user.measure_predict(model)  # 16 images of 768×384 (written at 6×4 here), batch 1, 3 rounds
    assert (info["images"], info["batch"], info["rounds"], info["workers"], info["size_wh"]) == (
        16,
        1,
        3,
        None,
        [768, 384],
    )
    assert predict_spy.timed[0][2] == 3 and predict_spy.written == [("images", (768, 384), 16, 0)]
    assert TinySeg.calls == [1] * 64 and predict_spy.paths[0][2]["batch"] == 1
    assert user.measure_predict(TinySeg(), (6, 4), images=1, batch=1, rounds=1)["images"] == 1  # the least
    for bad in ({"images": 0}, {"batch": 0}):
        with pytest.raises(ValueError) as err:
            user.measure_predict(TinySeg(), (6, 4), **bad)
        assert str(err.value) == "images and batch must be positive"


def test_synthetic_images(tmp_path):
    paths = user._write_synthetic_images(tmp_path / "a" / "b", (6, 4), 3, seed=1)
    assert [p.name for p in paths] == ["scene_0000.png", "scene_0001.png", "scene_0002.png"]
    from PIL import Image

    with Image.open(paths[0]) as im:
        assert im.size == (6, 4) and im.mode == "RGB"
    again = user._write_synthetic_images(tmp_path / "c", (6, 4), 1, seed=1)
    assert again[0].read_bytes() == paths[0].read_bytes()


def test_measure_onnx_ratio(monkeypatch):
    pytest.importorskip("onnxruntime")
    asked = []

    def fake(fns, device, iters):
        asked.append((list(fns), device, iters))
        for fn in fns.values():
            fn()
        return {"pytorch": 0.5, "onnx": 0.125}

    monkeypatch.setattr(user, "time_interleaved", fake)
    said: list[str] = []
    info = user.measure_onnx(TinySeg(), (6, 4), batch=2, warmup=0, iters=7, say=said.append)
    import onnxruntime

    assert asked == [(["pytorch", "onnx"], torch.device("cpu"), 7)]
    assert info == {
        "size_wh": [6, 4],
        "batch": 2,
        "iters": 7,
        "pytorch_s": 0.5,
        "onnx_s": 0.125,
        "onnx_over_pytorch": 0.25,
        "provider": "CPUExecutionProvider",
        "onnxruntime": onnxruntime.__version__,
    }
    assert said == ["onnx: onnxruntime 125.0 ms vs PyTorch 500.0 ms per batch of 2 (0.250x)"]


def test_measure_onnx_notes(monkeypatch):
    import sys

    said: list[str] = []
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    note = "skipped: onnxruntime is not installed (pip install phgmm[onnx])"
    assert user.measure_onnx(TinySeg(), (6, 4), say=said.append) == {"skipped": note}
    assert said == [f"onnx: {note}"]
    monkeypatch.undo()
    pytest.importorskip("onnxruntime")
    import phgmm.engine.inference.export as export

    def fail(*a, **kw):
        raise RuntimeError("first line\nsecond")

    monkeypatch.setattr(export, "export_onnx", fail)
    said.clear()
    note = "skipped: export failed (RuntimeError: first line)"
    assert user.measure_onnx(TinySeg(), (6, 4), say=said.append) == {"skipped": note}
    assert said == [f"onnx: {note}"]
    monkeypatch.setattr(export, "export_onnx", lambda *a, **kw: (_ for _ in ()).throw(OSError()))
    assert user.measure_onnx(TinySeg(), (6, 4)) == {"skipped": "skipped: export failed (OSError: )"}


def test_synthetic_images_are_the_rendered_scenes_in_rgb(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from phgmm.data.synthetic import render_scene

    folder = tmp_path / "f"
    folder.mkdir()  # an existing folder is fine
    (path,) = user._write_synthetic_images(folder, (6, 4), 1, seed=3)
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), render_scene(np.random.default_rng(3), (6, 4))[0])
    import cv2

    monkeypatch.setattr(cv2, "imwrite", lambda *a: False)
    with pytest.raises(OSError) as err:
        user._write_synthetic_images(folder, (6, 4), 1, seed=3)
    assert str(err.value) == f"{folder / 'scene_0000.png'}: cannot write the benchmark's synthetic image"
