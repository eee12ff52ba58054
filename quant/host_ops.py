"""The host's share of quantized inference, in integer arithmetic: LayerNorm, softmax, GELU and
the residual stream.

Everything between two accelerator GEMMs runs on the host, and it runs in integers (NumPy
int64, no floating point), so the integer reference forward pass is bit-identical on every
run, on every machine, and for every batch shape: each row is computed independently with
exact integer operations, so a prefill of T tokens and T single-token decodes agree bit for
bit. The tables these functions use (LayerNorm gains, softmax and GELU lookup tables, residual
multipliers) are built once by :mod:`octet.quant.quantize`.

Number formats (``docs/model.md`` has the full story):

* **Residual stream**: int32 in units of 2**-:data:`RESIDUAL_FRAC_BITS`, saturating at
  +-:data:`RESIDUAL_LIMIT`.
* **Rounding**: every rounding here is *half up* (``floor(x + 1/2)``), in :func:`round_shift`
  and :func:`round_div`.
* **LayerNorm** (:func:`layer_norm`): integer mean, integer variance with a per-row right shift
  that keeps squares below 2**52, exact integer square root, then per-channel fixed-point gain
  and bias (Q:data:`LN_FRAC_BITS`) that also fold in the int8 output scale and the SmoothQuant
  factors, so the output is the int8 operand of the next GEMM.
* **Softmax** (:func:`softmax`): over int8 scores; ``exp`` is a 256-entry table of
  ``round(2**16 * exp(-k * scale))`` indexed by the distance ``k`` from the row maximum, the
  sum is exact, and the probabilities are rounded to multiples of 1/255 through cumulative sums
  so every row sums to exactly 255/255. They are returned as int8 with zero point -128 (TFLite's
  int8 softmax convention); the ``p @ V`` GEMM adds ``128 * sum(V)`` as its bias.
* **GELU** (:func:`gelu`): a per-channel 256-entry int8 -> int8 table.

Tested by ``tests/test_quant_integer.py``.
"""

import numpy as np

__all__ = ["RESIDUAL_FRAC_BITS", "RESIDUAL_LIMIT", "RESIDUAL_MULT_BITS", "LN_FRAC_BITS",
           "SOFTMAX_LUT_BITS", "PROB_LEVELS", "PROB_ZERO_POINT", "round_shift", "round_div",
           "round_half_up", "isqrt", "ln_eps_q", "layer_norm", "softmax", "gelu",
           "residual_add", "embed"]

#: Fractional bits of the int32 residual stream.
RESIDUAL_FRAC_BITS = 12
#: The residual stream saturates here, so LayerNorm's centred values fit 32 bits.
RESIDUAL_LIMIT = 2**30
#: Fractional bits of the per-channel multipliers that add int8 GEMM outputs to the residual,
#: beyond the residual's own: ``residual += round(y * mult / 2**RESIDUAL_MULT_BITS)``.
RESIDUAL_MULT_BITS = 8
#: Fractional bits of LayerNorm's per-channel gain and bias.
LN_FRAC_BITS = 16
#: exp() table entries are ``round(2**SOFTMAX_LUT_BITS * exp(-k * scale))``.
SOFTMAX_LUT_BITS = 16
#: Probabilities are multiples of 1/PROB_LEVELS, stored as int8 with PROB_ZERO_POINT.
PROB_LEVELS = 255
PROB_ZERO_POINT = -128
#: Squares in the LayerNorm variance stay below 2**(2 * _VAR_BITS) (so 2**52 with d <= 2**11).
_VAR_BITS = 26


def round_half_up(x):
    """Round float64 values to the nearest integer, halves up (used to build tables)."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


def round_shift(x, bits):
    """``floor(x / 2**bits + 1/2)`` on int64 (``bits`` >= 1)."""
    return (np.asarray(x, dtype=np.int64) + (1 << (bits - 1))) >> bits


def round_div(n, d):
    """``floor(n / d + 1/2)`` for int64 ``n`` and positive int64 ``d``, without overflow of 2n."""
    n = np.asarray(n, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    return np.floor_divide(n + (d >> 1), d)


def isqrt(v):
    """Exact ``floor(sqrt(v))`` of non-negative int64 values below 2**53."""
    v = np.asarray(v, dtype=np.int64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    # sqrt of an exactly represented integer is within one of the true root; fix it exactly.
    for _ in range(2):
        r = np.where(r * r > v, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= v, r + 1, r)
    return r


def ln_eps_q(eps):
    """LayerNorm's epsilon in the variance's units, 2**(-2 * RESIDUAL_FRAC_BITS)."""
    return int(round_half_up(eps * 2.0 ** (2 * RESIDUAL_FRAC_BITS)))


def embed(tok_emb, pos_emb, tokens, start):
    """Residual stream of ``tokens`` at positions ``start``...: int32 (T, d)."""
    positions = start + np.arange(len(tokens))
    x = tok_emb[tokens].astype(np.int64) + pos_emb[positions]
    return np.clip(x, -RESIDUAL_LIMIT, RESIDUAL_LIMIT).astype(np.int32)


def layer_norm(x, gain, bias, eps_q):
    """Integer LayerNorm of the residual ``x`` (T, d) int32 -> int8 (T, d).

    ``gain``/``bias`` are ``round(2**LN_FRAC_BITS * gamma / a)`` and
    ``round(2**LN_FRAC_BITS * beta / a)`` with ``a`` the per-channel scale of the int8 output
    (the next GEMM's per-tensor input scale times its SmoothQuant factors).
    """
    x = np.asarray(x, dtype=np.int64)
    d = x.shape[-1]
    mu = round_div(x.sum(axis=-1, keepdims=True), d)
    xc = x - mu
    # Shift rows with huge values right before squaring so the sum fits int64; exact
    # (shift 0) for every realistic row.
    peak = np.abs(xc).max(axis=-1, keepdims=True)
    _, bitlen = np.frexp(peak.astype(np.float64))
    shift = np.maximum(bitlen.astype(np.int64) - _VAR_BITS, 0)
    xs = xc >> shift
    var = (xs * xs).sum(axis=-1, keepdims=True) // d
    sigma = isqrt(var + (eps_q >> (2 * shift))) << shift
    t = round_div(xc * gain, sigma)
    return np.clip(round_shift(t + bias, LN_FRAC_BITS), -128, 127).astype(np.int8)


def softmax(scores, valid, lut):
    """Causal softmax of int8 ``scores`` (T, S) -> int8 probabilities (T, S), zero point -128.

    ``valid`` (T, S) bool marks the keys each query may see (at least one per row). ``lut``
    (256,) int64 holds ``round(2**16 * exp(-k * scale))`` for distance ``k`` from the row
    maximum. Probabilities are multiples of 1/255 rounded by cumulative sums,
    ``p_j = floor(255 * C_j / C) - floor(255 * C_(j-1) / C)`` with ``C_j`` the running sum of
    the exponentials: each is within one level of the exact value, masked keys get exactly 0,
    and every row sums to exactly 255/255, which keeps diffuse heads normalized.
    """
    z = np.asarray(scores, dtype=np.int64)
    peak = np.where(valid, z, -256).max(axis=-1, keepdims=True)
    # Masked keys may lie above the peak; their (negative, in-bounds) index is discarded.
    e = np.where(valid, lut[np.minimum(peak - z, 255)], 0)
    running = np.cumsum(e, axis=-1)
    levels = PROB_LEVELS * running // running[:, -1:]
    p = np.diff(levels, axis=-1, prepend=0)
    return (p + PROB_ZERO_POINT).astype(np.int8)


def gelu(h, lut):
    """Per-channel table lookup: int8 ``h`` (T, ff) -> int8 (T, ff); ``lut`` is (ff, 256)."""
    h = np.asarray(h, dtype=np.int64)
    return lut[np.arange(h.shape[-1]), h + 128]


def residual_add(x, y, mult):
    """``x + round(y * mult / 2**RESIDUAL_MULT_BITS)``, saturating: the int8 GEMM output ``y``
    (T, d) with per-channel multipliers ``mult`` (d,) = ``round(scale * 2**(F + 8))``."""
    add = round_shift(np.asarray(y, dtype=np.int64) * mult, RESIDUAL_MULT_BITS)
    return np.clip(np.asarray(x, dtype=np.int64) + add, -RESIDUAL_LIMIT,
                   RESIDUAL_LIMIT).astype(np.int32)
