"""Pruning: exact 50% sparsity, the 2:4 pattern, Wanda's activation-aware ordering."""

import numpy as np
import pytest

from octet.quant.model import LINEAR_NAMES, Model, ModelConfig, init_params
from octet.quant.prune import (
    PruneError,
    magnitude_mask,
    n_of_m_mask,
    prune_model,
    wanda_mask,
)
from octet.quant.quantize import calibrate

TINY = ModelConfig(context=16, d_model=16, n_layer=2, n_head=2, d_ff=32)


@pytest.fixture(scope="module")
def dense():
    model = Model(TINY, init_params(TINY, seed=5))
    calib = np.random.default_rng(0).integers(0, 256, (4, 16))
    return model, calibrate(model, calib)


def test_magnitude_prunes_exactly_half_the_smallest(seed):
    w = np.random.default_rng(seed).normal(size=(24, 10))
    keep = magnitude_mask(w)
    assert keep.sum() == w.size // 2
    assert np.abs(w[keep]).min() >= np.abs(w[~keep]).max()


def test_wanda_prunes_half_of_every_output_by_score(seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(20, 6))
    norm = rng.uniform(0.1, 10, 20)
    keep = wanda_mask(w, norm)
    assert (keep.sum(axis=0) == 10).all()
    score = np.abs(w) * norm[:, None]
    for j in range(6):
        assert score[keep[:, j], j].min() >= score[~keep[:, j], j].max()


def test_wanda_differs_from_magnitude_when_inputs_differ():
    w = np.array([[1.0], [2.0], [3.0], [4.0]])
    assert list(wanda_mask(w, np.ones(4))[:, 0]) == [False, False, True, True]
    assert list(wanda_mask(w, np.array([100.0, 1, 1, 1]))[:, 0]) == [True, False, False, True]


def test_two_of_four_pattern(seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(32, 7))
    keep = n_of_m_mask(w, rng.uniform(0.5, 2, 32))
    groups = keep.reshape(8, 4, 7)
    assert (groups.sum(axis=1) == 2).all()
    with pytest.raises(PruneError, match="multiple of 4"):
        n_of_m_mask(np.ones((6, 2)))


@pytest.mark.parametrize("method", ["magnitude", "wanda", "2:4"])
def test_prune_model_touches_only_linear_weights(dense, method):
    model, cal = dense
    pruned = prune_model(model, method, cal)
    for name, value in pruned.params.items():
        if any(name.endswith(layer + ".weight") for layer in LINEAR_NAMES):
            assert (value == 0).mean() == 0.5, name
            nonzero = value != 0
            np.testing.assert_array_equal(value[nonzero], model.params[name][nonzero])
            if method == "2:4":
                k, n = value.shape
                assert ((value != 0).reshape(k // 4, 4, n).sum(axis=1) == 2).all()
        else:
            np.testing.assert_array_equal(value, model.params[name])


def test_prune_errors(dense):
    model, _ = dense
    with pytest.raises(PruneError, match="unknown pruning method"):
        prune_model(model, "random")
    with pytest.raises(PruneError, match="needs calibration"):
        prune_model(model, "wanda")
    with pytest.raises(PruneError, match="sparsity"):
        magnitude_mask(np.ones((2, 2)), 1.5)
