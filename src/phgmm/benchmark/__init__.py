"""Speed, memory and size of PHGMM and the baselines, measured in one run (docs/design.md §5, Fig. 10).

:func:`run_benchmark` builds every requested network on the same backbone and, on the same random
inputs, measures

* training throughput — images/s of the step ``phgmm train`` runs
  (:func:`phgmm.engine.training.step.training_step` via :func:`phgmm.benchmark.step.train_step`):
  forward, the configured loss (:class:`phgmm.losses.PHGMMLoss`; labels go to PHGMM's PostNet),
  backward, fused AdamW step;
* inference throughput — eval mode under ``torch.no_grad`` (PHGMM's eval forward: no PostNet);
* peak memory — on CUDA ``torch.cuda.max_memory_allocated`` per phase; on CPU the growth of the
  process's resident-set high-water mark (``getrusage`` ``ru_maxrss``) during the phase, labelled
  ``cpu_rss_highwater_delta``: it only grows when a phase exceeds every earlier one, so it is a
  lower bound for later models, not their footprint;
* parameter counts (PHGMM: :meth:`PHGMM.parameter_counts`);
* FLOPs (``torch.utils.flop_counter.FlopCounterMode``) and model FLOPs utilisation on CUDA:
  achieved FLOP/s ÷ the device's peak (table :data:`PEAK_FLOPS`, or ``peak_flops=``);

and these ratios, all from the same run:

* ``phgmm_infer_over_encoder`` — PHGMM inference time ÷ its bare encoder's forward time;
* ``phgmm_infer_flops_over_encoder`` — the same in FLOPs (counted on every device): the time
  ratio's floor unless PHGMM's layers run faster per FLOP than the encoder's;
* ``phgmm_infer_over_deeplabv3`` — PHGMM inference time ÷ DeepLab v3 inference time;
* ``phgmm_folded_over_unfolded`` — PHGMM inference with its BatchNorms folded into the
  convolutions (:func:`phgmm.models.fold_batchnorm`, what ``phgmm predict`` and ``evaluate`` run)
  ÷ the same network unfolded;
* ``phgmm_folded_infer_over_encoder`` — the first ratio with both networks folded: PHGMM's cost
  over its encoder as it is deployed;
* ``train_full_postnet_over_none`` — PHGMM training step with the full PostNet ÷ without PostNet;
* ``train_light_postnet_over_none`` — the same with the light PostNet.

Every time is the median over ``iters`` timed iterations (``infer_iters`` for inference) after
``warmup`` untimed ones (at least one; peak memory is taken over those), with
``torch.cuda.synchronize`` around each on CUDA; the functions compared in a ratio are timed
round-robin so that a drift of the machine's speed hits them alike. Optionally the throughput of a data loader is
measured too, so that a report can check "loader images/s ≥ 2× training images/s".

Two optional measurements of what users of the library feel (a fresh PHGMM built like the one
measured above, inference network only):

* ``predict_over_forward_images_per_s`` (``predict_images=N``, :func:`measure_predict`):
  ``phgmm predict``'s images/s (:func:`phgmm.engine.inference.pipeline.predict_paths` on N synthetic PNGs of
  the benchmark's size: decoding, preprocessing, forward, argmax, writing three PNGs per image)
  over the bare forward's images/s on the same preprocessed batches (``batch`` images each);
* ``onnx_over_pytorch_time`` (``onnx=True``, :func:`measure_onnx`): onnxruntime's time (CPU
  execution provider) over PyTorch's for the same exported model, size and batch, both on the
  CPU; skipped with a note when ``onnx``/``onnxruntime`` are missing or the export fails.
"""

from .run import OPTIONAL_RATIO_KEYS, RATIO_KEYS, format_table, loader_from_config, run_benchmark
from .timing import PEAK_FLOPS, device_peak_flops
from .user import measure_loader, measure_onnx, measure_predict

__all__ = [
    "run_benchmark",
    "format_table",
    "PEAK_FLOPS",
    "RATIO_KEYS",
    "OPTIONAL_RATIO_KEYS",
    "measure_loader",
    "measure_predict",
    "measure_onnx",
    "device_peak_flops",
    "loader_from_config",
]
