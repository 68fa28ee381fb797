from __future__ import annotations

from pathlib import Path

import pytest

from phgmm.config import (Config, ConfigError, all_keys, apply_overrides, config_from_dict, config_to_dict,
                          load_config, save_config)

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_papers():
    cfg = Config()
    assert (cfg.model.num_components, cfg.model.latent_dim, cfg.model.component_dim, cfg.model.global_dim) == (12, 256, 64, 64)
    assert cfg.model.decoder_units == (3, 23, 4, 3) and cfg.model.backbone == "resnet101"
    assert (cfg.loss.lambda_g, cfg.loss.lambda_z, cfg.loss.lambda_s) == (1.1, 0.4, 0.4)
    assert cfg.data.size == (768, 384) and cfg.train.batch_size == 8 and cfg.train.lr == 1e-4


def test_user_facing_key_names_exist():
    keys = set(all_keys())
    for k in ["data.dataset", "data.root", "data.size", "model.name", "model.backbone", "model.num_components",
              "train.epochs", "train.batch_size", "train.lr", "output_dir"]:
        assert k in keys


def test_overrides_are_parsed_as_yaml_and_typed():
    cfg = apply_overrides(Config(), ["train.lr=3e-4", "data.size=512x256", "model.postnet=null",
                                     "model.decoder_units=[1, 2, 3, 4]", "train.epochs=7", "output_dir=runs/x"])
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.data.size == (512, 256) and cfg.model.postnet is None
    assert cfg.model.decoder_units == (1, 2, 3, 4) and cfg.train.epochs == 7 and cfg.output_dir == "runs/x"


@pytest.mark.parametrize("item,match", [
    ("train.lrr=1", "did you mean train.lr"),
    ("trian.epochs=1", "did you mean train.epochs"),
    ("train.epochs=many", "must be a number"),
    ("train.epochs=1.5", "must be an integer"),
    ("data.augment=maybe", "true or false"),
    ("train.lr", "expected key=value"),
    ("model.backbone=null", "may not be null"),
])
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
