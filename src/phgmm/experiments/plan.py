"""An experiment file: a base config, the runs that differ from it, and where results go.

.. code-block:: yaml

    kind: compare                 # compare | ablation | latent (decides the report's tables)
    title: Comparison on CamVid
    base: ../camvid.yaml          # a config file (relative to this file) or a packaged name
    set: [train.epochs=6]         # overrides for every run
    output_dir: runs/experiments/compare-camvid   # checkpoints (large; never committed)
    results_dir: docs/results/compare-camvid      # small result files (commit these)
    runs:
      - name: phgmm
        set: [model.name=phgmm]
      - name: deeplabv3
        set: [model.name=deeplabv3]

Relative ``output_dir`` and ``results_dir`` are taken from the current working directory, like
every other output path of phgmm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, apply_overrides, load_config, read_yaml_file

__all__ = ["Experiment", "RunSpec", "load_experiment", "EXPERIMENT_KINDS", "settings_differences", "RUNTIME_KEYS"]

EXPERIMENT_KINDS = ("compare", "ablation", "latent")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class RunSpec:
    """One run of an experiment: a name (its folder) and its config overrides."""

    name: str
    overrides: list[str]
    group: str | None = None  # ablation: which table the run belongs to ("k", "parts")


@dataclass
class Experiment:
    kind: str
    title: str
    source: Path
    base: Path
    overrides: list[str]
    output_dir: Path
    results_dir: Path
    runs: list[RunSpec] = field(default_factory=list)

    def config(self, run: RunSpec) -> Config:
        """The resolved config of ``run`` (its checkpoints under ``output_dir/<name>``)."""
        cfg = load_config(self.base, [*self.overrides, *run.overrides])
        return apply_overrides(cfg, [f"output_dir={self.output_dir / run.name}"])

    def select(self, only: str | list[str] | None) -> list[RunSpec]:
        """The runs named in ``only`` (comma-separated or a list), all when None."""
        if not only:
            return list(self.runs)
        names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
        known = {r.name for r in self.runs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"{self.source}: no run named {', '.join(unknown)}; runs: {', '.join(sorted(known))}")
        return [r for r in self.runs if r.name in names]


def _list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of KEY=VALUE strings, got {value!r}")
    return list(value)


#: what a run may say: anything else (``sets:``, ``seeds: 3``) would be ignored, and a run named
#: ``fcn8s`` would train the base config's model under that name
RUN_KEYS = ("name", "set", "group")


def _refuse_unknown_run_keys(item: dict[str, Any], where: str) -> None:
    """A run's keys other than :data:`RUN_KEYS` are refused, with the nearest known key."""
    import difflib

    for key in item:
        if key in RUN_KEYS:
            continue
        near = difflib.get_close_matches(str(key), RUN_KEYS, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}:?" if near else "overrides go in set: [KEY=VALUE, …] (e.g. set: [seed=1])"
        raise ConfigError(f"{where}: unknown run key {key!r}; a run takes {', '.join(RUN_KEYS)}: {hint}")


def _resolve_base(base: str, source: Path) -> Path:
    candidate = source.parent / base
    if candidate.is_file():
        return candidate.resolve()
    from ..configs import require_config

    return require_config(base, ConfigError)


def load_experiment(path: str | Path, kind: str | None = None) -> Experiment:
    """Read an experiment file; every run's config is resolved once so that a typo fails now,
    not hours later."""
    path, data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with kind, base, runs")
    unknown = set(data) - {"kind", "title", "base", "set", "output_dir", "results_dir", "runs"}
    if unknown:
        raise ConfigError(f"{path}: unknown experiment key(s) {', '.join(sorted(unknown))}")
    file_kind = data.get("kind")
    if file_kind not in EXPERIMENT_KINDS:
        raise ConfigError(f"{path}: kind must be one of {', '.join(EXPERIMENT_KINDS)}, got {file_kind!r}")
    if kind is not None and kind != file_kind:
        raise ConfigError(f"{path}: is a {file_kind!r} experiment; run it with `phgmm experiment {file_kind}`")
    if "base" not in data:
        raise ConfigError(f"{path}: needs base: (the config every run starts from)")
    runs = []
    for i, item in enumerate(data.get("runs") or []):
        where = f"{path}: runs[{i}]"
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where}: expected a mapping with name and set")
        name = str(item["name"])
        _refuse_unknown_run_keys(item, f"{where} ({name!r})")
        if not _NAME.match(name):
            raise ConfigError(f"{where}: run name {name!r} must be a plain folder name (letters, digits, . _ -)")
        runs.append(RunSpec(name, _list(item.get("set"), where), item.get("group")))
    if not runs:
        raise ConfigError(f"{path}: lists no runs")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: run names must be unique, got {names}")
    exp = Experiment(
        kind=file_kind,
        title=str(data.get("title") or path.stem),
        source=path,
        base=_resolve_base(str(data["base"]), path),
        overrides=_list(data.get("set"), f"{path}: set"),
        output_dir=Path(data.get("output_dir") or f"runs/experiments/{path.stem}"),
        results_dir=Path(data.get("results_dir") or f"results/{path.stem}"),
        runs=runs,
    )
    for run in runs:
        try:
            exp.config(run)
        except ConfigError as exc:
            raise ConfigError(f"{path}: run {run.name!r}: {exc}") from None
    return exp


#: settings that say where and how fast a run goes, not what it computes: a finished run's
#: config.yaml may differ in them from an experiment file run again elsewhere
RUNTIME_KEYS = (
    "output_dir",
    "threads",
    "device",
    "data.root",
    "data.masks_root",
    "data.num_workers",
    "data.pin_memory",
    "data.skip_bad_samples",
    "data.max_bad_fraction",
    "train.log_every",
    "train.checkpoint_every",
    "eval.batch_size",
)


def settings_differences(saved: dict[str, Any], overrides: list[str]) -> list[str]:
    """``"train.epochs: ran with 1, the file now says 2"`` for each override of ``overrides`` that
    a finished run's saved config (its config.yaml, as a dict) does not hold; runtime settings
    (:data:`RUNTIME_KEYS`) are left out. Each override is applied through the config system, so
    ``5e-4`` and ``0.0005`` are the same value."""
    from ..config import config_from_dict, config_to_dict

    try:
        ran = config_from_dict(saved, "config.yaml")
    except ConfigError:
        return []  # written by another phgmm: nothing safe to compare
    before = _flat(config_to_dict(ran))
    wanted = [item for item in overrides if item.partition("=")[0].strip() not in RUNTIME_KEYS]
    try:  # all at once, as the runs take them (a recipe first, the keys beside it after)
        after = _flat(config_to_dict(apply_overrides(config_from_dict(config_to_dict(ran)), wanted)))
    except ConfigError:
        return []
    return [
        f"{k}: ran with {_show(before.get(k))}, the file now says {_show(v)}"
        for k, v in after.items()
        if k not in RUNTIME_KEYS and v != before.get(k)
    ]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
