"""Config → objects: the one place that knows how config keys map to constructors."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import Config, ConfigError
from ..losses import PHGMMLoss
from ..models import build_model

__all__ = [
    "build_model_from_config",
    "build_loss",
    "build_dataset_from_config",
    "load_pretrained_backbone",
    "miou_exclusion",
    "describe_miou_classes",
]


def build_model_from_config(cfg: Config, inference: bool = False, pretrained: bool = True) -> nn.Module:
    """The network of ``cfg.model``; ``inference=True`` leaves PostNet out; ``pretrained=False``
    skips ``model.pretrained_backbone`` (for weights that a checkpoint will replace anyway)."""
    m = cfg.model
    kwargs = dict(
        num_components=m.num_components,
        use_global=m.use_global,
        postnet=None if inference else m.postnet,
        latent_dim=m.latent_dim,
        component_dim=m.component_dim,
        global_dim=m.global_dim,
        local_channels=m.local_channels,
        decoder_channels=m.decoder_channels,
        decoder_units=tuple(m.decoder_units),
        sample_latent=m.sample_latent,
        decode_posterior=0.0 if inference else m.decode_posterior,
        use_local=m.use_local,
        skip_dropout=m.skip_dropout,
    )
    if m.summary_norm != "none":  # only then, so that every other network keeps its signature
        kwargs["summary_norm"] = m.summary_norm
    model = build_model(m.name, num_classes=m.num_classes, backbone=m.backbone, **kwargs)
    if m.pretrained_backbone and pretrained and not inference:
        load_pretrained_backbone(model, m.pretrained_backbone)
    return model


def load_pretrained_backbone(model: nn.Module, path: str | Path) -> None:
    """Load a torchvision ResNet state dict (``fc.*`` dropped) into ``model.encoder``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained backbone file not found (model.pretrained_backbone)")
    from .torchfile import read_torch_file

    state = read_torch_file(path)  # refuses, in one line, a file that would run code
    if isinstance(state, dict) and "model" in state and "config" in state:
        resume = f"; to continue its training, --resume {path}" if "optimizer" in state else ""
        raise ValueError(
            f"{path}: a phgmm training checkpoint, not a torchvision ResNet state dict "
            f"(model.pretrained_backbone): to start from all its weights, give it as "
            f"model.init_from={path}{resume}"
        )
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path}: not a state dict of tensors (model.pretrained_backbone expects a "
            f"torchvision ResNet's, e.g. torch.save(resnet101().state_dict(), path))"
        )
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    encoder = getattr(model, "encoder", None)
    if getattr(encoder, "depth", None) is None:  # HRNet, ENet, SegNet: their own encoders
        raise ValueError(
            f"{path}: model.pretrained_backbone loads a torchvision ResNet into a ResNet encoder, and "
            f"{type(model).__name__} has none (its encoder is {type(encoder).__name__}): train it from "
            f"scratch, or start from a phgmm checkpoint of the same network with model.init_from=CKPT"
        )
    problems = _state_dict_problems(encoder.state_dict(), state)
    if problems:
        depth = encoder.depth
        raise ValueError(
            f"{path}: does not fit the encoder of model.backbone=resnet{depth}: {problems} "
            f"(model.pretrained_backbone takes a torchvision ResNet-{depth} state dict)"
        )
    encoder.load_state_dict(state, strict=True)


def _state_dict_problems(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str:
    """One line on why ``given`` does not load into a module whose state dict is ``own``:
    how many keys are missing, unexpected or of another shape, each with a first example."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    shapes = [
        f"{k} {list(given[k].shape)} instead of {list(own[k].shape)}"
        for k in own
        if k in given and given[k].shape != own[k].shape
    ]
    parts = [
        f"{len(found)} {what} (e.g. {found[0]})"
        for what, found in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("tensors of another shape", shapes),
        )
        if found
    ]
    return "; ".join(parts)


def build_loss(cfg: Config) -> PHGMMLoss:
    loss = cfg.loss
    return PHGMMLoss(
        lambda_g=loss.lambda_g,
        lambda_z=loss.lambda_z,
        lambda_s=loss.lambda_s,
        kl=loss.kl,
        mc_samples=loss.mc_samples,
        warmup_steps=loss.kl_warmup_steps,
        free_bits=loss.free_bits,
        decode_posterior=cfg.model.decode_posterior,
        ce_scale=loss.ce_scale,
        kl_direction=loss.kl_direction,
        geco_target=loss.geco_target,
        geco_rate=loss.geco_rate,
        geco_alpha=loss.geco_alpha,
    )


def build_dataset_from_config(cfg: Config, split: str, train: bool):
    """The dataset of ``cfg.data`` for ``split``; augmentation only for training."""
    from ..data import build_dataset

    d = cfg.data
    dataset = build_dataset(
        d.dataset,
        d.root,
        split,
        size=tuple(d.size),
        augment=train and d.augment,
        seed=cfg.seed,
        unknown_ids=d.unknown_ids,
        class_table=d.class_table,
        masks_root=d.masks_root,
    )
    n = getattr(dataset, "num_classes", cfg.model.num_classes)
    if n != cfg.model.num_classes:
        raise ConfigError(
            f"{d.class_table or d.dataset}: the class table has {n} classes but "
            f"model.num_classes is {cfg.model.num_classes}; set --set model.num_classes={n}"
        )
    return dataset


def miou_exclusion(cfg: Config, dataset=None) -> tuple[int, ...]:
    """The class indices left out of the mean IoU: ``data.miou_exclude`` when set (names or
    indices; ``[]``: none), else the data set's class table's ``miou_exclude`` (the shipped tables:
    background), else class 0 (a data set without a table)."""
    from ..data.classes import resolve_classes

    table = getattr(dataset, "table", None)
    names = list(getattr(dataset, "class_names", None) or [str(i) for i in range(cfg.model.num_classes)])
    if cfg.data.miou_exclude is not None:
        return resolve_classes(list(cfg.data.miou_exclude), names, "data.miou_exclude")
    if table is not None:
        return tuple(table.miou_exclude)
    return (0,)


def describe_miou_classes(cfg: Config, dataset) -> str:
    """The start summary's words for what the mIoU averages, and where that choice comes from."""
    excluded = miou_exclusion(cfg, dataset)
    names = list(dataset.class_names)
    table = getattr(dataset, "table", None)
    from ..data.classes import TABLE_DIR

    path = getattr(table, "source", "") or ""
    shipped = bool(path) and Path(path).resolve().parent == TABLE_DIR
    source = (
        "data.miou_exclude"
        if cfg.data.miou_exclude is not None
        else f"class table {table.name if shipped or not path else path}"
    )
    counted = len(names) - len(excluded)
    if not excluded:
        return f"mIoU over all {counted} classes ({source}; data.miou_exclude=[NAME] leaves one out)"
    left = ", ".join(names[i] for i in excluded)
    return f"mIoU over {counted} classes, {left} left out ({source}; data.miou_exclude=[] counts every class)"
