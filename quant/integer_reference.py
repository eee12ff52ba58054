"""Integer reference forward pass of the W8A8 transformer: accelerator GEMMs + integer host ops.

:class:`IntegerTransformer` runs a :class:`~octet.quant.quantize.QuantizedModel` as a sequence of
GEMM calls through one pluggable function, the *GEMM interface*::

    gemm(a, b, requant, tag) -> np.ndarray
        a       int8 (M, K)  activations
        b       int8 (K, N)  weights (a stored tensor) or K^T / V from the int8 KV cache
        requant RequantParams with N channels -> int8 (M, N), exactly golden.requantize of
                the int32 product; None -> the int32 (M, N) product itself (LM head only)
        tag     which product this is, e.g. "blocks.0.attn.qkv", "blocks.0.attn.scores.h2",
                "blocks.0.attn.pv.h2", "blocks.0.attn.out", "blocks.0.mlp.up",
                "blocks.0.mlp.down", "head"; weight GEMMs always pass the same ``b`` object for
                the same tag, so a backend may keep the weights resident

That is what the accelerator's GEMM followed by STORE(INT8) computes, so any backend that is
bit-exact with :mod:`octet.sim.golden` gives bit-identical logits: :func:`golden_gemm` (the
golden model literally); :func:`fast_gemm` (the same integers via float BLAS, exact because
every partial sum is an integer the float type represents; used for evaluation); and
:class:`DeviceGemm` (any accelerator :class:`octet.host.device.Device`: the golden ISA
simulator or the Verilator RTL). Everything between GEMMs is in :mod:`octet.quant.host_ops`
and is integer-only.

Per block and chunk of T tokens the calls are: QKV (M=T, K=d, N=3d); per head and group of
up to :data:`ATTENTION_CHUNK` query rows the scores ``q_h @ K_h^T`` (M=rows, K=hd, N=S) and
``p_h @ V_h`` (M=rows, K=S, N=hd), with S the positions up to the group's last row; the
attention output projection (K=d, N=d); MLP up (K=d, N=ff) and down (K=ff,
N=d); finally the LM head (K=d, N=vocab) with int32 output. The ``p @ V`` requantization's
bias is computed per call as ``128 * V_h.sum(axis=0)`` (probabilities carry zero point -128).

Prefill and decode share one code path (:meth:`IntegerTransformer.forward` over a chunk of
tokens appended to a :class:`KVCache`), and every host operation is row-wise and exact, so
prefilling T tokens and decoding them one by one give identical logits.

Tested by ``tests/test_quant_integer.py``.
"""

import numpy as np

from octet.numerics import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    MAX_EXACT_K,
    RequantParams,
)
from octet.sim import golden

from . import host_ops
from .quantize import QuantizedModel

__all__ = ["golden_gemm", "fast_gemm", "fast_requantize", "DeviceGemm", "GemmLog", "KVCache",
           "IntegerTransformer", "InferenceError", "ATTENTION_CHUNK"]

# Floats represent every integer up to 2**24 (float32) or 2**53 (float64) exactly, and every
# partial sum of K products of magnitude <= 2**14 stays below K * 2**14, in any order.
_FLOAT32_MAX_K = 2**24 // 2**14
_FAST_MAX_K = 2**53 // 2**14


#: Query rows per attention GEMM in a prefill: each chunk multiplies only the keys its rows can
#: see, which skips most of the masked upper triangle.
ATTENTION_CHUNK = 64


class InferenceError(ValueError):
    """Bad input to the integer reference (tokens out of range, context exhausted)."""


def golden_gemm(a, b, requant=None, tag=""):
    """The GEMM interface on :mod:`octet.sim.golden`: ``matmul_int32`` then ``requantize``."""
    acc = golden.matmul_int32(a, b)
    return acc if requant is None else golden.requantize(acc, requant)


def fast_gemm(a, b, requant=None, tag=""):
    """Bit-identical to :func:`golden_gemm`: the product via float32 BLAS for K <= 1024 and
    float64 BLAS beyond (exact: every partial sum is an integer below 2**24, resp. 2**53), and
    :func:`fast_requantize`."""
    k = a.shape[1]
    if k >= _FAST_MAX_K:
        return golden_gemm(a, b, requant, tag)
    dtype = np.float32 if k <= _FLOAT32_MAX_K else np.float64
    acc = (a.astype(dtype) @ b.astype(dtype)).astype(np.int64)
    if k > MAX_EXACT_K:
        acc = golden.wrap_int32(acc)
    if requant is None:
        return acc.astype(np.int32)
    return fast_requantize(acc, requant, bound=min(k * 2**14, 2**31))


def fast_requantize(acc, params: RequantParams, bound=2**31):
    """``golden.requantize`` with fewer passes over the data (bit-identical, tested).

    It uses the hardware form of the doubling high multiply from ``docs/numerics.md``,
    ``(a*b + 2**30) >> 31``, which equals gemmlowp's nudge-and-truncate for every product, and
    skips each int32 wrap-around when a bound on the values (``bound`` >= max |acc|) shows it
    cannot happen.
    """
    if params.channels != acc.shape[-1]:
        params.validate(channels=acc.shape[-1])
    multiplier = params.multiplier.astype(np.int64)
    if multiplier.min() == INT32_MIN:                # the saturating corner case
        return golden.requantize(acc, params)
    x = np.asarray(acc, dtype=np.int64) + params.bias
    bound += int(np.abs(params.bias.astype(np.int64)).max())
    if bound > INT32_MAX:
        x = golden.wrap_int32(x)
        bound = 2**31
    shift = params.shift.astype(np.int64)
    left = int(shift.max())
    if left > 0:
        x = golden.wrap_int32(x << np.maximum(shift, 0))
        bound = 2**31
    y = (x * multiplier + (1 << 30)) >> 31
    bound = (bound * int(np.abs(multiplier).max()) >> 31) + 1
    right = np.maximum(-shift, 0)
    lo, hi = int(right.min()), int(right.max())
    if lo > 0:
        # RoundingDivideByPOT for exponents >= 1: add 2**(e-1), minus one for negative x (so
        # halves round away from zero), then shift; a scalar exponent when all are equal.
        e = lo if lo == hi else right
        y = (y + ((np.int64(1) << (e - 1)) - (y < 0))) >> e
    elif hi > 0:
        mask = (np.int64(1) << right) - 1
        y = (y >> right) + ((y & mask) > (mask >> 1) + (y < 0))
    y += params.zero_point
    if bound + abs(params.zero_point) > INT32_MAX:
        y = golden.wrap_int32(y)
    low = max(INT8_MIN, params.zero_point) if params.relu else INT8_MIN
    return np.minimum(np.maximum(y, low), INT8_MAX).astype(np.int8)


class DeviceGemm:
    """The GEMM interface on an accelerator :class:`octet.host.device.Device` (the golden ISA
    simulator or the Verilator RTL), through :func:`octet.host.compiler.run_gemm`.
    ``cycles`` accumulates the device's cycle counter per tag."""

    def __init__(self, device):
        self.device = device
        self.cycles = {}

    def __call__(self, a, b, requant=None, tag=""):
        from octet.host.compiler import run_gemm
        out, stats = self.device.call(run_gemm, np.ascontiguousarray(a),
                                      np.ascontiguousarray(b), requant)
        self.cycles[tag] = self.cycles.get(tag, 0) + stats.cycles
        return out


class GemmLog:
    """Wraps a GEMM function and records ``(tag, M, K, N, requantized)`` of every call."""

    def __init__(self, gemm=fast_gemm):
        self.gemm = gemm
        self.calls = []

    def __call__(self, a, b, requant=None, tag=""):
        self.calls.append((tag, a.shape[0], a.shape[1], b.shape[1], requant is not None))
        return self.gemm(a, b, requant, tag)

    @property
    def macs(self):
        return sum(m * k * n for _, m, k, n, _ in self.calls)


class KVCache:
    """int8 keys and values of every (layer, head) for up to ``context`` positions."""

    def __init__(self, config):
        shape = (config.n_layer, config.n_head, config.context, config.head_dim)
        self.k = np.zeros(shape, dtype=np.int8)
        self.v = np.zeros(shape, dtype=np.int8)
        self.length = 0
        self.context = config.context


class IntegerTransformer:
    """Runs a :class:`QuantizedModel` through a GEMM function (default :func:`fast_gemm`)."""

    def __init__(self, qmodel: QuantizedModel, gemm=fast_gemm):
        self.q = qmodel
        self.config = qmodel.config
        self.gemm = gemm
        self._requant = {}
        for i in range(self.config.n_layer):
            for name in ("attn.qkv", "attn.out", "mlp.up", "mlp.down"):
                key = f"blocks.{i}.{name}"
                self._requant[key] = qmodel.requant(key)

    def new_cache(self):
        return KVCache(self.config)

    def forward(self, tokens, cache: KVCache):
        """Append ``tokens`` (T,) to ``cache`` and return their int32 logits (T, vocab)."""
        cfg, q, gemm = self.config, self.q, self.gemm
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        n, t0 = len(tokens), cache.length
        end = t0 + n
        if n == 0:
            raise InferenceError("no tokens to process")
        if end > cfg.context:
            raise InferenceError(f"{end} positions exceed the context of {cfg.context}")
        if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
            raise InferenceError(f"tokens must lie in [0, {cfg.vocab_size})")
        d, hd, eps = cfg.d_model, cfg.head_dim, q.eps_q
        valid = np.arange(end)[None, :] <= (t0 + np.arange(n))[:, None]
        x = host_ops.embed(q["tok_emb"], q["pos_emb"], tokens, t0)
        for i in range(cfg.n_layer):
            pre = f"blocks.{i}."
            a = host_ops.layer_norm(x, q[pre + "ln1.gain"], q[pre + "ln1.bias"], eps)
            qkv = gemm(a, q[pre + "attn.qkv.weight"], self._requant[pre + "attn.qkv"],
                       pre + "attn.qkv")
            query, key, value = (qkv[:, j * d:(j + 1) * d].reshape(n, -1, hd) for j in range(3))
            cache.k[i, :, t0:end] = key.transpose(1, 0, 2)
            cache.v[i, :, t0:end] = value.transpose(1, 0, 2)
            outs = []
            for h in range(cfg.n_head):
                outs.append(self._attention_head(i, h, query[:, h], cache, t0, valid))
            o = gemm(np.concatenate(outs, axis=1), q[pre + "attn.out.weight"],
                     self._requant[pre + "attn.out"], pre + "attn.out")
            x = host_ops.residual_add(x, o, q[pre + "attn.out.residual"])
            m = host_ops.layer_norm(x, q[pre + "ln2.gain"], q[pre + "ln2.bias"], eps)
            u = gemm(m, q[pre + "mlp.up.weight"], self._requant[pre + "mlp.up"], pre + "mlp.up")
            g = host_ops.gelu(u, q[pre + "mlp.gelu_lut"])
            y = gemm(g, q[pre + "mlp.down.weight"], self._requant[pre + "mlp.down"],
                     pre + "mlp.down")
            x = host_ops.residual_add(x, y, q[pre + "mlp.down.residual"])
        f = host_ops.layer_norm(x, q["ln_f.gain"], q["ln_f.bias"], eps)
        logits = gemm(f, q["head.weight"], None, "head")
        cache.length = end
        return logits

    def _attention_head(self, i, h, query, cache, t0, valid):
        """One head's attention for queries at t0..: int8 (T, hd), in query chunks of
        ATTENTION_CHUNK rows that each see only the keys up to their last row."""
        pre = f"blocks.{i}.attn."
        q = self.q
        lut = q[pre + "softmax_lut"][h]
        out = []
        for r0 in range(0, len(query), ATTENTION_CHUNK):
            r1 = min(r0 + ATTENTION_CHUNK, len(query))
            keys = t0 + r1
            z = self.gemm(np.ascontiguousarray(query[r0:r1]),
                          np.ascontiguousarray(cache.k[i, h, :keys].T),
                          self._scores_requant(i, h, keys), f"{pre}scores.h{h}")
            p = host_ops.softmax(z, valid[r0:r1, :keys], lut)
            v = np.ascontiguousarray(cache.v[i, h, :keys])
            pv = RequantParams.create(
                q[pre + "pv.multiplier"][h], q[pre + "pv.shift"][h],
                -host_ops.PROB_ZERO_POINT * v.sum(axis=0, dtype=np.int64))
            out.append(self.gemm(p, v, pv, f"{pre}pv.h{h}"))
        return np.concatenate(out, axis=0)

    def _scores_requant(self, i, h, n):
        pre = f"blocks.{i}.attn.scores."
        q = self.q
        return RequantParams.create(np.full(n, q[pre + "multiplier"][h]),
                                    np.full(n, q[pre + "shift"][h]), None,
                                    int(q[pre + "zero_point"][h]))

    def prefill(self, tokens):
        """Logits of ``tokens`` from an empty cache: ``(int32 (T, vocab), cache)``."""
        cache = self.new_cache()
        return self.forward(tokens, cache), cache

    def decode(self, token, cache):
        """Logits (vocab,) of one more token appended to ``cache``."""
        return self.forward([token], cache)[0]

    def dequantize_logits(self, logits):
        """Real-valued logits (float64): int32 accumulator times the per-column scale."""
        return np.asarray(logits, dtype=np.float64) * self.q["head.logit_scale"]

    def generate(self, prompt: bytes, max_new, temperature=0.0, seed=0):
        """Continue ``prompt`` by ``max_new`` bytes: greedy when ``temperature`` is 0, else
        sampling. When the context fills, the last half of it is prefilled again."""
        if not prompt:
            raise InferenceError("the prompt must hold at least one byte")
        rng = np.random.default_rng(seed)
        tokens = list(prompt[-self.config.context:])
        logits, cache = self.prefill(tokens)
        last = logits[-1]
        out = bytearray()
        for _ in range(max_new):
            real = self.dequantize_logits(last)
            if temperature <= 0:
                nxt = int(np.argmax(real))
            else:
                z = real / temperature
                prob = np.exp(z - z.max())
                nxt = int(rng.choice(len(prob), p=prob / prob.sum()))
            out.append(nxt)
            tokens.append(nxt)
            if cache.length == self.config.context:
                tokens = tokens[-(self.config.context // 2):]
                logits, cache = self.prefill(tokens)
                last = logits[-1]
            else:
                last = self.decode(nxt, cache)
        return bytes(out)
