"""One configuration system for the CLI and the Python API: dataclasses read from YAML, with
dotted ``key=value`` overrides (``--set train.lr=3e-4``).

>>> cfg = load_config("configs/demo.yaml", ["train.epochs=2", "model.backbone=resnet34"])
>>> cfg.train.epochs
2
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from .conventions import (
    CE_SCALES,
    EVAL_MODES,
    KL_DIRECTIONS,
    KL_METHODS,
    LATENT_PARTNERS,
    POSTNET_VARIANTS,
    SUMMARY_NORMS,
    UNKNOWN_IDS,
    VAL_LATENT_LEVELS,
)
from .io import AtomicFile

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "TrainConfig",
    "EvalConfig",
    "ConfigError",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "save_config",
    "all_keys",
    "validate",
    "RECIPES",
    "load_yaml_text",
]


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message says which and why."""


@dataclass
class DataConfig:
    dataset: str = "cityscapes"  # cityscapes | synthia | camvid | folder
    root: str = "data/cityscapes"
    size: tuple[int, int] = (768, 384)  # (W, H): the paper's 768×384
    train_split: str = "train"
    val_split: str = "val"
    masks_root: str | None = None  # folder datasets: masks beside images by default
    class_table: str | None = None  # YAML/CSV table or builtin name; None: the dataset's own
    unknown_ids: str = "error"  # error | ignore
    miou_exclude: tuple[str, ...] | None = (
        None  # classes left out of the mIoU; null: the class table's (shipped: background)
    )
    skip_bad_samples: bool = False  # log and skip unreadable files instead of stopping
    max_bad_fraction: float = 0.01  # with skip_bad_samples: stop when more than this is bad
    augment: bool = True
    samples_per_epoch: int | None = None  # paper: 2,975 Cityscapes images → 17,500 per epoch
    num_workers: int = 2
    pin_memory: str = "auto"  # auto (on with CUDA) | true | false


@dataclass
class ModelConfig:
    name: str = "phgmm"  # a registered network: `phgmm models` lists them (MODEL_NAMES)
    backbone: str = "resnet101"
    num_classes: int = 12
    num_components: int = 12  # K
    use_global: bool = True  # g
    postnet: str | None = "full"  # full | light | null
    latent_dim: int = 256  # L
    component_dim: int = 64  # D
    global_dim: int = 64  # M
    local_channels: int = 512
    decoder_channels: int | None = None  # None: 3·C
    decoder_units: tuple[int, ...] = (3, 23, 4, 3)
    use_local: bool = True  # z; false: the "without z" ablation (decoder from the skips)
    sample_latent: bool = False  # decode samples of z and g in training (remedy)
    decode_posterior: float = 0.0  # weight of ℓ_s on PostNet's posterior sample (CVAE remedy)
    skip_dropout: float = 0.0  # drop an image's encoder skips in training (remedy)
    summary_norm: str = "none"  # none | batch: BatchNorm before the summaries' sigmoid (departure)
    pretrained_backbone: str | None = None  # a torchvision ResNet state dict (.pth), optional
    init_from: str | None = None  # fine-tune: a checkpoint or published folder; every weight that fits


@dataclass
class LossConfig:
    lambda_g: float = 1.1
    lambda_z: float = 0.4
    lambda_s: float = 0.4
    kl: str = "matched"  # matched | mc | variational
    mc_samples: int = 1
    kl_warmup_steps: int = 0  # λ_z, λ_g ramp from 0 over these steps (remedy)
    free_bits: float = 0.0  # KL floor per latent dimension, nats (remedy)
    ce_scale: str = "mean"  # mean (default) | eq7 (mean × 1/C, Eq. 7 as printed) | sum (per image)
    kl_direction: str = "q_to_posterior"  # q_to_posterior (Eq. 6) | posterior_to_q (Probabilistic U-Net)
    geco_target: float | None = None  # GECO: the ℓ_s the constraint asks for (κ); null: off
    geco_rate: float = 0.01  # GECO: λ ← λ·exp(rate · moving average of ℓ_s − κ)
    geco_alpha: float = 0.99  # GECO: the constraint's moving-average decay


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 8  # per process
    lr: float = 1e-4
    weight_decay: float = 0.01  # on weights only, none on norms and biases
    poly_power: float = 0.9
    grad_clip: float | None = None
    val_every: int = 1  # epochs; 0 disables validation during training
    log_every: int = 10  # steps between TensorBoard scalars
    amp: str = "auto"  # auto (bf16/fp16 on CUDA; bf16 on a CPU with bf16 instructions, else off) | bf16 | fp16 | off
    channels_last: str = "auto"  # auto (on: faster inference on CPU and GPU) | true | false
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune…
    cuda_graph: bool = False  # replay the whole step as one CUDA graph (bf16/fp32, one GPU; docs/gpu.md)
    sync_bn: bool = False
    max_steps_per_epoch: int | None = None
    checkpoint_every: int = 0  # steps between mid-epoch last.pt saves; 0: epoch ends only


#: the modes ``torch.compile`` takes (train.compile_mode)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class EvalConfig:
    batch_size: int = 4
    trimap_max_width: int = 40
    clustering: bool = True
    tsne: bool = True
    report_samples: int = 4
    latent: bool = True  # PHGMM: active units, KL per dimension, swap test
    active_threshold: float = 0.01  # a unit is active when Var_x(E[u|x]) exceeds this
    # latent-use measures (docs/latent.md, "How latent use is measured")
    latent_partners: tuple[str, ...] = ("random", "far", "zero", "mean")  # swap partners; + adjacent
    latent_seed: int = 0  # seeds the random derangement, MI draws, sensitivity probes
    latent_mi_samples: int = 16  # Monte-Carlo draws per image for I(x; z), I(x; g); 0: off
    latent_sensitivity_batches: int = 2  # batches for the decoder's sensitivity; 0: off
    latent_untrained: bool = True  # the same measures on a freshly initialised network
    val_latent: str = "light"  # at validation in training: full | light | off
    uncertainty: bool = False  # AUROC/AUPR of uncertainty maps for wrong pixels, ECE
    uncertainty_samples: int = 8  # PHGMM: decodes of z ~ q(z|x) for entropy and MI
    mode: str = "whole"  # whole | slide (sliding window over data.size images)
    tile: tuple[int, int] | None = None  # slide window (W, H); None: the model's data.size
    stride: tuple[int, int] | None = None  # slide step (W, H); None: 2/3 of the tile
    flip: bool = False  # test-time augmentation: average with the mirrored image
    scales: tuple[float, ...] = (1.0,)  # test-time augmentation: input scale factors


#: Named recipes: ``recipe: NAME`` (in a config file or ``--set recipe=NAME``) stands for these keys,
#: applied before the other keys of the same file or ``--set`` list, so that those still win.
RECIPES: dict[str, dict[str, Any]] = {
    # Eq. 3–7 exactly as the paper prints them: the 1/C factor on the cross-entropy
    "paper": {"loss.ce_scale": "eq7"},
    # Probabilistic U-Net (Kohl et al. 2018): the decoder trained on samples of PostNet's posterior
    # only, KL(posterior ‖ prior) with β = 1, the cross-entropy summed over each image's pixels
    "punet": {
        "model.decode_posterior": 1.0,
        "model.sample_latent": True,
        "loss.kl_direction": "posterior_to_q",
        "loss.ce_scale": "sum",
        "loss.lambda_s": 1.0,
        "loss.lambda_z": 1.0,
        "loss.lambda_g": 1.0,
    },
    # GECO (Rezende & Viola 2018) on the default objective: the KL terms minimised subject to
    # ℓ_s ≤ κ. κ = 1.0 is sized for the CPU CamVid and demo budgets, which end near ℓ_s ≈ 1.3, so the
    # multiplier on ℓ_s keeps growing (the KL terms' weight shrinking); set loss.geco_target per task
    "geco": {"loss.geco_target": 1.0, "loss.geco_rate": 0.05},
}


@dataclass
class Config:
    recipe: str | None = None  # a name from RECIPES (first: the keys below override it)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs/phgmm"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # PyTorch intra-op threads; null: the free cores (cores − data.num_workers)


_SECTIONS = {"data", "model", "loss", "train", "eval"}


def all_keys(cfg: Config | None = None) -> list[str]:
    """Every dotted key a config accepts (``data.root``, ``train.lr``, ``output_dir`` …)."""
    cfg = cfg or Config()
    keys = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{f.name}.{g.name}" for g in fields(value)]
        else:
            keys.append(f.name)
    return keys


def _unknown(key: str, where: str, cfg: Config) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(cfg), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(all_keys(cfg))}"
    return ConfigError(f"{where}: unknown config key {key!r}{hint}")


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    """Convert a YAML value to the field's declared type, with a clear error."""
    text = str(hint)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{where}: {key} may not be null")
    if "tuple" in text:
        kind = float if "float" in text else str if "str" in text else int
        if kind is not str and isinstance(value, str) and "x" in value.lower():  # "768x384"
            value = value.lower().split("x")
        if kind is str and isinstance(value, (str, int)) and not isinstance(value, bool):  # one name
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list (e.g. [768, 384]), got {value!r}")
        try:
            out = tuple(kind(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key} must be a list of {kind.__name__}s, got {value!r}") from None
        if kind is int and any(isinstance(v, float) and v != int(v) for v in value):
            raise ConfigError(f"{where}: {key} must be a list of integers, got {value!r}")
        return out
    if hint is bool or text.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    for typ in (int, float):
        if hint is typ or text.startswith(typ.__name__):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
            try:
                out = typ(value)
            except ValueError:
                raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None
            if typ is int and isinstance(value, float) and value != int(value):
                raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
            return out
    if hint is str or text.startswith("str"):
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        if isinstance(value, bool):  # YAML 1.1 reads off/no/false as False: keep its YAML spelling
            return "true" if value else "false"
        return str(value)
    return value


def _set(cfg: Config, key: str, value: Any, where: str) -> None:
    if key == "recipe" and value is not None:
        if value not in RECIPES:
            raise ConfigError(f"{where}: unknown recipe {value!r}; choose one of {', '.join(RECIPES)}")
        for k, v in RECIPES[value].items():
            _set(cfg, k, v, f"{where} (recipe {value})")
    parts = key.split(".")
    if len(parts) == 1 and parts[0] not in _SECTIONS:
        target, name = cfg, parts[0]
    elif len(parts) == 2 and parts[0] in _SECTIONS:
        target, name = getattr(cfg, parts[0]), parts[1]
    else:
        raise _unknown(key, where, cfg)
    hints = get_type_hints(type(target))
    if name not in hints:
        raise _unknown(key, where, cfg)
    setattr(target, name, _coerce(value, hints[name], key, where))


def _flatten(d: dict, prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k in _SECTIONS and not prefix:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


#: other spellings of train.amp's values (YAML 1.1 reads ``off`` and ``no`` as false, ``on`` as true)
_AMP_ALIASES = {"false": "off", "no": "off", "none": "off", "fp32": "off", "true": "auto", "on": "auto", "yes": "auto"}
#: the same for eval.val_latent (``--set eval.val_latent=off`` arrives as false)
_VAL_LATENT_ALIASES = {"false": "off", "no": "off", "none": "off", "true": "light", "on": "light"}

#: the encoder depths models/backbone.py builds (RESNET_DEPTHS; not imported: this module loads no torch)
_RESNET_DEPTHS = ("18", "34", "50", "101", "152")


def _check(ok: bool, where: str, key: str, value: Any, need: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {key} must be {need}, got {value!r}")


def _either(values: Iterable[str]) -> str:
    """``a, b or c``."""
    *first, last = values
    return f"{', '.join(first)} or {last}" if first else last


def validate(cfg: Config, where: str = "config") -> Config:
    """Refuse values no run can use, naming the key: sizes, counts, rates, choices. The first
    wrong value is named; ``train.amp``, ``train.channels_last``, ``data.pin_memory`` and
    ``eval.val_latent`` are normalised (their aliases, lower case) in place."""
    _validate_data(cfg, where)
    _validate_model(cfg.model, where)
    _validate_loss(cfg, where)
    _validate_train(cfg, where)
    _validate_eval(cfg.eval, where)
    return cfg


def _validate_data(cfg: Config, where: str) -> None:
    """The data section and the thread count."""
    d = cfg.data
    size = tuple(d.size) if d.size is not None else ()
    _check(
        len(size) == 2 and all(int(v) > 0 for v in size),
        where,
        "data.size",
        list(size),
        "two positive integers [W, H] (e.g. [768, 384] or 768x384)",
    )
    _check(d.num_workers >= 0, where, "data.num_workers", d.num_workers, ">= 0")
    _check(cfg.threads is None or cfg.threads >= 1, where, "threads", cfg.threads, "null (automatic) or >= 1")
    _check(
        d.samples_per_epoch is None or d.samples_per_epoch >= 1,
        where,
        "data.samples_per_epoch",
        d.samples_per_epoch,
        "null or >= 1",
    )
    _check(d.unknown_ids in UNKNOWN_IDS, where, "data.unknown_ids", d.unknown_ids, _either(UNKNOWN_IDS))
    _check(0.0 <= d.max_bad_fraction <= 1.0, where, "data.max_bad_fraction", d.max_bad_fraction, "in [0, 1]")


def _validate_model(m: ModelConfig, where: str) -> None:
    """The model section."""
    _check(m.num_classes >= 2, where, "model.num_classes", m.num_classes, ">= 2")
    _check(m.num_components >= 1, where, "model.num_components", m.num_components, ">= 1")
    _check(
        str(m.backbone).lower().removeprefix("resnet") in _RESNET_DEPTHS,
        where,
        "model.backbone",
        m.backbone,
        "one of " + ", ".join(f"resnet{d}" for d in _RESNET_DEPTHS),
    )
    for key in ("latent_dim", "component_dim", "global_dim", "local_channels"):
        _check(getattr(m, key) >= 1, where, f"model.{key}", getattr(m, key), ">= 1")
    _check(
        len(m.decoder_units) == 4 and all(u >= 1 for u in m.decoder_units),
        where,
        "model.decoder_units",
        list(m.decoder_units),
        "four numbers >= 1 (one per decoder group)",
    )
    _check(
        m.postnet in (*POSTNET_VARIANTS, None), where, "model.postnet", m.postnet, _either((*POSTNET_VARIANTS, "null"))
    )
    _check(0.0 <= m.decode_posterior <= 1.0, where, "model.decode_posterior", m.decode_posterior, "in [0, 1]")
    _check(0.0 <= m.skip_dropout < 1.0, where, "model.skip_dropout", m.skip_dropout, "in [0, 1)")
    _check(m.summary_norm in SUMMARY_NORMS, where, "model.summary_norm", m.summary_norm, _either(SUMMARY_NORMS))


def _validate_loss(cfg: Config, where: str) -> None:
    """The loss section and the recipe."""
    l = cfg.loss  # noqa: E741  (each section by its letter: d, m, l, t, e)
    _check(l.ce_scale in CE_SCALES, where, "loss.ce_scale", l.ce_scale, _either(CE_SCALES))
    _check(l.kl_direction in KL_DIRECTIONS, where, "loss.kl_direction", l.kl_direction, _either(KL_DIRECTIONS))
    _check(
        l.geco_target is None or math.isfinite(l.geco_target),
        where,
        "loss.geco_target",
        l.geco_target,
        "null or a number",
    )
    _check(math.isfinite(l.geco_rate) and l.geco_rate >= 0, where, "loss.geco_rate", l.geco_rate, ">= 0")
    _check(0.0 <= l.geco_alpha < 1.0, where, "loss.geco_alpha", l.geco_alpha, "in [0, 1)")
    _check(
        cfg.recipe is None or cfg.recipe in RECIPES, where, "recipe", cfg.recipe, "null or one of " + ", ".join(RECIPES)
    )
    _check(l.kl in KL_METHODS, where, "loss.kl", l.kl, _either(KL_METHODS))
    for key in ("lambda_g", "lambda_z", "lambda_s", "free_bits"):
        v = getattr(l, key)
        _check(math.isfinite(v) and v >= 0, where, f"loss.{key}", v, "a finite number >= 0")
    _check(l.kl_warmup_steps >= 0, where, "loss.kl_warmup_steps", l.kl_warmup_steps, ">= 0")
    _check(l.mc_samples >= 1, where, "loss.mc_samples", l.mc_samples, ">= 1")


def _validate_train(cfg: Config, where: str) -> None:
    """The train section (``train.amp``, ``train.channels_last`` normalised) and ``data.pin_memory``."""
    t = cfg.train
    _check(t.epochs >= 1, where, "train.epochs", t.epochs, ">= 1")
    _check(t.batch_size >= 1, where, "train.batch_size", t.batch_size, ">= 1")
    _check(math.isfinite(t.lr) and 0 < t.lr <= 10, where, "train.lr", t.lr, "a number in (0, 10]")
    _check(math.isfinite(t.weight_decay) and t.weight_decay >= 0, where, "train.weight_decay", t.weight_decay, ">= 0")
    _check(t.grad_clip is None or t.grad_clip > 0, where, "train.grad_clip", t.grad_clip, "null or > 0")
    for key in ("val_every", "checkpoint_every"):
        _check(getattr(t, key) >= 0, where, f"train.{key}", getattr(t, key), ">= 0 (0 turns it off)")
    _check(t.log_every >= 1, where, "train.log_every", t.log_every, ">= 1")
    t.amp = _AMP_ALIASES.get(str(t.amp).lower(), str(t.amp).lower())
    _check(t.amp in ("auto", "bf16", "fp16", "off"), where, "train.amp", t.amp, "auto, bf16, fp16 or off")
    for section, key in (("train", "channels_last"), ("data", "pin_memory")):
        value = str(getattr(getattr(cfg, section), key)).lower()
        setattr(getattr(cfg, section), key, value)
        _check(value in ("auto", "true", "false"), where, f"{section}.{key}", value, "auto, true or false")
    _check(
        t.compile_mode in COMPILE_MODES,
        where,
        "train.compile_mode",
        t.compile_mode,
        "one of " + ", ".join(COMPILE_MODES),
    )
    _check(
        t.max_steps_per_epoch is None or t.max_steps_per_epoch >= 1,
        where,
        "train.max_steps_per_epoch",
        t.max_steps_per_epoch,
        "null or >= 1",
    )


def _validate_eval(e: EvalConfig, where: str) -> None:
    """The eval section (``eval.val_latent`` normalised)."""
    _check(e.batch_size >= 1, where, "eval.batch_size", e.batch_size, ">= 1")
    _check(e.trimap_max_width >= 1, where, "eval.trimap_max_width", e.trimap_max_width, ">= 1")
    _check(e.uncertainty_samples >= 0, where, "eval.uncertainty_samples", e.uncertainty_samples, ">= 0")
    _check(
        set(e.latent_partners) <= set(LATENT_PARTNERS),
        where,
        "eval.latent_partners",
        list(e.latent_partners),
        "a list of " + ", ".join(LATENT_PARTNERS),
    )
    for key in ("latent_mi_samples", "latent_sensitivity_batches"):
        _check(getattr(e, key) >= 0, where, f"eval.{key}", getattr(e, key), ">= 0 (0 turns it off)")
    e.val_latent = _VAL_LATENT_ALIASES.get(str(e.val_latent).lower(), e.val_latent)
    _check(e.val_latent in VAL_LATENT_LEVELS, where, "eval.val_latent", e.val_latent, _either(VAL_LATENT_LEVELS))
    _check(e.mode in EVAL_MODES, where, "eval.mode", e.mode, _either(EVAL_MODES))
    _check(
        len(e.scales) >= 1 and all(math.isfinite(s) and s > 0 for s in e.scales),
        where,
        "eval.scales",
        list(e.scales),
        "one or more positive factors",
    )


def config_from_dict(d: dict, where: str = "config") -> Config:
    """Build a :class:`Config` from a nested dict (unknown keys are errors)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping of sections (data, model, …), got {type(d).__name__}")
    cfg = Config()
    for key, value in _recipe_first(_flatten(d)):
        _set(cfg, key, value, where)
    return validate(cfg, where)


def _recipe_first(items: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``recipe`` before every other key, so that the keys beside it override the recipe's."""
    items = list(items)
    return sorted(items, key=lambda kv: kv[0] != "recipe")


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Apply ``key=value`` strings; values are parsed as YAML (``3e-4``, ``true``, ``[1, 2]``)."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=3e-4")
        key, raw = item.split("=", 1)
        try:
            value = load_yaml_text(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        except ConfigError as exc:
            raise ConfigError(f"--set {item}: {exc}") from None
        parsed.append((key.strip(), (value, item)))
    for key, (value, item) in _recipe_first(parsed):
        _set(cfg, key, value, f"--set {item}")
    return validate(cfg, "--set" if overrides else "config")


def read_yaml_file(path: str | Path) -> tuple[Path, Any]:
    """A YAML file, or a shipped config of that name (``phgmm configs``): its path and content."""
    path = Path(path)
    if not path.is_file():
        from .configs import require_config

        path = require_config(str(path), ConfigError)
    try:
        return path, load_yaml_text(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""


def _mapping_without_repeats(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" keys may be overridden: YAML's rule
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            repeated = key in seen
        except TypeError:  # an unhashable key: PyYAML's own error follows
            continue
        first = seen.setdefault(key, key_node.start_mark.line + 1)
        if repeated:
            raise ConfigError(
                f"line {key_node.start_mark.line + 1}: {key!r} is given twice in the same section "
                f"(first on line {first}); YAML would silently keep only the last one: remove one"
            )
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_repeats)


def load_yaml_text(text: str) -> Any:
    """``yaml.safe_load``, except that a key repeated in one mapping is a :class:`ConfigError`
    ("line 7: 'epochs' is given twice …") instead of the last one silently winning."""
    return yaml.load(text, Loader=_StrictLoader)


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or start from the defaults when ``path`` is None) and apply overrides.

    ``path`` is a file, or the name of a config shipped with phgmm (``demo``: see ``phgmm configs``).
    """
    if path is None:
        cfg = Config()
    else:
        path, data = read_yaml_file(path)
        cfg = config_from_dict(data, str(path))
    return apply_overrides(cfg, overrides)


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists): what is saved next to a run and inside checkpoints."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return list(v)
        return v

    return {
        k: ({kk: plain(vv) for kk, vv in v.items()} if isinstance(v, dict) else plain(v))
        for k, v in dataclasses.asdict(cfg).items()
    }


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    with AtomicFile(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return Path(path)
