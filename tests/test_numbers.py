"""The helpers the docs' generators share, against values worked by hand."""

from __future__ import annotations

import json

import pytest

from phgmm.experiments import numbers as n


def test_mean_sd_is_the_sample_standard_deviation():
    # mean 2, deviations −1, 0, 1: sum of squares 2 over n − 1 = 2 → sd 1
    assert n.mean_sd([1, 2, 3]) == (2.0, 1.0)
    assert n.mean_sd([5.0]) == (5.0, 0.0)
    assert n.pm([0.35, 0.36, 0.37], 2, 100) == "36.00 ± 1.00"
    with pytest.raises(ValueError):
        n.mean_sd([])


def test_formatting_uses_a_minus_sign_and_explicit_plus():
    assert n.fmt(-2.386, 2) == "−2.39"
    assert n.signed(0.0425, 2, 100) == "+4.25"
    assert n.signed(-0.0239, 2, 100) == "−2.39"
    assert n.pct(0.357597) == "35.8"
    assert n.fmt(1668.4, 0) == "1,668"
    assert n.fmt(-0.0004, 2) == "0.00" and n.fmt(-0.006, 2) == "−0.01"
    assert n.times(24.4 / 10.65) == "2.29×"
    assert n.minutes_seconds(390.61) == "6 min 31 s" and n.minutes_seconds(59.6) == "1 min 0 s"


def test_span_prints_lowest_to_highest_or_one_number():
    assert n.span([3.06, 1.38, 2.0]) == "1.38–3.06"
    assert n.span([1.001, 1.004]) == "1.00"
    assert n.span([-0.0709, 0.0239], 2, 100) == "−7.09 to 2.39"


def test_ordering_and_rank():
    v = {"a": 1.0, "b": 3.0, "c": 2.0}
    assert n.ordering(v) == ["b", "c", "a"]
    assert n.ordering(v, descending=False) == ["a", "c", "b"]
    assert n.rank(v, "a") == 3 and n.rank(v, "b") == 1


def test_kendall_tau_and_agreeing_pairs():
    # 4 items, pairs (6): orders differ only in the last two → 5 concordant, 1 discordant: τ = 4/6
    a, b = [1, 2, 3, 4], [1, 2, 4, 3]
    assert n.pairs_agreeing(a, b) == (5, 6)
    assert n.kendall_tau(a, b) == pytest.approx(4 / 6)
    assert n.kendall_tau(a, a[::-1]) == pytest.approx(-1.0)
    # with a tie in b, τ-b divides by the untied pairs: the same as scipy's default
    scipy = pytest.importorskip("scipy.stats")
    a, b = [1, 2, 3, 4, 5], [2, 1, 3, 3, 5]
    assert n.kendall_tau(a, b) == pytest.approx(scipy.kendalltau(a, b).statistic)


def test_welch_p_against_a_hand_worked_case():
    pytest.importorskip("scipy")
    # means 2 and 5, variances 1 and 1, n = 3 each: t = 3 / sqrt(2/3) = 3.674, df = 4 → p = 0.0213
    assert n.welch_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.02131, abs=1e-4)


def test_link_is_relative_to_the_page():
    assert n.link("docs/results/x/a.json", page="docs/latent.md") == "[a.json](results/x/a.json)"
    assert n.link("docs/results/x/a.json", "file", page="README.md") == "[file](docs/results/x/a.json)"


def test_table_aligns_and_checks_its_columns():
    assert n.table(["m", "v"], [["a", "1.00"]]) == "| m | v |\n|---|---:|\n| a | 1.00 |"
    with pytest.raises(ValueError):
        n.table(["m", "v"], [], align="l")


def test_loaders_record_the_files_they_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "docs/results/s/r"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "miou": 0.5,
                "latent": {"mi_z": 0.01},
                "timing": {"t": 3},
                "trimap": {"2": 0.2, "5": 0.4},
                "iou": {"sky": 0.9},
            }
        )
    )
    n.reset_files_read()
    runs = n.study("s")
    assert list(runs) == ["r"]
    assert n.files_read() == ["docs/results/s/r/metrics.json"]
    m = runs["r"]
    assert (n.get(m, "miou"), n.get(m, "mi_z"), n.get(m, "t"), n.get(m, "iou_sky")) == (0.5, 0.01, 3, 0.9)
    assert n.get(m, "trimap_mean") == pytest.approx(0.3)
    with pytest.raises(KeyError):
        n.get(m, "mi_g")
