"""Pruning of the linear layers' weights before quantization.

Three methods, each applied to every block's QKV, attention output, MLP up and MLP down weights
(the embeddings and the tied LM head stay dense):

* ``magnitude``: unstructured, per layer: the 50% of the matrix's weights with the smallest
  |W| become zero.
* ``wanda``: unstructured, per output channel (Wanda, Sun et al. 2023): score
  ``|W_ij| * ||X_i||_2`` with ``||X_i||_2`` the norm of input channel i over the calibration
  tokens; in every output column the 50% lowest-scoring inputs become zero.
* ``2:4``: structured N:M sparsity: in every output column, each group of four consecutive
  input channels keeps its two highest Wanda scores (the pattern sparse tensor cores and
  sparse systolic arrays can skip).

Ties are broken by position (lower index pruned first), so results are deterministic. The
activation norms come from :func:`octet.quant.quantize.calibrate` of the dense model.

Tested by ``tests/test_quant_prune.py`` (exact sparsity, 2:4 pattern, Wanda's ordering).
"""

import numpy as np

from .model import LINEAR_NAMES, Model
from .quantize import Calibration

__all__ = ["METHODS", "PruneError", "magnitude_mask", "wanda_mask", "n_of_m_mask", "prune_model"]

METHODS = ("magnitude", "wanda", "2:4")


class PruneError(ValueError):
    """Bad pruning arguments (unknown method, shapes that do not fit the pattern)."""


def _check_sparsity(sparsity):
    if not 0 <= sparsity < 1:
        raise PruneError(f"sparsity must be in [0, 1), not {sparsity!r}")


def magnitude_mask(weight, sparsity=0.5):
    """Keep-mask of ``weight`` (in, out) without its ``floor(sparsity * size)`` smallest |W|."""
    _check_sparsity(sparsity)
    flat = np.abs(weight).reshape(-1)
    drop = int(sparsity * flat.size)
    order = np.argsort(flat, kind="stable")
    keep = np.ones(flat.size, dtype=bool)
    keep[order[:drop]] = False
    return keep.reshape(weight.shape)


def wanda_mask(weight, input_norm, sparsity=0.5):
    """Keep-mask of ``weight`` (in, out): per output column, drop the ``floor(sparsity * in)``
    inputs with the smallest ``|W_ij| * ||X_i||``."""
    _check_sparsity(sparsity)
    score = np.abs(weight).astype(np.float64) * np.asarray(input_norm, np.float64)[:, None]
    drop = int(sparsity * weight.shape[0])
    order = np.argsort(score, axis=0, kind="stable")
    keep = np.ones(weight.shape, dtype=bool)
    np.put_along_axis(keep, order[:drop], False, axis=0)
    return keep


def n_of_m_mask(weight, input_norm=None, n=2, m=4):
    """Keep-mask with ``n`` non-zeros in every ``m`` consecutive inputs of each output column,
    chosen by Wanda score (by |W| when ``input_norm`` is None)."""
    k, cols = weight.shape
    if k % m:
        raise PruneError(f"{n}:{m} sparsity needs the input dimension {k} to be a multiple "
                         f"of {m}")
    norm = np.ones(k) if input_norm is None else np.asarray(input_norm, np.float64)
    score = (np.abs(weight).astype(np.float64) * norm[:, None]).reshape(k // m, m, cols)
    order = np.argsort(score, axis=1, kind="stable")
    keep = np.ones(score.shape, dtype=bool)
    np.put_along_axis(keep, order[:, :m - n], False, axis=1)
    return keep.reshape(k, cols)


def prune_model(model: Model, method, cal: Calibration | None = None, sparsity=0.5):
    """A copy of ``model`` whose linear-layer weights are pruned with ``method``."""
    if method not in METHODS:
        raise PruneError(f"unknown pruning method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    if method != "magnitude" and cal is None:
        raise PruneError(f"{method} pruning needs calibration activations")
    updates = {}
    for i in range(model.config.n_layer):
        for name in LINEAR_NAMES:
            layer = f"blocks.{i}.{name}"
            w = model.params[layer + ".weight"]
            if method == "magnitude":
                keep = magnitude_mask(w, sparsity)
            elif method == "wanda":
                keep = wanda_mask(w, cal.input_norm(layer), sparsity)
            else:
                keep = n_of_m_mask(w, cal.input_norm(layer))
            updates[layer + ".weight"] = np.where(keep, w, np.float32(0))
    pruned = model.with_params(updates)
    pruned.metadata = dict(model.metadata, pruning=method)
    return pruned
