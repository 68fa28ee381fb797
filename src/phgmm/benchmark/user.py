"""What users of the library feel: a data loader's images/s, ``phgmm predict``'s pipeline against the
bare forward, and onnxruntime against PyTorch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .timing import batch_images, time_interleaved

__all__ = ["measure_loader", "measure_predict", "measure_onnx"]


def measure_loader(loader: Any, batch_size: int = 2, workers: int = 2, batches: int = 20) -> dict[str, float]:
    """Images/s of a data loader (a ``DataLoader``/iterable of batches, or a ``Dataset``).

    A dataset is wrapped in a shuffling ``DataLoader`` with ``workers`` workers. The first batch
    (worker start-up) is not timed; then up to ``batches`` batches are.
    """
    if isinstance(loader, torch.utils.data.Dataset) and not isinstance(loader, torch.utils.data.IterableDataset):
        loader = torch.utils.data.DataLoader(
            loader, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=False, persistent_workers=False
        )
    else:
        workers = getattr(loader, "num_workers", workers)
    it = iter(loader)
    try:
        next(it)
    except StopIteration:
        raise ValueError("the loader yields no batches") from None
    n_images, n_batches = 0, 0
    t0 = time.perf_counter()
    for batch in it:
        n_images += batch_images(batch)
        n_batches += 1
        if n_batches >= batches:
            break
    dt = time.perf_counter() - t0
    if n_batches == 0:
        raise ValueError("the loader needs at least two batches to be timed")
    return {"images_per_s": n_images / dt, "batches": n_batches, "images": n_images, "workers": workers}


def _write_synthetic_images(folder: Any, size: tuple[int, int], n: int, seed: int) -> list[Any]:
    """``n`` procedural street scenes of ``size`` = (W, H) as PNGs (realistic decode cost)."""
    import cv2
    import numpy as np

    from ..data.synthetic import render_scene

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        rgb = render_scene(rng, size)[0]
        path = folder / f"scene_{i:04d}.png"
        if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
            raise OSError(f"{path}: cannot write the benchmark's synthetic image")
        paths.append(path)
    return paths


def measure_predict(
    model: nn.Module,
    size: Sequence[int] = (768, 384),
    images: int = 16,
    batch: int = 1,
    rounds: int = 3,
    device: str | torch.device = "cpu",
    workers: int | None = None,
    mf: torch.memory_format = torch.channels_last,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``phgmm predict``'s images/s against the bare model forward's, at ``size`` and ``batch``.

    Writes ``images`` synthetic PNGs of ``size`` = (W, H) to a temporary folder, then times, round
    robin over ``rounds`` rounds (after one untimed round of each), (a) the model's forward over
    the same images already preprocessed, in batches of ``batch``, and (b)
    :func:`~phgmm.engine.inference.pipeline.predict_paths` on the folder (reading, preprocessing, forward,
    argmax, writing labels/color/overlay PNGs; ``workers`` threads each way) with the same batch.
    Returns both images/s and their ratio ``predict_over_forward`` (median seconds per round).
    """
    import tempfile
    from pathlib import Path

    from ..data.imageio import load_image
    from ..engine.inference import Predictor, predict_paths

    say = say or (lambda _msg: None)
    dev = torch.device(device)
    w, h = (int(v) for v in size)
    if images < 1 or batch < 1:
        raise ValueError("images and batch must be positive")
    predictor = Predictor(model=model.eval(), size=(w, h), device=str(dev))
    predictor.memory_format = mf
    with tempfile.TemporaryDirectory(prefix="phgmm-bench-predict-") as tmp:
        folder = Path(tmp) / "images"
        files = _write_synthetic_images(folder, (w, h), images, seed)
        xs = [predictor.prepare(load_image(f)) for f in files]
        batches = [predictor.stack(xs[i : i + batch]).to(dev) for i in range(0, len(xs), batch)]
        out = Path(tmp) / "out"

        def forward() -> None:
            with torch.no_grad():
                for x in batches:
                    predictor.forward(x)

        def predict() -> None:
            predict_paths(predictor, [folder], out, overwrite=True, progress=False, batch=batch, workers=workers)

        forward()
        predict()
        t = time_interleaved({"forward": forward, "predict": predict}, dev, rounds)
    info = {
        "images": images,
        "batch": batch,
        "size_wh": [w, h],
        "rounds": rounds,
        "workers": workers,
        "forward_s": t["forward"],
        "predict_s": t["predict"],
        "forward_images_per_s": images / t["forward"],
        "predict_images_per_s": images / t["predict"],
    }
    info["predict_over_forward"] = info["predict_images_per_s"] / info["forward_images_per_s"]
    say(
        f"predict: {info['predict_images_per_s']:.2f} images/s vs bare forward {info['forward_images_per_s']:.2f} "
        f"images/s ({info['predict_over_forward']:.3f}x)"
    )
    return info


def measure_onnx(
    model: nn.Module,
    size: Sequence[int] = (768, 384),
    batch: int = 1,
    warmup: int = 1,
    iters: int = 10,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """onnxruntime (CPU execution provider) time over PyTorch time for the same model, size
    (W, H) and batch, both on the CPU (PyTorch fp32, channels-last, BatchNorm folded as
    ``phgmm predict`` runs it), timed round robin.

    The model is exported with :func:`phgmm.engine.inference.export.export_onnx` to a temporary file.
    Returns ``{"skipped": reason}`` when ``onnx``/``onnxruntime`` are missing or the export fails.
    """
    import tempfile
    from pathlib import Path

    say = say or (lambda _msg: None)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        note = f"skipped: {exc.name or 'onnxruntime'} is not installed (pip install phgmm[onnx])"
        say(f"onnx: {note}")
        return {"skipped": note}
    from ..engine.inference.export import InferenceGraph, OnnxPredictor, export_onnx
    from ..models.fold import fold_batchnorm

    w, h = (int(v) for v in size)
    # a CPU fp32 copy, no PostNet, BatchNorm folded: PyTorch as phgmm predict runs it
    cpu_model = InferenceGraph(fold_batchnorm(model)).to(memory_format=torch.channels_last)
    torch.manual_seed(seed)
    x = torch.randn(batch, 3, h, w)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    x_np = x.numpy()
    with tempfile.TemporaryDirectory(prefix="phgmm-bench-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            export_onnx(cpu_model, path, example_size=(w, h))
        except Exception as exc:  # noqa: BLE001 - any exporter failure is reported, not fatal
            note = f"skipped: export failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            say(f"onnx: {note}")
            return {"skipped": note}
        session = OnnxPredictor(path)

        def pytorch() -> None:
            with torch.no_grad():
                cpu_model(x_cl)

        def onnxrt() -> None:
            session(x_np)

        for _ in range(max(1, warmup)):
            pytorch()
            onnxrt()
        t = time_interleaved({"pytorch": pytorch, "onnx": onnxrt}, torch.device("cpu"), iters)
    info = {
        "size_wh": [w, h],
        "batch": batch,
        "iters": iters,
        "pytorch_s": t["pytorch"],
        "onnx_s": t["onnx"],
        "onnx_over_pytorch": t["onnx"] / t["pytorch"],
        "provider": "CPUExecutionProvider",
        "onnxruntime": __import__("onnxruntime").__version__,
    }
    say(
        f"onnx: onnxruntime {t['onnx'] * 1e3:.1f} ms vs PyTorch {t['pytorch'] * 1e3:.1f} ms per batch of {batch} "
        f"({info['onnx_over_pytorch']:.3f}x)"
    )
    return info
