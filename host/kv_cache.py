"""The transformer's int8 KV cache, kept by the accelerator's KV-cache controllers.

Keys and values of every (layer, head) live in device memory in pages (``octet/kv_format.py``)
that the hardware finds through the sequence's block table; :class:`DeviceKVCache` owns the
region (from the model's memory plan), the pages (a
:class:`~octet.host.kv_pages.PagedKVCache` with one sequence slot) and what the runtime asks:

* the QKV GEMM's KV_APPENDs write a new token's k and v rows into their pages from the
  accumulator (:meth:`DeviceKVCache.pool` names the pool, :attr:`DeviceKVCache.seq` the
  sequence), so nothing passes through the host;
* the attention-score GEMM streams a head's keys ``[0, S)`` as its activation operand with
  KV_LOAD, and the ``p @ V`` GEMM its values as the weight operand;
* the host keeps only ``sum(V)`` per (layer, head, channel), the ``p @ V`` requantization's
  bias (probabilities carry zero point -128), reading each new value row back once
  (:meth:`DeviceKVCache.observe_values`).

Pools are numbered ``(kind * layers + layer) * heads + head`` (kind 0 = K, 1 = V). Pages are
allocated as the sequence grows (:meth:`DeviceKVCache.reserve`) and all returned by
:meth:`DeviceKVCache.reset`. Tested by ``tests/test_runtime.py``.
"""

import numpy as np

from octet.kv_format import KvGeometry

from .kv_pages import PagedKVCache

__all__ = ["DeviceKVCache", "PAGE_TOKENS"]

#: Positions per page (vLLM's default block size).
PAGE_TOKENS = 16


def _pow2(n):
    return 1 << max(0, (n - 1).bit_length())


class DeviceKVCache:
    """Keys and values of a model in paged device memory.

    Parameters
    ----------
    plan : MemoryPlan
        Where to allocate the region.
    model_config : ModelConfig
    """

    def __init__(self, plan, model_config):
        mc = model_config
        self.n_layer, self.n_head = mc.n_layer, mc.n_head
        self.context, self.head_dim = mc.context, mc.head_dim
        self.max_pages = -(-mc.context // PAGE_TOKENS)
        self.geometry = KvGeometry(PAGE_TOKENS, _pow2(mc.head_dim), _pow2(self.max_pages),
                                   2 * mc.n_layer * mc.n_head)
        self.base = plan.alloc(PagedKVCache.region_bytes(self.geometry, 1, self.max_pages),
                               "kv", align=64)
        self.length = 0
        self.seq = None
        self.pages = None
        self._sums = np.zeros((mc.n_layer, mc.n_head, mc.head_dim), dtype=np.int64)

    def attach(self, device):
        """Write the KV registers and an empty sequence to ``device``."""
        self.pages = PagedKVCache(device, self.base, self.geometry, 1, self.max_pages)
        self.pages.configure()
        self.seq = self.pages.new_sequence()
        self.length = 0

    def pool(self, which, layer, head):
        """Pool of the ``which`` ("k" or "v") rows of (``layer``, ``head``)."""
        kind = 0 if which == "k" else 1
        return (kind * self.n_layer + layer) * self.n_head + head

    def reserve(self, tokens):
        """Make positions ``[0, tokens)`` writable (allocating pages)."""
        self.pages.reserve(self.seq, tokens)

    def observe_values(self, device, layer, t0, count):
        """Read the value rows ``[t0, t0 + count)`` of ``layer`` back and add them to the
        running sums (once per position)."""
        for h in range(self.n_head):
            rows = self.pages.read_rows(self.seq, self.pool("v", layer, h), t0, count,
                                        self.head_dim)
            self._sums[layer, h] += rows.sum(axis=0, dtype=np.int64)

    def value_sums(self, layer):
        """int64 (heads, head_dim): sum of every cached value row of ``layer``."""
        return self._sums[layer].copy()

    def reset(self):
        """Forget every position (the next step starts at position 0); pages are freed."""
        self.length = 0
        self._sums[:] = 0
        if self.pages is not None:
            self.pages.free(self.seq)
            self.seq = self.pages.new_sequence()

