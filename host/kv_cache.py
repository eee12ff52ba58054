"""The int8 KV cache in device memory, managed by the host.

Keys and values of every (layer, head) live in device memory, one contiguous block of
``context`` rows of ``head_dim`` bytes each, row ``t`` for position ``t``:

* the QKV GEMM's STORE instructions write a new token's k and v rows straight into their
  blocks (:meth:`DeviceKVCache.rows`), so nothing passes through the host;
* the attention-score GEMM loads a head's keys ``[0, S)`` as its activation operand with one
  contiguous LOAD, and the ``p @ V`` GEMM loads the values ``[0, S)`` as its weight operand
  the same way (:meth:`DeviceKVCache.block`);
* the host keeps only ``sum(V)`` per (layer, head, channel), the ``p @ V`` requantization's
  bias (probabilities carry zero point -128), reading back each new value row once
  (:meth:`DeviceKVCache.observe_values`).

This class is the seam for a hardware KV-cache controller: the runtime asks it where rows
go and where a head's keys and values start, and tells it when positions are appended or the
cache restarts. A controller that appends rows and keeps the value sums itself replaces this
class without touching the programs' structure. Tested by ``tests/test_runtime.py``.
"""

import numpy as np

__all__ = ["DeviceKVCache"]


class DeviceKVCache:
    """Keys and values of a model in device memory.

    Parameters
    ----------
    plan : MemoryPlan
        Where to allocate the two blocks.
    model_config : ModelConfig
    """

    def __init__(self, plan, model_config):
        mc = model_config
        self.n_layer, self.n_head = mc.n_layer, mc.n_head
        self.context, self.head_dim = mc.context, mc.head_dim
        size = mc.n_layer * mc.n_head * mc.context * mc.head_dim
        self.k_addr = plan.alloc(size, "kv.k")
        self.v_addr = plan.alloc(size, "kv.v")
        self.length = 0
        self._sums = np.zeros((mc.n_layer, mc.n_head, mc.head_dim), dtype=np.int64)

    def _base(self, which, layer, head):
        start = self.k_addr if which == "k" else self.v_addr
        return start + (layer * self.n_head + head) * self.context * self.head_dim

    def rows(self, which, layer, head, t0):
        """``(address, row stride)`` where the ``which`` ("k" or "v") row of position ``t0``
        of (``layer``, ``head``) goes; later positions follow at the stride."""
        return self._base(which, layer, head) + t0 * self.head_dim, self.head_dim

    def block(self, which, layer, head, length):
        """``(address, bytes)`` of positions ``[0, length)`` of one head, contiguous."""
        return self._base(which, layer, head), length * self.head_dim

    def observe_values(self, device, layer, t0, count):
        """Read the value rows ``[t0, t0 + count)`` of ``layer`` back and add them to the
        running sums (once per position)."""
        hd = self.head_dim
        for h in range(self.n_head):
            addr, _ = self.rows("v", layer, h, t0)
            rows = np.frombuffer(device.read_mem(addr, count * hd), dtype=np.int8)
            self._sums[layer, h] += rows.reshape(count, hd).sum(axis=0, dtype=np.int64)

    def value_sums(self, layer):
        """int64 (heads, head_dim): sum of every cached value row of ``layer``."""
        return self._sums[layer].copy()

    def reset(self):
        """Forget every position (the next step starts at position 0)."""
        self.length = 0
        self._sums[:] = 0
