"""benchmarks/study_noise.py: a tiny run writes the documented JSON, and its statistics equal a hand
computation (paired t, exact Wilcoxon, t interval) on numbers small enough to do on paper."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("study_noise", ROOT / "benchmarks" / "study_noise.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_the_documented_json(study, tmp_path):
    out = tmp_path / "noise_study.json"
    study.main(["--seeds", "1", "--epochs", "1", "--train-samples", "48", "--test-samples", "24",
                "--out", str(out), "--no-progress"])
    doc = json.loads(out.read_text())
    assert (tmp_path / "noise_study.png").stat().st_size > 1000
    assert set(doc) >= {"claim", "settings", "runs", "arms", "comparisons", "verdict", "seconds"}
    assert doc["claim"]["gain_points"] == pytest.approx(1.48)
    assert {r["arm"] for r in doc["runs"]} == set(study.ARMS) and len(doc["runs"]) == 4
    for r in doc["runs"]:
        assert r["seed"] == 0 and not r["diverged"]
        assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["train_accuracy"] <= 1 and r["seconds"] > 0
    for arm, e in doc["arms"].items():
        assert e["n"] == 1 and e["test_accuracy"]["std"] is None
        assert e["test_accuracy"]["mean"] == next(r["test_accuracy"] for r in doc["runs"] if r["arm"] == arm)
    assert [(c["treatment"], c["control"]) for c in doc["comparisons"]] == [(a, b) for a, b, _ in study.COMPARISONS]
    assert all(c["n"] == 1 and c["p_ttest"] is None for c in doc["comparisons"])
    assert doc["verdict"].startswith("too few paired runs")


def test_paired_statistics_match_a_hand_computation(study):
    # differences (points) 1, 2, 3, −0.5, 4: mean 1.9, sample sd √(15.7/4), t = 1.9/(sd/√5)
    control = [0.50, 0.50, 0.50, 0.50, 0.50]
    treatment = [0.51, 0.52, 0.53, 0.495, 0.54]
    s = study.paired(treatment, control)
    sd = math.sqrt(((1 - 1.9) ** 2 + (2 - 1.9) ** 2 + (3 - 1.9) ** 2 + (-0.5 - 1.9) ** 2 + (4 - 1.9) ** 2) / 4)
    assert s["n"] == 5 and s["mean_diff_points"] == pytest.approx(1.9)
    assert s["std_diff_points"] == pytest.approx(sd)
    assert s["t"] == pytest.approx(1.9 / (sd / math.sqrt(5)))
    assert s["cohen_dz"] == pytest.approx(1.9 / sd)
    t975_df4 = 2.7764451051977987  # Student t, 97.5 % quantile, 4 degrees of freedom (tables: 2.776)
    half = t975_df4 * sd / math.sqrt(5)
    assert s["ci95_points"] == pytest.approx([1.9 - half, 1.9 + half])
    # two-sided p of t = 2.1443 on 4 df: 2·(1 − F(t)), F from the closed form for 4 df
    t = s["t"]
    cdf = 0.5 + (3 * t / 8) * (1 / math.sqrt(1 + t * t / 4)) * (1 - t * t / (12 * (1 + t * t / 4)))
    assert s["p_ttest"] == pytest.approx(2 * (1 - cdf), rel=1e-9)
    # Wilcoxon: |d| ranks 2, 3, 4, 1, 5; the negative one has rank 1, so W = min(W+, W−) = 1;
    # exact two-sided p = 2·#{sign patterns with W− ≤ 1}/2⁵ = 2·2/32
    assert s["wilcoxon_w"] == 1.0
    assert s["p_wilcoxon"] == pytest.approx(4 / 32)


def test_verdict_reads_the_interval_against_the_claim(study):
    base = {"n": 10, "mean_diff_points": 0.1, "p_ttest": 0.6, "p_wilcoxon": 0.7}
    assert "does not hold" in study.verdict({**base, "ci95_points": [-0.4, 0.6]}, 1.48)
    assert "no significant difference" in study.verdict({**base, "ci95_points": [-0.4, 0.6]}, 1.48)
    assert study.verdict({**base, "ci95_points": [-0.5, 2.0]}, 1.48).startswith("Inconclusive")
    assert study.verdict({**base, "mean_diff_points": 1.6, "p_ttest": 0.001, "ci95_points": [1.0, 2.2]},
                         1.48).startswith("Consistent")
