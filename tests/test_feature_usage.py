"""Feature usage: the label-stratified permutation test, Holm correction, the feature table and KCI."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pandas as pd
import pytest

from medattn_monai.errors import ConfigError, DataError
from medattn_monai.explain import (
    conditional_permutation_result,
    conditional_permutation_test,
    feature_kind,
    feature_usage_table,
    holm,
    kernel_ci_test,
    render_feature_usage,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _model_outputs(rng: np.random.Generator, n: int = 300, k: int = 3):
    """Labels and logits of a model that predicts the label (with noise): outputs depend on the label."""
    labels = rng.integers(0, k, n)
    logits = 2.0 * np.eye(k)[labels] + rng.normal(size=(n, k))
    return labels, logits


def _null_feature(rng: np.random.Generator, labels: np.ndarray, kind: int):
    """A feature that depends on the label only: correlated with it, independent of the outputs given it."""
    if kind == 0:
        return labels + rng.normal(size=len(labels))  # continuous
    if kind == 1:
        return rng.random(len(labels)) < np.array([0.2, 0.5, 0.8])[labels]  # binary
    return np.array(list("abcd"))[(labels + rng.integers(0, 2, len(labels))) % 4]  # categorical, 4 levels


# ---------------------------------------------------------------------------------------------- the statistic


# Stratum 0: outputs [1, 3, 2, 6] centre to [-2, 0, -1, 3] (total SS 14); the feature's groups {-2, -1} and
# {0, 3} have means -1.5 and 1.5, between-group SS 2*2.25 + 2*2.25 = 9. Stratum 1 has constant outputs: 0 and 0.
HAND_OUTPUTS = np.array([1.0, 3.0, 2.0, 6.0, 5.0, 5.0])
HAND_FEATURE = np.array([0, 1, 0, 1, 0, 1])
HAND_LABELS = np.array([0, 0, 0, 0, 1, 1])


@pytest.mark.parametrize("kind", ["binary", "categorical", "continuous"])
def test_statistic_by_hand_is_the_same_for_every_encoding_of_a_binary_feature(kind):
    result = conditional_permutation_result(HAND_OUTPUTS, HAND_FEATURE, HAND_LABELS, n_permutations=10, kind=kind)
    assert result.statistic == pytest.approx(9 / 14)
    assert result.n_used == 6 and result.n_strata == 2 and result.kind == kind


def test_statistic_matches_a_groupby_reference_for_categorical_multiclass():
    rng = np.random.default_rng(1)
    outputs = rng.dirichlet(np.ones(4), size=120)
    labels = rng.integers(0, 4, 120)
    feature = rng.choice(["x", "y", "z"], size=120)
    frame = pd.DataFrame(outputs).assign(s=labels, f=feature)
    centred = frame.groupby("s")[list(range(4))].transform(lambda c: c - c.mean())
    group_means = centred.assign(s=labels, f=feature).groupby(["s", "f"])[list(range(4))].transform("mean")
    expected = float(np.square(group_means.to_numpy()).sum() / np.square(centred.to_numpy()).sum())
    result = conditional_permutation_result(outputs, feature, labels, n_permutations=10)
    assert result.kind == "categorical"
    assert result.statistic == pytest.approx(expected)


def test_continuous_statistic_is_the_within_stratum_regression_share():
    rng = np.random.default_rng(2)
    outputs = rng.normal(size=(80, 2))
    labels = rng.integers(0, 2, 80)
    feature = rng.normal(size=80)
    explained = total = 0.0
    for s in (0, 1):
        f = feature[labels == s] - feature[labels == s].mean()
        p = outputs[labels == s] - outputs[labels == s].mean(axis=0)
        explained += float(np.sum((f @ p) ** 2) / (f @ f))
        total += float(np.sum(p**2))
    result = conditional_permutation_result(outputs, feature, labels, n_permutations=10)
    assert result.kind == "continuous"
    assert result.statistic == pytest.approx(explained / total)


# ------------------------------------------------------------------------------------------------ the p-value


def test_p_value_matches_exhaustive_enumeration_of_within_stratum_permutations():
    rng = np.random.default_rng(3)
    labels = np.array([0] * 5 + [1] * 4)
    outputs = rng.dirichlet(np.ones(3), size=9)
    feature = rng.normal(size=9)
    observed = conditional_permutation_result(outputs, feature, labels, n_permutations=1).statistic
    rows0, rows1 = np.arange(5), np.arange(5, 9)
    exceed = total = 0
    for p0 in itertools.permutations(rows0):
        for p1 in itertools.permutations(rows1):
            permuted = feature[np.concatenate([p0, p1])]
            stat = conditional_permutation_result(outputs, permuted, labels, n_permutations=1).statistic
            exceed += stat >= observed * (1 - 1e-9)
            total += 1
    exact = exceed / total  # 5! * 4! = 2880 equally likely permutations under H0
    estimate = conditional_permutation_test(outputs, feature, labels, n_permutations=20000, seed=0)
    assert estimate == pytest.approx(exact, abs=0.015)  # Monte Carlo SE <= 0.0036


def test_p_value_has_the_plus_one_correction_and_is_seeded():
    rng = np.random.default_rng(4)
    labels, logits = _model_outputs(rng)
    driver = rng.normal(size=len(labels))
    outputs = _softmax(logits + np.outer(driver, [3.0, 0.0, 0.0]))
    assert conditional_permutation_test(outputs, driver, labels, n_permutations=99) == pytest.approx(1 / 100)
    null = rng.normal(size=len(labels))
    first = conditional_permutation_test(outputs, null, labels, n_permutations=300, seed=5)
    assert first == conditional_permutation_test(outputs, null, labels, n_permutations=300, seed=5)
    assert 0 < first <= 1


def test_binary_categorical_continuous_features_and_vector_outputs_all_run():
    rng = np.random.default_rng(6)
    labels, logits = _model_outputs(rng, n=200, k=4)
    outputs = _softmax(logits)
    features = {
        "binary": rng.integers(0, 2, 200).astype(bool),
        "categorical": rng.choice(["head", "trunk", "limb"], size=200),
        "continuous": rng.normal(size=200),
    }
    for name, values in features.items():
        result = conditional_permutation_result(outputs, values, labels, n_permutations=200)
        assert result.kind == name and 0 < result.p_value <= 1 and 0 <= result.statistic <= 1
    score = conditional_permutation_result(outputs[:, 0], features["continuous"], labels, n_permutations=200)
    assert 0 < score.p_value <= 1


# ------------------------------------------------------------------------------------------------- edge cases


def test_missing_feature_values_drop_their_rows():
    rng = np.random.default_rng(7)
    labels, logits = _model_outputs(rng, n=150)
    outputs = _softmax(logits)
    feature = rng.normal(size=150)
    holes = feature.copy()
    holes[::10] = np.nan
    keep = ~np.isnan(holes)
    full = conditional_permutation_result(outputs, holes, labels, n_permutations=300, seed=1)
    subset = conditional_permutation_result(outputs[keep], feature[keep], labels[keep], n_permutations=300, seed=1)
    assert full == subset and full.n_used == 135
    words = np.array(["a", "b", None, "a", "b", "a"] * 25, dtype=object)
    result = conditional_permutation_result(outputs, words, labels, n_permutations=50)
    assert result.kind == "categorical" and result.n_used == 125


def test_singleton_stratum_contributes_nothing():
    rng = np.random.default_rng(8)
    labels, logits = _model_outputs(rng, n=100)
    outputs = _softmax(logits)
    feature = rng.normal(size=100)
    base = conditional_permutation_result(outputs, feature, labels, n_permutations=300, seed=2)
    with_singleton = conditional_permutation_result(
        np.vstack([outputs, [[0.9, 0.05, 0.05]]]), np.append(feature, 5.0), np.append(labels, 7),
        n_permutations=300, seed=2,
    )
    assert with_singleton.p_value == base.p_value
    assert with_singleton.statistic == pytest.approx(base.statistic)
    assert with_singleton.n_used == 101 and with_singleton.n_strata == 3


def test_constant_feature_or_a_function_of_the_label_gets_p_one():
    rng = np.random.default_rng(9)
    labels, logits = _model_outputs(rng, n=100)
    outputs = _softmax(logits)
    for feature in (np.ones(100), np.full(100, "x"), labels * 2.5, np.where(labels == 0, "a", "b")):
        result = conditional_permutation_result(outputs, feature, labels, n_permutations=200)
        assert result.p_value == 1.0 and result.statistic == 0.0
    nothing = conditional_permutation_result(outputs, np.full(100, np.nan), labels, n_permutations=200)
    assert nothing.p_value == 1.0 and nothing.n_used == 0


def test_bad_inputs_are_explained():
    outputs, feature, labels = np.ones((4, 2)), np.arange(4.0), np.zeros(4)
    with pytest.raises(DataError, match="differ in length"):
        conditional_permutation_test(outputs, feature[:3], labels)
    with pytest.raises(DataError, match="NaN"):
        conditional_permutation_test(np.full((4, 2), np.nan), feature, labels)
    with pytest.raises(DataError, match="labels"):
        conditional_permutation_test(outputs, feature, np.array([0, 1, np.nan, 0]))
    with pytest.raises(DataError, match="numeric"):
        conditional_permutation_test(outputs, np.array(["a", "b", "c", "d"]), labels, kind="continuous")
    with pytest.raises(ValueError, match="n_permutations"):
        conditional_permutation_test(outputs, feature, labels, n_permutations=0)
    with pytest.raises(ValueError, match="kind"):
        conditional_permutation_test(outputs, feature, labels, kind="ordinal")


def test_feature_kind_guesses():
    assert feature_kind([0, 1, 1, np.nan]) == "binary"
    assert feature_kind([True, False]) == "binary"
    assert feature_kind([30.0, 45.0, 60.0]) == "continuous"
    assert feature_kind(["head", "trunk"]) == "categorical"
    assert feature_kind(pd.Series([1, 2, 3], dtype="category")) == "categorical"


# ------------------------------------------------------------------------------------------------- simulation


def test_simulation_conditioning_on_the_label_controls_false_positives_and_keeps_power():
    """The issue's simulation: 200 null features correlated with the label, and 200 datasets with a driver.

    500 permutations resolve p down to 1/501, far finer than alpha = 0.05, and the test is exact for any number
    of permutations (the +1 correction), so fewer permutations cost a little power, never validity; they keep
    the 600 tests under a few seconds. Each replicate draws its own seeded data set, so the rates are fixed
    numbers, not flaky: conditional 7/200, plain 200/200, driver 200/200 with these seeds (a 3000-replicate
    run gave a 5.2 % null rate).
    """
    alpha, replicates, n_perm = 0.05, 200, 500
    conditional = plain = driven = 0
    for r in range(replicates):
        rng = np.random.default_rng([2024, r])
        labels, logits = _model_outputs(rng)
        outputs = _softmax(logits)
        feature = _null_feature(rng, labels, r % 3)
        conditional += conditional_permutation_test(outputs, feature, labels, n_permutations=n_perm, seed=r) <= alpha
        one_stratum = np.zeros(len(labels))  # ignoring the label: the plain permutation test
        plain += conditional_permutation_test(outputs, feature, one_stratum, n_permutations=n_perm, seed=r) <= alpha
        # a planted artefact: more common in class 2, and it pushes the model towards class 0
        artefact = rng.random(len(labels)) < np.array([0.2, 0.5, 0.8])[labels]
        used = _softmax(logits + np.outer(artefact, [1.5, 0.0, 0.0]))
        driven += conditional_permutation_test(used, artefact, labels, n_permutations=n_perm, seed=r) <= alpha
    assert conditional / replicates <= 0.08
    assert plain / replicates >= 0.5  # "far more": it mistakes the label's correlation for usage
    assert driven / replicates >= 0.95


# ------------------------------------------------------------------------------------------- Holm and tables


def test_holm_by_hand():
    # ascending 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.2
    adjusted = holm([0.01, 0.04, 0.03, 0.2, np.nan])
    np.testing.assert_allclose(adjusted[:4], [0.04, 0.09, 0.09, 0.2])
    assert np.isnan(adjusted[4])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert holm([]).shape == (0,)


def test_holm_agrees_with_statsmodels():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(10).random(12) ** 3
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


def test_feature_usage_table_and_its_bar_plot(tmp_path):
    rng = np.random.default_rng(11)
    labels, logits = _model_outputs(rng, n=240)
    artefact = rng.random(240) < 0.4
    outputs = _softmax(logits + np.outer(artefact, [1.5, 0.0, 0.0]))
    features = pd.DataFrame({
        "artefact": artefact,
        "age": np.where(rng.random(240) < 0.1, np.nan, 40 + 10 * labels + rng.normal(0, 5, 240)),
        "site": rng.choice(["head", "trunk", "limb"], size=240),
        "site_code": rng.integers(0, 3, 240),
    })
    table = feature_usage_table(outputs, features, labels, n_permutations=400, seed=3,
                                kinds={"site_code": "categorical"})
    assert list(table.columns) == ["feature", "kind", "statistic", "p", "p_holm", "n_used"]
    assert list(table["feature"]) == ["artefact", "age", "site", "site_code"]
    assert list(table["kind"]) == ["binary", "continuous", "categorical", "categorical"]
    np.testing.assert_allclose(table["p_holm"], holm(table["p"]))
    assert table.loc[0, "p"] == conditional_permutation_test(outputs, artefact, labels, n_permutations=400, seed=3)
    assert table.loc[0, "p_holm"] < 0.01
    assert table.loc[1, "n_used"] == int(features["age"].notna().sum())
    png = render_feature_usage(tmp_path / "fu" / "bars.png", table)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="not given"):
        feature_usage_table(outputs, features, labels, n_permutations=10, kinds={"colour": "binary"})
    with pytest.raises(DataError):
        feature_usage_table(outputs, np.ones(240), labels)


def test_kci_second_opinion():
    pytest.importorskip("causallearn")
    rng = np.random.default_rng(12)
    labels, logits = _model_outputs(rng, n=400)
    artefact = rng.random(400) < np.array([0.2, 0.5, 0.8])[labels]
    used = _softmax(logits + np.outer(artefact, [1.5, 0.0, 0.0]))
    assert kernel_ci_test(used, artefact, labels, max_n=200) < 0.01
    p_null = kernel_ci_test(_softmax(logits), artefact, labels, max_n=200)
    assert 0.0 <= p_null <= 1.0
    assert kernel_ci_test(used, np.ones(400), labels) == 1.0
    table = feature_usage_table(used, {"artefact": artefact}, labels, n_permutations=100, kci=True, kci_max_n=200)
    assert list(table.columns[-2:]) == ["p_kci", "p_kci_holm"]


def test_kci_without_causal_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "causallearn.utils.cit", None)  # makes the import fail
    with pytest.raises(ConfigError, match="pip install causal-learn"):
        kernel_ci_test(np.ones((20, 2)), np.arange(20.0), np.zeros(20))
