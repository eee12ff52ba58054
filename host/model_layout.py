"""Where a quantized transformer lives in device memory, and how its weights are packed.

:class:`ModelLayout` places, once, everything that does not change while the model runs:

* every linear layer's int8 weight (QKV, attention output, MLP up and down of each block, and
  the LM head), **packed in tile order** (:func:`pack_weight`): n-tile by n-tile, each n-tile
  column holding its k-tiles, each tile ``R`` rows of ``C`` bytes. Any run of whole n-tile
  columns is then one contiguous byte range that a single LOAD copies straight into the weight
  scratchpad in the layout the GEMM reads (``w_stride`` 1, ``w_k_step`` R, ``w_n_step``
  k-tiles x R), with no gaps between DRAM rows;
* the requantization tables (16-byte records, :func:`octet.host.compiler.pack_requant`) of
  every requantized GEMM: QKV, output projection, MLP up and down per block, one record per
  (block, head) for the attention scores, and per block the ``p @ V`` table whose multipliers
  are fixed and whose biases the host rewrites every step (``128 * sum(V)``, the only
  parameter that depends on the sequence);
* the KV cache (:class:`~octet.host.kv_cache.DeviceKVCache`);
* activation buffers for up to ``max_rows`` tokens per step: the GEMM input the host writes
  (LayerNorm or GELU output), per-head queries, attention scores and probabilities, the
  attention output, GEMM results the host reads back, and int32 logits.

Weights and tables are written to the device by :meth:`ModelLayout.write_constants`; they are
the ``const`` range the program builder never has to track. Tested by
``tests/test_runtime.py``.
"""

from dataclasses import dataclass

import numpy as np

from octet.isa import PARAM_RECORD_BYTES

from .compiler import pack_requant
from .kv_cache import DeviceKVCache
from .memory_plan import MemoryPlan, MemoryPlanError

__all__ = ["LayoutError", "PROGRAM_BYTES", "PackedWeight", "ModelLayout", "pack_weight",
           "weight_op_names"]

_ALIGN = 64
#: Room for the largest program of a step.
PROGRAM_BYTES = 1 << 16


class LayoutError(ValueError):
    """The model does not fit the accelerator (memory, scratchpads, or unsupported shapes)."""


def _ceil(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class PackedWeight:
    """A weight (K, N) packed by :func:`pack_weight` at ``addr``."""

    addr: int
    k: int
    n: int
    k_tiles: int
    n_tiles: int
    tile_bytes: int

    def column_bytes(self):
        """Bytes of one n-tile column (all its k-tiles)."""
        return self.k_tiles * self.tile_bytes

    def block(self, n0, n1):
        """``(address, bytes)`` of n-tile columns ``[n0, n1)``."""
        return self.addr + n0 * self.column_bytes(), (n1 - n0) * self.column_bytes()


def pack_weight(weight, rows, cols):
    """int8 (K, N) -> bytes in tile order: for each n-tile, for each k-tile, its ``rows`` rows
    of ``cols`` values (zero-padded to whole tiles)."""
    k, n = weight.shape
    kt, nt = _ceil(k, rows), _ceil(n, cols)
    padded = np.zeros((kt * rows, nt * cols), dtype=np.int8)
    padded[:k, :n] = weight
    return np.ascontiguousarray(
        padded.reshape(kt, rows, nt, cols).transpose(2, 0, 1, 3)).tobytes()


def weight_op_names(n_layer):
    """Names of the weight GEMMs in the order a forward pass runs them."""
    names = []
    for i in range(n_layer):
        names += [f"blocks.{i}.attn.qkv", f"blocks.{i}.attn.out", f"blocks.{i}.mlp.up",
                  f"blocks.{i}.mlp.down"]
    return names + ["head"]


class ModelLayout:
    """Device-memory map of a :class:`~octet.quant.quantize.QuantizedModel`.

    Parameters
    ----------
    qmodel : QuantizedModel
    config : AcceleratorConfig
    max_rows : int
        Most tokens one step (prefill chunk) processes.

    Attributes
    ----------
    weights : dict
        Op name -> :class:`PackedWeight`.
    tables : dict
        Op name -> address of its requantization records; ``"blocks.{i}.attn.pv"`` are the
        per-step ``p @ V`` tables, ``"blocks.{i}.attn.scores"`` one record per head.
    slots : dict
        Op name -> first parameter slot of its table, for the fixed tables (all but
        ``p @ V``, which changes every step) as far as the accelerator's ``param_slots``
        hold them: the first STORE that uses a table keeps it on chip, later ones read the
        slots instead of device memory (``docs/isa.md``, parameter slots).
    buffers : dict
        Buffer name -> address (``act``, ``q``, ``scores``, ``probs``, ``attn``, ``result``,
        ``logits``, and ``program`` for the program being run).
    kv : DeviceKVCache
    const_range : tuple
        ``(start, end)`` of the weights and tables (never written by a program).
    weight_bytes : int
        Bytes of int8 weights (unpadded), what a token must stream at least.
    """

    def __init__(self, qmodel, config, max_rows):
        mc = qmodel.config
        if not isinstance(max_rows, int) or max_rows < 1:
            raise LayoutError(f"max_rows must be a positive integer, not {max_rows!r}")
        R, C = config.rows, config.cols
        hd = mc.head_dim
        if hd % R or hd % C:
            raise LayoutError(f"the head dimension {hd} must be a multiple of the array's "
                              f"rows ({R}) and columns ({C})")
        self.qmodel = qmodel
        self.model_config = mc
        self.config = config
        self.max_rows = max_rows
        plan = MemoryPlan(config.mem_bytes, align=_ALIGN)
        self._blobs = []
        self._records = {}
        try:
            self.weights = {}
            for name in weight_op_names(mc.n_layer):
                w = qmodel[name + ".weight"]
                blob = pack_weight(w, R, C)
                addr = plan.alloc(len(blob), "w." + name)
                self._blobs.append((addr, blob))
                self.weights[name] = PackedWeight(addr, w.shape[0], w.shape[1],
                                                  _ceil(w.shape[0], R), _ceil(w.shape[1], C),
                                                  R * C)
            self.tables = {}
            for i in range(mc.n_layer):
                pre = f"blocks.{i}."
                for op in ("attn.qkv", "attn.out", "mlp.up", "mlp.down"):
                    self._table(plan, pre + op, pack_requant(qmodel.requant(pre + op)))
                records = np.zeros((mc.n_head, PARAM_RECORD_BYTES), dtype=np.uint8)
                records[:, 0:4] = qmodel[pre + "attn.scores.multiplier"].astype(
                    "<i4").view(np.uint8).reshape(-1, 4)
                records[:, 8] = qmodel[pre + "attn.scores.shift"].astype(np.int8).view(
                    np.uint8)
                self._table(plan, pre + "attn.scores", records.tobytes())
                self._table(plan, pre + "attn.pv", self.pv_table(i, np.zeros(
                    (mc.n_head, hd), dtype=np.int64)))
            self.slots = {}
            free = config.param_slots
            for name in self.tables:
                if name.endswith(".attn.pv"):
                    continue
                n = self._records[name]
                if n <= free:
                    self.slots[name] = config.param_slots - free
                    free -= n
            self.const_range = (0, plan.used)
            self.kv = DeviceKVCache(plan, mc)
            T, d, ff, ctx = max_rows, mc.d_model, mc.d_ff, mc.context
            sizes = {"act": T * max(d, ff), "q": T * d, "scores": mc.n_head * T * ctx,
                     "probs": mc.n_head * T * ctx, "attn": T * d,
                     "result": 4 * T * max(d, ff),
                     "logits": T * mc.vocab_size * 4, "program": PROGRAM_BYTES}
            self.buffers = {name: plan.alloc(size, name) for name, size in sizes.items()}
        except MemoryPlanError as exc:
            raise LayoutError(f"the model does not fit the accelerator's "
                              f"{config.mem_bytes}-byte device memory: {exc}") from None
        self.bytes_used = plan.used
        self.weight_bytes = sum(qmodel[n + ".weight"].nbytes for n in self.weights)

    def _table(self, plan, name, blob):
        self._records[name] = len(blob) // PARAM_RECORD_BYTES
        addr = plan.alloc(len(blob), "t." + name)
        self._blobs.append((addr, blob))
        self.tables[name] = addr

    def pv_table(self, layer, value_sums):
        """Records of block ``layer``'s ``p @ V`` requantization for the V sums (H, hd)."""
        q = self.qmodel
        pre = f"blocks.{layer}.attn.pv."
        n = self.model_config.d_model
        rec = np.zeros((n, PARAM_RECORD_BYTES), dtype=np.uint8)
        rec[:, 0:4] = q[pre + "multiplier"].reshape(-1).astype("<i4").view(
            np.uint8).reshape(n, 4)
        # Probabilities carry zero point -128: sum_j (p_j - 128) V_j + 128 sum_j V_j.
        bias = 128 * np.asarray(value_sums, dtype=np.int64).reshape(-1)
        rec[:, 4:8] = bias.astype("<i4").view(np.uint8).reshape(n, 4)
        rec[:, 8] = q[pre + "shift"].reshape(-1).astype(np.int8).view(np.uint8)
        return rec.tobytes()

    def write_constants(self, device):
        """Write every weight and table to ``device`` (once per device)."""
        for addr, blob in self._blobs:
            device.write_mem(addr, blob)
