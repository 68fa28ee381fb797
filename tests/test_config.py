from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from phgmm.config import (
    Config,
    ConfigError,
    all_keys,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_papers():
    cfg = Config()
    assert (cfg.model.num_components, cfg.model.latent_dim, cfg.model.component_dim, cfg.model.global_dim) == (
        12,
        256,
        64,
        64,
    )
    assert cfg.model.decoder_units == (3, 23, 4, 3) and cfg.model.backbone == "resnet101"
    assert (cfg.loss.lambda_g, cfg.loss.lambda_z, cfg.loss.lambda_s) == (1.1, 0.4, 0.4)
    assert cfg.data.size == (768, 384) and cfg.train.batch_size == 8 and cfg.train.lr == 1e-4


def test_user_facing_key_names_exist():
    keys = set(all_keys())
    for k in [
        "data.dataset",
        "data.root",
        "data.size",
        "model.name",
        "model.backbone",
        "model.num_components",
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "output_dir",
    ]:
        assert k in keys


def test_overrides_are_parsed_as_yaml_and_typed():
    cfg = apply_overrides(
        Config(),
        [
            "train.lr=3e-4",
            "data.size=512x256",
            "model.postnet=null",
            "model.decoder_units=[1, 2, 3, 4]",
            "train.epochs=7",
            "output_dir=runs/x",
        ],
    )
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.data.size == (512, 256) and cfg.model.postnet is None
    assert cfg.model.decoder_units == (1, 2, 3, 4) and cfg.train.epochs == 7 and cfg.output_dir == "runs/x"


@pytest.mark.parametrize(
    "item,match",
    [
        ("train.lrr=1", "did you mean train.lr"),
        ("trian.epochs=1", "did you mean train.epochs"),
        ("train.epochs=many", "must be a number"),
        ("train.epochs=1.5", "must be an integer"),
        ("data.augment=maybe", "true or false"),
        ("train.lr", "expected key=value"),
        ("model.backbone=null", "may not be null"),
    ],
)
def test_bad_overrides_name_the_problem(item, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), [item])


def test_unknown_key_in_file_names_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epocs: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*'train\.epocs'.*train\.epochs"):
        load_config(p)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    p.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_round_trip_through_yaml(tmp_path):
    cfg = apply_overrides(Config(), ["model.num_components=4", "data.size=[320, 160]"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(path) == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.model.name in ("phgmm", "deeplabv3", "fcn8s", "pspnet", "unet")


def test_paper_recipes():
    for name, dataset in (("cityscapes_phgmm_r101.yaml", "cityscapes"), ("synthia_phgmm_r101.yaml", "synthia")):
        cfg = load_config(REPO / "configs" / name)
        assert cfg.data.dataset == dataset and cfg.model.backbone == "resnet101"
        assert cfg.data.size == (768, 384) and cfg.train.epochs == 100 and cfg.model.num_components == 12


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.size=[128]", "data.size must be two positive integers"),
        ("data.size=[128, 0]", "data.size must be two positive integers"),
        ("train.epochs=-1", "train.epochs must be >= 1, got -1"),
        ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
        ("train.lr=1e30", "train.lr must be a number in (0, 10]"),
        ("train.lr=0", "train.lr must be a number in (0, 10]"),
        ("model.decode_posterior=1.5", "model.decode_posterior must be in [0, 1]"),
        ("loss.free_bits=-1", "loss.free_bits must be a finite number >= 0"),
        ("model.decoder_units=[1, 1]", "model.decoder_units must be four numbers"),
        ("data.max_bad_fraction=2", "data.max_bad_fraction must be in [0, 1]"),
        ("train.compile_mode=fast", "train.compile_mode must be one of default, reduce-overhead"),
    ],
)
def test_values_no_run_can_use_are_refused_with_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_overrides(Config(), [override])


def test_shipped_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config("demo", ["train.epochs=1"])
    assert cfg.model.backbone == "resnet18" and cfg.train.epochs == 1
    assert load_config("demo.yaml").data.size == (256, 128)
    with pytest.raises(ConfigError, match="no shipped config of that name: .*demo"):
        load_config("nope")


@pytest.mark.parametrize(
    "given, stored",
    [("off", "off"), ("no", "off"), ("false", "off"), ("on", "light"), ("light", "light"), ("full", "full")],
)
def test_val_latent_off_as_yaml_reads_it_is_off(given, stored):
    # YAML 1.1 reads `off` as false: `--set eval.val_latent=off` must not be refused as "got 'false'"
    cfg = apply_overrides(load_config("demo"), [f"eval.val_latent={given}"])
    assert cfg.eval.val_latent == stored
    with pytest.raises(ConfigError, match="eval.val_latent must be full, light or off, got 'some'"):
        apply_overrides(load_config("demo"), ["eval.val_latent=some"])


def test_import_phgmm_then_config_load_config():
    code = "import phgmm; print(phgmm.config.load_config('demo', ['train.epochs=2']).train.epochs)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"
