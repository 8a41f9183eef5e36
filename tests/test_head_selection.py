"""The L-BFGS head, stratified folds and --head auto's cross-validated choice, on synthetic features (no TF)."""

from __future__ import annotations

import numpy as np
import pytest

from hubcli.errors import DataError
from hubcli.train.class_weights import inverse_frequency_weights, warn_if_imbalanced
from hubcli.train.folds import fold_count, multilabel_folds, stratified_folds
from hubcli.train.logistic import fit_linear, predict_probabilities
from hubcli.train.selection import Augmented, HeadTask, cross_validate, select_head
from tests.helpers.synthetic_features import gaussian_classes, multilabel_features


def _full_gradient(x, targets, fit, l2):
    """Gradient of the mean cross-entropy + l2/2 ||W||^2 in the original feature space."""
    probabilities = predict_probabilities(x, fit)
    residual = (probabilities - targets) / len(x)
    return x.T @ residual + l2 * fit.kernel, residual.sum(axis=0)


@pytest.mark.parametrize("count, dim", [(120, 6), (40, 90)])
def test_fit_reaches_the_optimum_also_with_more_features_than_examples(count, dim):
    x, y = gaussian_classes(count, dim, 3, seed=1)
    targets = np.eye(3)[y]
    fit = fit_linear(x, targets, l2=0.05)
    kernel_gradient, bias_gradient = _full_gradient(x, targets, fit, 0.05)
    assert fit.converged and fit.kernel.shape == (dim, 3)
    assert np.abs(kernel_gradient).max() < 1e-5 and np.abs(bias_gradient).max() < 1e-5


@pytest.mark.parametrize("count, dim", [(120, 6), (40, 90)])
def test_an_offset_in_every_feature_changes_neither_the_answer_nor_the_work(count, dim):
    # Real features (averaged activations) sit far from zero; the unpenalised bias absorbs any offset.
    x, y = gaussian_classes(count, dim, 3, seed=4)
    targets = np.eye(3)[y]
    centred = fit_linear(x, targets, l2=0.01)
    offset = fit_linear(x + 40.0, targets, l2=0.01)
    assert offset.converged
    np.testing.assert_allclose(predict_probabilities(x + 40.0, offset), predict_probabilities(x, centred), atol=1e-4)
    assert offset.iterations <= 2 * centred.iterations + 5


def test_sigmoid_fit_learns_each_label():
    x, indicators = multilabel_features(200, 8, 3, seed=2)
    fit = fit_linear(x, indicators, l2=0.01, activation="sigmoid")
    predicted = predict_probabilities(x, fit) >= 0.5
    assert (predicted == indicators.astype(bool)).mean() > 0.9


def test_folds_are_stratified_deterministic_and_change_with_the_seed():
    labels = [0] * 20 + [1] * 10 + [2] * 5
    folds = stratified_folds(labels, folds=5, seed=4)
    assert folds.tolist() == stratified_folds(labels, folds=5, seed=4).tolist()
    assert folds.tolist() != stratified_folds(labels, folds=5, seed=5).tolist()
    for label, per_fold in ((0, 4), (1, 2), (2, 1)):
        assert np.bincount(folds[np.asarray(labels) == label], minlength=5).tolist() == [per_fold] * 5


def test_multilabel_folds_spread_a_rare_label_over_every_fold():
    _, indicators = multilabel_features(100, 4, 3, seed=6)
    indicators[:, 2] = 0
    indicators[:6, 2] = 1
    folds = multilabel_folds(indicators, folds=3, seed=0)
    assert np.bincount(folds[:6], minlength=3).tolist() == [2, 2, 2]


def test_a_class_smaller_than_k_lowers_the_fold_count_and_a_single_example_is_one_error(capsys):
    assert fold_count({"a": 30, "b": 3}, requested=5, purpose="selection") == 3
    assert "only 3 examples" in capsys.readouterr().err
    with pytest.raises(DataError, match="class 'b' has 1 example"):
        fold_count({"a": 30, "b": 1}, requested=5, purpose="selection")


def test_selection_is_deterministic_under_a_seed():
    x, y = gaussian_classes(150, 10, 3, separation=2.0, seed=7)
    first = select_head(x, y, task=HeadTask(num_outputs=3), seed=11)
    again = select_head(x, y, task=HeadTask(num_outputs=3), seed=11)
    assert first.l2 == again.l2 and first.curve == again.curve
    np.testing.assert_array_equal(first.fit.kernel, again.fit.kernel)


def test_a_noisy_set_gets_a_stronger_regulariser_than_a_clean_one():
    clean = select_head(*gaussian_classes(200, 40, 3, separation=2.5, seed=8), task=HeadTask(num_outputs=3), seed=0)
    noisy = select_head(*gaussian_classes(200, 40, 3, separation=2.5, label_noise=0.4, seed=8), task=HeadTask(num_outputs=3), seed=0)
    assert noisy.l2 > clean.l2
    assert clean.cv_mean > noisy.cv_mean


def test_the_refit_uses_every_example_it_was_given():
    x, y = gaussian_classes(90, 6, 3, seed=9)
    choice = select_head(x, y, task=HeadTask(num_outputs=3), folds=3, seed=0)
    assert choice.to_json()["refit_examples"] == 90
    everything = fit_linear(x, np.eye(3)[y], l2=choice.l2)
    np.testing.assert_allclose(choice.fit.kernel, everything.kernel, atol=1e-6)
    # A fit without the last example is a different head: the refit really used all 90.
    without_last = fit_linear(x[:-1], np.eye(3)[y[:-1]], l2=choice.l2)
    assert np.abs(choice.fit.kernel - without_last.kernel).max() > 1e-4


def test_class_weights_change_the_decision_on_an_imbalanced_set(capsys):
    x, y = gaussian_classes(400, 2, 2, separation=1.5, seed=10)
    keep = (y == 0) | (np.arange(len(y)) % 10 == 1)  # about 1 minority example in 9
    x, y = x[keep], y[keep]
    assert warn_if_imbalanced({"major": int((y == 0).sum()), "minor": int((y == 1).sum())}, "none")
    assert "--class-weight auto" in capsys.readouterr().err
    plain = select_head(x, y, task=HeadTask(num_outputs=2), seed=0)
    weighted = select_head(x, y, task=HeadTask(num_outputs=2, class_weight="auto"), seed=0)
    minority = y == 1
    recall = lambda choice: (predict_probabilities(x[minority], choice.fit).argmax(1) == 1).mean()  # noqa: E731
    assert recall(weighted) > recall(plain) + 0.2
    assert weighted.metric == "balanced_accuracy" and plain.metric == "accuracy"
    weights = inverse_frequency_weights(y, 2)
    assert weights[minority].sum() == pytest.approx(weights[~minority].sum(), rel=1e-3)


def test_multilabel_selection_sets_thresholds_and_scores_micro_f1():
    x, indicators = multilabel_features(240, 10, 4, seed=12)
    choice = select_head(x, indicators, task=HeadTask(num_outputs=4, multi_label=True), seed=0)
    assert choice.metric == "micro_f1" and choice.cv_mean > 0.85
    assert choice.thresholds.shape == (4,) and ((choice.thresholds > 0) & (choice.thresholds < 1)).all()
    assert choice.fit.activation == "sigmoid"


def test_cross_validate_scores_every_outer_fold_with_selection_inside():
    x, y = gaussian_classes(120, 5, 2, separation=2.0, seed=13)
    task = HeadTask(num_outputs=2)
    seen_sizes = []

    def fit_predict(x_fit, y_fit, x_held):
        seen_sizes.append(len(x_fit) + len(x_held))
        return predict_probabilities(x_held, select_head(x_fit, y_fit, task=task, folds=3).fit), None

    result = cross_validate(x, y, task=task, folds=4, seed=0, fit_predict=fit_predict)
    assert result["folds"] == 4 and len(result["per_fold"]) == 4 and seen_sizes == [120] * 4
    assert result["mean"] == pytest.approx(np.mean(result["per_fold"]), abs=1e-4) and result["mean"] > 0.8


def test_augmented_copies_train_their_originals_folds_and_are_never_scored():
    # Random labels in more dimensions than examples: a head memorises what it trains on, so a
    # copy of a held-out example in its fold's training rows would show as near-perfect accuracy.
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(60, 80)), np.arange(60) % 2
    copies = Augmented(x=x.copy(), y=y.copy(), source=np.arange(60))
    choice = select_head(x, y, task=HeadTask(num_outputs=2), seed=0, augmented=copies)
    assert choice.cv_mean < 0.7 and choice.to_json()["refit_examples"] == 120
    assert choice.out_of_fold.shape == (60, 2)
