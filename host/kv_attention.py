"""One decode-attention step on the accelerator, reading K and V through the hardware KV cache.

For one sequence and one layer (``heads`` heads of ``head_dim``), with the new token's q, k and
v given as int8, :func:`decode_attention_step` runs three programs:

1. **append**: the new token's k and v rows (placed in the accumulator by a GEMM of the token's
   projection inputs) are requantized and written into the sequence's pages by two KV_APPENDs;
2. **scores**: per head, KV_LOAD streams K rows ``0..t`` of the sequence into the input
   scratchpad (chunks, double buffered) and ``K @ q`` runs as a GEMM with q as a one-column
   weight; the int32 scores are requantized to int8 by the STORE;
3. the **host** takes the integer softmax (:func:`octet.quant.host_ops.softmax`, probabilities
   int8 with zero point -128) and writes p;
4. **values**: per head, p is the activation row and KV_LOAD streams V rows ``0..t`` into the
   weight scratchpad; ``p @ V`` accumulates in int32 and is stored as int32.

:func:`reference_step` computes the same from the K/V rows in NumPy (int8 x int8 -> int32, the
same requantization and softmax), which the tests and ``octet bench kv`` compare bit for bit.
"""

from dataclasses import dataclass

import numpy as np

from octet import isa
from octet.isa import PARAM_RECORD_BYTES, Opcode, StoreMode, Target
from octet.numerics import RequantParams
from octet.quant import host_ops
from octet.sim import golden

__all__ = ["AttentionHeads", "decode_attention_step", "reference_step", "param_records",
           "uniform_params"]


@dataclass
class AttentionHeads:
    """Which pools hold a layer's K and V, and their shapes.

    Parameters
    ----------
    k_pool, v_pool : int
        First pool of the layer's keys / values (heads are consecutive pools).
    heads, head_dim : int
    """

    k_pool: int
    v_pool: int
    heads: int
    head_dim: int


def param_records(multiplier, shift, channels, bias=0):
    """Requantization records (``PARAM_RECORD_BYTES`` each) of one scale for ``channels``."""
    rec = np.zeros((channels, PARAM_RECORD_BYTES), dtype=np.uint8)
    rec[:, 0:4] = np.array([multiplier], "<i4").view(np.uint8)
    rec[:, 4:8] = np.array([bias], "<i4").view(np.uint8)
    rec[:, 8] = np.array([shift], np.int8).view(np.uint8)
    return rec.tobytes()


def _ceil(a, b):
    return -(-a // b)


def decode_attention_step(device, cache, seq, layer, x, w_kv, kv_scale, q, score_scale,
                          scratch):
    """Append the token at position ``t = len`` and attend over positions ``0..t``.

    Parameters
    ----------
    device : Device
    cache : PagedKVCache
        Configured; ``seq`` must have room for position ``t`` (see ``reserve``).
    seq : int
    layer : AttentionHeads
    x : numpy.ndarray of int8, shape (d_in,)
        The new token's projection input.
    w_kv : numpy.ndarray of int8, shape (d_in, 2 * heads * head_dim)
        Its k and v projection (k columns first).
    kv_scale, score_scale : (multiplier, shift)
        Requantization of k/v and of the scores.
    q : numpy.ndarray of int8, shape (heads, head_dim)
    scratch : int
        Device address of a free region of :func:`scratch_bytes` bytes (64-byte aligned).

    Returns
    -------
    out : numpy.ndarray of int32, shape (heads, head_dim)
        ``p @ V`` per head (p with zero point -128: add ``128 * sum(V)`` for the real sum).
    cycles : dict
        Device cycles of the ``append``, ``scores`` and ``values`` programs.
    """
    cfg = device.config
    H, d = layer.heads, layer.head_dim
    t = cache.length(seq)
    cache.reserve(seq, t + 1)
    T = t + 1
    x = np.asarray(x, np.int8)
    lay = _Scratch(cfg, scratch, H, d, x.size, T)
    device.write_mem(lay.x, x.tobytes())
    device.write_mem(lay.w, np.asarray(w_kv, np.int8).tobytes())
    device.write_mem(lay.kv_params, param_records(*kv_scale, 2 * H * d))
    device.write_mem(lay.score_params, param_records(*score_scale, 1))
    device.write_mem(lay.q, np.asarray(q, np.int8).tobytes())
    cycles = {}
    cycles["append"] = _run(device, lay.program, _append_program(cfg, lay, seq, layer, t,
                                                                  x.size))
    cycles["scores"] = _run(device, lay.program, _scores_program(cfg, lay, seq, layer, T))
    scores = np.frombuffer(device.read_mem(lay.scores, H * T), np.int8).reshape(H, T)
    p = np.stack([host_ops.softmax(scores[h:h + 1], np.ones((1, T), bool),
                                   _EXP_LUT)[0] for h in range(H)])
    device.write_mem(lay.p, p.astype(np.int8).tobytes())
    cycles["values"] = _run(device, lay.program, _values_program(cfg, lay, seq, layer, T))
    out = np.frombuffer(device.read_mem(lay.out, 4 * H * d), "<i4").reshape(H, d)
    return out.astype(np.int32), cycles


def reference_step(k_rows, v_rows, q, score_scale):
    """NumPy reference: ``k_rows``, ``v_rows`` (heads, T, d) int8 -> (heads, d) int32."""
    H = q.shape[0]
    outs = []
    for h in range(H):
        s32 = golden.matmul_int32(k_rows[h], q[h][:, None].astype(np.int8))[:, 0]
        s8 = golden.requantize(s32[:, None], uniform_params(score_scale, 1))[:, 0]
        T = s8.size
        p = host_ops.softmax(s8[None, :], np.ones((1, T), bool), _EXP_LUT)[0]
        outs.append(golden.matmul_int32(p[None, :].astype(np.int8), v_rows[h])[0])
    return np.stack(outs).astype(np.int32)


def uniform_params(scale, channels):
    """:class:`RequantParams` of one ``(multiplier, shift)`` for ``channels`` channels."""
    return RequantParams(multiplier=np.full(channels, scale[0], np.int32),
                         shift=np.full(channels, scale[1], np.int32),
                         bias=np.zeros(channels, np.int32), zero_point=0, relu=False)


#: The softmax's exp() table: distance k from the row maximum, a score scale of 1/16.
_EXP_LUT = np.round(2.0 ** host_ops.SOFTMAX_LUT_BITS
                    * np.exp(-np.arange(256) / 16)).astype(np.int64)


class _Scratch:
    """Addresses of the step's operands, results and program inside ``scratch``."""

    def __init__(self, cfg, base, H, d, d_in, T):
        sizes = [("x", d_in), ("w", d_in * 2 * H * d), ("kv_params", 16 * 2 * H * d),
                 ("score_params", 16), ("q", H * d), ("scores", H * T), ("p", H * T),
                 ("out", 4 * H * d), ("program", 32 * (16 + 8 * H * (T + 8)))]
        addr = base
        for name, n in sizes:
            setattr(self, name, addr)
            addr += -(-n // 64) * 64
        self.end = addr


def _run(device, addr, program):
    device.write_program(addr, isa.encode_program(program + [(Opcode.END, {})]))
    return device.run(addr).cycles


def _append_program(cfg, lay, seq, layer, t, d_in):
    R, C = cfg.rows, cfg.cols
    H, d = layer.heads, layer.head_dim
    n = 2 * H * d
    ktiles, ntiles = _ceil(d_in, R), _ceil(n, C)
    per_w = ntiles                          # weight rows per input channel
    prog = [(Opcode.LOAD, dict(target=Target.INPUT, spad_addr=0, spad_stride=1, rows=1,
                               row_bytes=d_in, dram_addr=lay.x)),
            (Opcode.LOAD, dict(target=Target.WEIGHT, spad_addr=0, spad_stride=per_w,
                               rows=d_in, row_bytes=n, dram_addr=lay.w, dram_stride=n,
                               push_next=1)),
            (Opcode.GEMM, dict(m=1, acc_addr=0, a_addr=0, a_k_step=1, w_addr=0,
                               w_stride=per_w, w_k_step=R * per_w, k_tiles=ktiles,
                               n_tiles=ntiles, w_n_step=1, acc_n_step=1, pop_prev=1,
                               push_next=1))]
    head_step = d // C
    for kind, pool, first in (("k", layer.k_pool, 0), ("v", layer.v_pool, H * head_step)):
        prog.append((Opcode.KV_APPEND, dict(
            seq=seq, pool=pool, heads=H, pos=t, count=1, cols=d, acc_addr=first,
            acc_n_step=1, acc_head_step=head_step,
            param_addr=lay.kv_params + (0 if kind == "k" else 16 * H * d),
            param_head_step=16 * d, pop_prev=int(kind == "k"))))
    return prog


def _chunks(T, capacity):
    step = max(1, min(T, capacity))
    return [(c, min(T, c + step)) for c in range(0, T, step)]


def _scores_program(cfg, lay, seq, layer, T):
    R = cfg.rows
    H, d = layer.heads, layer.head_dim
    per = _ceil(d, R)                                   # input rows per key
    chunks = _chunks(T, cfg.input_rows // (2 * per))
    acc_half = cfg.acc_rows // 2
    if acc_half < T:
        raise ValueError(f"context {T} needs more than half of the {cfg.acc_rows} "
                         "accumulator rows")
    prog = [(Opcode.LOAD, dict(target=Target.WEIGHT, spad_addr=0, spad_stride=1, rows=H * d,
                               row_bytes=1, dram_addr=lay.q, dram_stride=1))]
    jobs = [(h, c0, c1) for h in range(H) for c0, c1 in chunks]
    for i, (h, c0, c1) in enumerate(jobs):
        buf = (i % 2) * (cfg.input_rows // 2)
        prog.append((Opcode.KV_LOAD, dict(
            target=Target.INPUT, seq=seq, pool=layer.k_pool + h, heads=1, pos=c0,
            count=c1 - c0, row_bytes=d, spad_addr=buf, spad_stride=per,
            pop_next=int(i >= 2), push_next=1)))
        last_chunk = c1 == T
        acc = (h % 2) * acc_half
        prog.append((Opcode.GEMM, dict(
            m=c1 - c0, acc_addr=acc + c0, a_addr=buf, a_stride=per, a_k_step=1,
            w_addr=h * d, w_stride=1, w_k_step=R, k_tiles=per, n_tiles=1,
            pop_prev=1, pop_next=int(c0 == 0 and h >= 2),
            push_prev=int(i + 2 < len(jobs)), push_next=int(last_chunk))))
        if last_chunk:
            prog.append((Opcode.STORE, dict(
                mode=StoreMode.INT8, acc_addr=acc, rows=T, cols=1,
                dram_addr=lay.scores + h * T, dram_stride=1, param_addr=lay.score_params,
                pop_prev=1, push_prev=int(h + 2 < H))))
    return prog


def _values_program(cfg, lay, seq, layer, T):
    R, C = cfg.rows, cfg.cols
    H, d = layer.heads, layer.head_dim
    per_p = _ceil(T, R)
    per_w = _ceil(d, C)
    chunk = (cfg.weight_rows // (2 * per_w)) // R * R   # whole k-tiles per chunk
    chunks = _chunks(T, chunk)
    prog = [(Opcode.LOAD, dict(target=Target.INPUT, spad_addr=0, spad_stride=per_p, rows=H,
                               row_bytes=T, dram_addr=lay.p, dram_stride=T))]
    jobs = [(h, c0, c1) for h in range(H) for c0, c1 in chunks]
    for i, (h, c0, c1) in enumerate(jobs):
        buf = (i % 2) * (cfg.weight_rows // 2)
        prog.append((Opcode.KV_LOAD, dict(
            target=Target.WEIGHT, seq=seq, pool=layer.v_pool + h, heads=1, pos=c0,
            count=c1 - c0, row_bytes=d, spad_addr=buf, spad_stride=per_w,
            pop_next=int(i >= 2), push_next=1)))
        prog.append((Opcode.GEMM, dict(
            m=1, acc_addr=h * per_w, a_addr=h * per_p + c0 // R, a_k_step=1,
            w_addr=buf, w_stride=per_w, w_k_step=R * per_w, k_tiles=_ceil(c1 - c0, R),
            n_tiles=per_w, w_n_step=1, acc_n_step=1, accumulate=int(c0 > 0),
            pop_prev=1, push_prev=int(i + 2 < len(jobs)), push_next=int(i == len(jobs) - 1))))
    prog.append((Opcode.STORE, dict(mode=StoreMode.INT32, acc_addr=0, acc_n_step=1, rows=1,
                                    cols=H * d, dram_addr=lay.out, dram_stride=4 * H * d,
                                    pop_prev=1)))
    return prog
