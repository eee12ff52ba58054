"""The fp32 NumPy transformer: configuration checks, causality, and agreement with torch."""

import subprocess
import sys

import numpy as np
import pytest

from octet.quant.model import Model, ModelConfig, ModelError, init_params, param_shapes

TINY = ModelConfig(context=16, d_model=16, n_layer=2, n_head=4, d_ff=32)


def test_default_config_is_about_a_million_parameters():
    n = sum(int(np.prod(s)) for s in param_shapes(ModelConfig()).values())
    assert n == 858_880


@pytest.mark.parametrize("kwargs, message", [
    ({"d_model": 30, "n_head": 4}, "not divisible"),
    ({"n_layer": 0}, "n_layer must be a positive integer"),
    ({"ln_eps": 0}, "ln_eps"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ModelError, match=message):
        ModelConfig(**kwargs)


def test_forward_is_causal_and_shaped():
    model = Model(TINY, init_params(TINY, seed=1))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 12)
    b = a.copy()
    b[8:] = rng.integers(0, 256, 4)
    la, lb = model.forward(a), model.forward(b)
    assert la.shape == (12, 256) and la.dtype == np.float32
    np.testing.assert_array_equal(la[:8], lb[:8])
    assert not np.allclose(la[8:], lb[8:])
    with pytest.raises(ModelError, match="exceeds the context"):
        model.forward(np.zeros(17, np.int64))


def test_numpy_forward_matches_torch_module():
    torch = pytest.importorskip("torch")
    from octet.quant.train import _torch_module
    params = init_params(TINY, seed=4)
    for name in params:
        params[name] = params[name] * 10 if params[name].ndim == 2 else params[name]
    model = Model(TINY, {k: v.astype(np.float32) for k, v in params.items()})
    tokens = np.random.default_rng(1).integers(0, 256, (2, 16))
    net = _torch_module(torch, TINY, {k: v.copy() for k, v in model.params.items()})
    with torch.no_grad():
        ref = net(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(model.forward(tokens), ref, atol=2e-4, rtol=1e-4)


def test_train_without_torch_says_how_to_install():
    code = ("import sys; sys.modules['torch'] = None; from octet.quant.train import main; "
            "main(['--steps', '1'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "needs PyTorch" in result.stderr and ".[train]" in result.stderr


def test_train_help():
    result = subprocess.run([sys.executable, "-m", "octet.quant.train", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--steps" in result.stdout
