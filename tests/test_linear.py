"""The numpy softmax regression the guardrail classifiers train with."""

import numpy as np

from assistant.guardrails.linear import _objective, fit_softmax, softmax


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * 2
    targets = np.repeat([0, 1, 2], [60, 25, 10])  # unbalanced on purpose
    return centres[targets] + rng.normal(size=(len(targets), 8)), targets


def test_the_fit_is_the_optimum_of_its_objective() -> None:
    features, targets = _data()
    weights, bias = fit_softmax(features, targets, n_labels=3, c=4.0)
    onehot = np.eye(3)[targets]
    counts = np.bincount(targets)
    sample_weight = (len(targets) / (3 * counts))[targets]
    loss, gradient = _objective(np.concatenate([weights.ravel(), bias]), features, onehot, sample_weight, 4.0)
    assert np.abs(gradient).max() < 1e-3 * max(1.0, loss)
    # any nudge costs more
    for direction in np.random.default_rng(1).normal(size=(5, gradient.size)):
        nudged, _ = _objective(np.concatenate([weights.ravel(), bias]) + 1e-2 * direction, features, onehot,
                               sample_weight, 4.0)
        assert nudged > loss


def test_balanced_weights_let_a_small_class_be_learnt_and_stronger_regularisation_shrinks() -> None:
    features, targets = _data()
    weights, bias = fit_softmax(features, targets, n_labels=3, c=4.0)
    predicted = softmax(features @ weights.T + bias).argmax(axis=1)
    assert (predicted[targets == 2] == 2).mean() >= 0.9
    loose, _ = fit_softmax(features, targets, n_labels=3, c=4.0)
    tight, _ = fit_softmax(features, targets, n_labels=3, c=0.01)
    assert np.linalg.norm(tight) < np.linalg.norm(loose)


def test_softmax_rows_sum_to_one_without_overflow() -> None:
    rows = softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 1.0, 1.0]]))
    assert np.allclose(rows.sum(axis=1), 1.0) and rows[0, 0] == 1.0 and np.allclose(rows[1], 1 / 3)
