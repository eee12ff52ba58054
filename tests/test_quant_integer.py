"""The W8A8 integer reference: every product is the golden GEMM + requantization, prefill equals
decode with the KV cache, host operations are exact, and the result tracks the fp32 model."""

import math

import numpy as np
import pytest

from octet.host.device import GoldenDevice
from octet.numerics import RequantParams
from octet.quant import host_ops
from octet.quant.integer_reference import (
    DeviceGemm,
    GemmLog,
    InferenceError,
    IntegerTransformer,
    fast_gemm,
    fast_requantize,
    golden_gemm,
)
from octet.quant.model import Model, ModelConfig, bits_per_byte, init_params
from octet.quant.model_file import ModelFileError, write_tensors
from octet.quant.quantize import W8A8_KIND, calibrate, load_quantized, quantize, save_quantized
from octet.sim import golden

TINY = ModelConfig(context=48, d_model=32, n_layer=2, n_head=2, d_ff=64)


def tiny_model(seed=0):
    """A random model with activations large enough to exercise every range."""
    rng = np.random.default_rng(seed)
    params = init_params(TINY, seed)
    for name, value in params.items():
        if value.ndim == 2:
            params[name] = (value * 6).astype(np.float32)
        elif name.endswith(".bias"):
            params[name] = rng.normal(0, 0.1, value.shape).astype(np.float32)
        else:
            params[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
    return Model(TINY, params)


@pytest.fixture(scope="module")
def quantized():
    model = tiny_model()
    rng = np.random.default_rng(1)
    calib = rng.integers(32, 127, (8, TINY.context))
    return model, quantize(model, calibrate(model, calib))


def test_fast_requantize_equals_golden(seed):
    rng = np.random.default_rng(seed)
    for trial in range(400):
        n, m = rng.integers(1, 12, 2)
        extreme = trial % 2
        acc = (rng.choice([-2**31, 2**31 - 1, 0, -1, 1, 2**30], (m, n)) if extreme
               else rng.integers(-2**31, 2**31, (m, n)))
        mult = (rng.choice([-2**31, 2**31 - 1, 2**30, 0, -1], n) if extreme
                else rng.integers(-2**31, 2**31, n))
        shift = [rng.integers(-31, 31, n), np.full(n, rng.integers(-31, 0)),
                 rng.integers(-31, 0, n)][trial % 3]      # mixed, uniform, all right shifts
        params = RequantParams.create(mult, shift,
                                      rng.integers(-2**31, 2**31, n),
                                      int(rng.integers(-128, 128)), bool(rng.integers(2)))
        np.testing.assert_array_equal(fast_requantize(acc.astype(np.int32), params),
                                      golden.requantize(acc.astype(np.int32), params))


def test_fast_gemm_equals_golden(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (37, 515), dtype=np.int8)
    b = rng.integers(-128, 128, (515, 29), dtype=np.int8)
    a[0], b[:, 0] = -128, -128
    np.testing.assert_array_equal(fast_gemm(a, b), golden.matmul_int32(a, b))
    mult, shift = golden.quantize_multiplier(rng.uniform(1e-6, 1e-4, 29))
    params = RequantParams.create(mult, shift, rng.integers(-10**5, 10**5, 29), 3)
    np.testing.assert_array_equal(fast_gemm(a, b, params), golden_gemm(a, b, params))
    for k in (1024, 1025, 3000):     # float32 up to its exact limit 2**24, float64 beyond
        a = np.full((2, k), -128, np.int8)
        a[1, ::3] = 127
        b = np.full((k, 3), -128, np.int8)
        np.testing.assert_array_equal(fast_gemm(a, b), golden.matmul_int32(a, b))


def test_every_product_is_golden_gemm_plus_requantize(quantized):
    """Each call the integer reference makes is checked against golden.matmul_int32 and
    golden.requantize, and the tags and shapes are the documented ones."""
    _, q = quantized
    calls = []

    def checking_gemm(a, b, requant, tag):
        assert a.dtype == np.int8 and b.dtype == np.int8 and a.ndim == b.ndim == 2
        out = fast_gemm(a, b, requant, tag)
        acc = golden.matmul_int32(a, b)
        expect = acc if requant is None else golden.requantize(acc, requant)
        assert out.dtype == expect.dtype
        np.testing.assert_array_equal(out, expect)
        calls.append((tag, a.shape, b.shape, requant is None))
        return out

    tokens = np.arange(40, 60)
    runner = IntegerTransformer(q, checking_gemm)
    logits, _ = runner.prefill(tokens)
    assert logits.dtype == np.int32 and logits.shape == (20, 256)
    tags = [c[0] for c in calls]
    assert tags[0] == "blocks.0.attn.qkv" and tags[-1] == "head"
    assert calls[0][1:] == ((20, 32), (32, 96), False)
    assert [c[0] for c in calls if c[3]] == ["head"]      # only the LM head returns int32
    assert sum(t.startswith("blocks.1.attn.scores.h") for t in tags) >= 2
    # The golden model literally, as a backend, gives the same logits.
    np.testing.assert_array_equal(IntegerTransformer(q, golden_gemm).prefill(tokens)[0], logits)


def test_prefill_equals_decode_with_kv_cache(quantized):
    _, q = quantized
    runner = IntegerTransformer(q)
    tokens = np.random.default_rng(2).integers(0, 256, TINY.context)
    full, _ = runner.prefill(tokens)
    logits, cache = runner.prefill(tokens[:7])
    rows = [logits]
    rows.append(runner.forward(tokens[7:20], cache))        # a chunked prefill
    for t in tokens[20:]:
        rows.append(runner.decode(t, cache)[None])
    np.testing.assert_array_equal(np.concatenate(rows), full)
    assert cache.length == TINY.context
    with pytest.raises(InferenceError, match="exceed the context"):
        runner.decode(0, cache)


def test_accelerator_device_gives_identical_logits(quantized):
    """The whole accelerator (golden ISA simulator; the Verilator RTL is the same Device API)
    plugs in through DeviceGemm and gives bit-identical logits."""
    _, q = quantized
    tokens = np.arange(100, 106)
    gemm = DeviceGemm(GoldenDevice())
    np.testing.assert_array_equal(IntegerTransformer(q, gemm).prefill(tokens)[0],
                                  IntegerTransformer(q).prefill(tokens)[0])
    assert gemm.cycles["head"] > 0


def test_quantized_model_tracks_fp32(quantized):
    model, q = quantized
    tokens = np.random.default_rng(3).integers(32, 127, (4, TINY.context + 1))
    runner = IntegerTransformer(q)
    ints = np.stack([runner.dequantize_logits(runner.prefill(w[:-1])[0]) for w in tokens])
    fp = model.forward(tokens[:, :-1])
    assert np.corrcoef(ints.ravel(), fp.ravel())[0, 1] > 0.99
    fp_bpb = bits_per_byte(fp, tokens[:, 1:])
    assert abs(bits_per_byte(ints, tokens[:, 1:]) - fp_bpb) < 0.05 * fp_bpb


def test_gemm_log_counts_macs(quantized):
    _, q = quantized
    log = GemmLog()
    IntegerTransformer(q, log).prefill(np.arange(10))
    d, ff = TINY.d_model, TINY.d_ff
    weights = TINY.n_layer * 10 * (d * 3 * d + d * d + 2 * d * ff) + 10 * d * 256
    attention = TINY.n_layer * TINY.n_head * 2 * sum(range(1, 11)) * TINY.head_dim
    # Queries are chunked, so attention multiplies at least the causal triangle.
    assert log.macs >= weights + attention


def test_integer_layer_norm_matches_float(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, (5, 64)) + rng.normal(0, 5, (5, 1))
    gamma, beta = rng.uniform(0.5, 2, 64), rng.normal(0, 0.5, 64)
    scale = 0.04
    f = 2.0 ** host_ops.LN_FRAC_BITS
    xq = host_ops.round_half_up(x * 2**host_ops.RESIDUAL_FRAC_BITS).astype(np.int32)
    out = host_ops.layer_norm(xq, host_ops.round_half_up(gamma / scale * f),
                              host_ops.round_half_up(beta / scale * f),
                              host_ops.ln_eps_q(1e-5))
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    ref = np.clip(np.round((ref * gamma + beta) / scale), -128, 127)
    assert out.dtype == np.int8
    assert np.abs(out - ref).max() <= 1


def test_layer_norm_survives_huge_rows():
    x = np.zeros((2, 8), np.int32)
    x[0, ::2], x[1] = host_ops.RESIDUAL_LIMIT, np.arange(8)
    out = host_ops.layer_norm(x, np.full(8, 2**16 * 20), np.zeros(8, np.int64), 168)
    assert list(out[0]) == [20, -20] * 4


def test_isqrt_exact():
    v = np.array([0, 1, 2, 3, 4, 15, 16, 17, 2**52 - 1, 2**52, (2**26 + 1)**2 - 1], np.int64)
    r = host_ops.isqrt(v)
    assert all(int(ri) == math.isqrt(int(vi)) for ri, vi in zip(r, v, strict=True))


def test_softmax_rows_sum_to_one_and_mask():
    rng = np.random.default_rng(4)
    z = rng.integers(-128, 128, (6, 9)).astype(np.int8)
    valid = np.arange(9)[None, :] <= np.arange(3, 9)[:, None]
    lut = host_ops.round_half_up(2**16 * np.exp(-np.arange(256) * 0.05))
    p = host_ops.softmax(z, valid, lut).astype(np.int64) - host_ops.PROB_ZERO_POINT
    assert (p.sum(1) == host_ops.PROB_LEVELS).all()
    assert (p[~valid] == 0).all()
    ref = np.where(valid, np.exp(0.05 * z), 0)
    ref = ref / ref.sum(1, keepdims=True) * 255
    assert np.abs(p - ref).max() <= 1


def test_quantized_model_file_round_trip(quantized, tmp_path):
    _, q = quantized
    save_quantized(q, tmp_path / "q.octm")
    loaded = load_quantized(tmp_path / "q.octm")
    tokens = np.arange(5, 25)
    np.testing.assert_array_equal(IntegerTransformer(loaded).prefill(tokens)[0],
                                  IntegerTransformer(q).prefill(tokens)[0])
    assert loaded.scales.keys() == q.scales.keys()
    tensors = dict(q.tensors)
    tensors["blocks.0.mlp.gelu_lut"] = tensors["blocks.0.mlp.gelu_lut"][:5]
    write_tensors(tmp_path / "bad.octm", W8A8_KIND, TINY.to_dict(), tensors)
    with pytest.raises(ModelFileError, match=r"gelu_lut' is int8 \(5, 256\)"):
        load_quantized(tmp_path / "bad.octm")
