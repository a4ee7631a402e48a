"""Multinomial logistic regression in numpy, for the guardrail classifiers.

One small linear model does not need scikit-learn (and SciPy) at run time. The objective is the
usual one, ``C * sum_i w_i * log_loss_i + ||W||^2 / 2`` with "balanced" sample weights (each label
weighs as much as the others in total) and an unpenalised bias, minimised by L-BFGS with a
backtracking line search. It is strictly convex, so the optimum is unique and any converged solver
reaches the same weights.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

Matrix = np.ndarray[Any, np.dtype[Any]]


def _objective(params: Matrix, x: Matrix, onehot: Matrix, weight: Matrix, c: float) -> tuple[float, Matrix]:
    k, d = onehot.shape[1], x.shape[1]
    coef, bias = params[: k * d].reshape(k, d), params[k * d:]
    logits = x @ coef.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
    log_probs = logits - log_norm
    loss = -c * float((weight * (onehot * log_probs).sum(axis=1)).sum()) + 0.5 * float((coef * coef).sum())
    residual = c * weight[:, None] * (np.exp(log_probs) - onehot)
    grad_coef = residual.T @ x + coef
    grad_bias = residual.sum(axis=0)
    return loss, np.concatenate([grad_coef.ravel(), grad_bias])


def fit_softmax(
    features: Matrix, targets: Matrix, *, n_labels: int, c: float = 1.0, max_iter: int = 3000,
    tolerance: float = 1e-6, memory: int = 10,
) -> tuple[Matrix, Matrix]:
    """Weights ``(n_labels, dim)`` and bias ``(n_labels,)`` of a balanced, L2-regularised softmax
    regression of integer ``targets`` on ``features``."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    counts = np.bincount(y, minlength=n_labels).astype(np.float64)
    present = counts > 0
    weight = (len(y) / (present.sum() * np.where(present, counts, 1.0)))[y]
    onehot = np.zeros((len(y), n_labels))
    onehot[np.arange(len(y)), y] = 1.0
    params = np.zeros(n_labels * x.shape[1] + n_labels)
    loss, grad = _objective(params, x, onehot, weight, c)
    history: deque[tuple[Matrix, Matrix]] = deque(maxlen=memory)
    for _ in range(max_iter):
        if float(np.abs(grad).max()) <= tolerance * max(1.0, abs(loss)):
            break
        direction = -grad
        alphas: list[float] = []
        for s, yv in reversed(history):
            alpha = float(s @ direction) / float(yv @ s)
            alphas.append(alpha)
            direction = direction - alpha * yv
        if history:
            s, yv = history[-1]
            direction = direction * (float(s @ yv) / float(yv @ yv))
        for (s, yv), alpha in zip(history, reversed(alphas), strict=True):
            beta = float(yv @ direction) / float(yv @ s)
            direction = direction + (alpha - beta) * s
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            history.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0
        while True:
            candidate = params + step * direction
            new_loss, new_grad = _objective(candidate, x, onehot, weight, c)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = candidate - params, new_grad - grad
        if float(s_vec @ y_vec) > 1e-12:
            history.append((s_vec, y_vec))
        converged = abs(loss - new_loss) <= 1e-12 * max(1.0, abs(loss))
        params, loss, grad = candidate, new_loss, new_grad
        if converged:
            break
    k, d = n_labels, x.shape[1]
    return params[: k * d].reshape(k, d), params[k * d:]


def softmax(logits: Matrix) -> Matrix:
    """Row-wise softmax."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    out: Matrix = exp / exp.sum(axis=-1, keepdims=True)
    return out
