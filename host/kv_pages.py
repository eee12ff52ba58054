"""The host's half of the hardware KV cache: page allocation, block tables, descriptors.

The accelerator's KV-cache controller (``hdl/kv_controller.py``) translates positions into
device addresses through tables the host writes (layout in :mod:`octet.kv_format`).
:class:`PagedKVCache` owns a region of device memory for them: the KV area (``pools`` pools of
``pool_pages`` pages), one descriptor per sequence slot and one block table per slot. It
hands out physical pages from a free list as sequences grow (a page serves the same positions
in every pool), returns them when a sequence is freed, and writes the KV registers. Memory
waste is only the unused tail of each sequence's last page (:meth:`PagedKVCache.usage`).
Tested by ``tests/test_kv_pages.py`` and through the RTL in ``tests/test_kv_rtl.py``.
"""

import numpy as np

from octet.isa import Reg
from octet.kv_format import DESCRIPTOR_BYTES, ENTRY_BYTES, KvGeometry

__all__ = ["PagedKVCache", "KvCacheFull"]


class KvCacheFull(RuntimeError):
    """No free page or sequence slot is left."""


class PagedKVCache:
    """Paged K/V storage for up to ``max_seqs`` sequences in device memory.

    Parameters
    ----------
    device : Device
        Anything with ``write_mem`` and ``write_reg`` (every backend).
    base : int
        First byte of the region this cache owns (64-byte aligned).
    geometry : KvGeometry
        Page size, row pitch, pages per pool and pool count; its ``pool_base`` is ignored
        (the pools are placed in the region).
    max_seqs : int
        Sequence slots.
    max_pages : int
        Block-table entries per sequence (its longest context in pages).
    """

    def __init__(self, device, base, geometry, max_seqs, max_pages):
        if not isinstance(geometry, KvGeometry):
            raise TypeError(f"geometry must be a KvGeometry, not {geometry!r}")
        for name, value in (("max_seqs", max_seqs), ("max_pages", max_pages)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(base, int) or base < 0 or base % 64:
            raise ValueError(f"KV region base must be a 64-byte aligned address, not {base!r}")
        self.device = device
        self.max_seqs, self.max_pages = max_seqs, max_pages
        self.seq_table = base
        self.tables = base + _round(max_seqs * DESCRIPTOR_BYTES)
        pool_base = base + self._tables_bytes(max_seqs, max_pages)
        self.geometry = KvGeometry(geometry.page_tokens, geometry.row_pitch,
                                   geometry.pool_pages, geometry.pools, pool_base)
        self.end = self.geometry.area_end
        self._free = list(range(geometry.pool_pages - 1, -1, -1))   # pop() gives page 0 first
        self._pages = {}          # seq -> physical pages
        self._length = {}         # seq -> tokens in use
        self._free_slots = list(range(max_seqs - 1, -1, -1))

    @property
    def size(self):
        """Bytes of device memory the cache owns."""
        return self.end - self.seq_table

    @staticmethod
    def _tables_bytes(max_seqs, max_pages):
        return _round(max_seqs * DESCRIPTOR_BYTES) + _round(max_seqs * max_pages * ENTRY_BYTES)

    @classmethod
    def region_bytes(cls, geometry, max_seqs, max_pages):
        """Bytes a cache of these parameters owns (:attr:`size`), before creating it."""
        return cls._tables_bytes(max_seqs, max_pages) + geometry.pools * geometry.pool_bytes

    def configure(self):
        """Write the KV registers and clear every descriptor (all slots free)."""
        g = self.geometry
        self.device.write_mem(self.seq_table, bytes(self.max_seqs * DESCRIPTOR_BYTES))
        self.device.write_reg(Reg.KV_SEQ_TABLE, self.seq_table)
        self.device.write_reg(Reg.KV_SEQ_COUNT, self.max_seqs)
        self.device.write_reg(Reg.KV_POOL_BASE, g.pool_base)
        self.device.write_reg(Reg.KV_GEOMETRY, g.register())

    def new_sequence(self):
        """A free sequence slot, now in use with no pages."""
        if not self._free_slots:
            raise KvCacheFull(f"all {self.max_seqs} KV sequence slots are in use")
        seq = self._free_slots.pop()
        self._pages[seq], self._length[seq] = [], 0
        self._write_descriptor(seq)
        return seq

    def reserve(self, seq, tokens):
        """Make positions ``0 .. tokens-1`` of ``seq`` writable (allocating pages)."""
        pages = self._pages_of(seq)
        need = -(-tokens // self.geometry.page_tokens)
        if need > self.max_pages:
            raise KvCacheFull(f"sequence {seq} would need {need} pages, more than its "
                              f"block table's {self.max_pages}")
        if need - len(pages) > len(self._free):
            raise KvCacheFull(f"sequence {seq} needs {need - len(pages)} more pages, "
                              f"{len(self._free)} are free")
        start = len(pages)
        while len(pages) < need:
            pages.append(self._free.pop())
        if need > start:
            entries = b"".join(p.to_bytes(ENTRY_BYTES, "little") for p in pages[start:])
            self.device.write_mem(self._table(seq) + ENTRY_BYTES * start, entries)
            self._write_descriptor(seq)
        self._length[seq] = max(self._length[seq], tokens)

    def free(self, seq):
        """Return the pages of ``seq`` and its slot; the hardware then rejects the id."""
        pages = self._pages_of(seq)
        self._free.extend(reversed(pages))
        del self._pages[seq], self._length[seq]
        self._free_slots.append(seq)
        self.device.write_mem(self.seq_table + DESCRIPTOR_BYTES * seq, bytes(DESCRIPTOR_BYTES))

    def image(self):
        """``(address, bytes)`` writes that restore every descriptor and block table."""
        desc = bytearray(self.max_seqs * DESCRIPTOR_BYTES)
        writes = []
        for seq, pages in self._pages.items():
            desc[DESCRIPTOR_BYTES * seq:DESCRIPTOR_BYTES * (seq + 1)] = (
                self._table(seq).to_bytes(4, "little") + len(pages).to_bytes(4, "little"))
            if pages:
                writes.append((self._table(seq), b"".join(
                    p.to_bytes(ENTRY_BYTES, "little") for p in pages)))
        return [(self.seq_table, bytes(desc))] + writes

    def length(self, seq):
        """Positions of ``seq`` in use (the largest ``tokens`` reserved)."""
        self._pages_of(seq)
        return self._length[seq]

    def sequences(self):
        """Sequence ids in use."""
        return sorted(self._pages)

    def pages(self, seq):
        """Physical pages of ``seq``, in position order."""
        return list(self._pages_of(seq))

    def row_address(self, seq, pool, pos):
        """Device address of K/V row ``pos`` of ``seq`` in ``pool``."""
        g = self.geometry
        page = self._pages_of(seq)[pos // g.page_tokens]
        return g.row_address(pool, page, pos % g.page_tokens)

    def read_rows(self, seq, pool, start, count, row_bytes):
        """int8 (count, row_bytes): K/V rows ``start ..`` of ``seq`` in ``pool``, read back
        from the device one page at a time."""
        g = self.geometry
        out = np.zeros((count, row_bytes), np.int8)
        t = start
        while t < start + count:
            n = min(start + count, (t // g.page_tokens + 1) * g.page_tokens) - t
            blob = self.device.read_mem(self.row_address(seq, pool, t), n * g.row_pitch)
            out[t - start:t - start + n] = np.frombuffer(blob, np.int8).reshape(
                n, g.row_pitch)[:, :row_bytes]
            t += n
        return out

    def usage(self, row_bytes):
        """``(allocated, used)`` K/V bytes over all sequences and pools (used rows hold
        ``row_bytes`` each; allocated pages count whole, padding of the row pitch included)."""
        g = self.geometry
        allocated = sum(len(p) for p in self._pages.values()) * g.page_bytes
        used = sum(self._length.values()) * row_bytes
        return allocated * g.pools, used * g.pools

    def _pages_of(self, seq):
        if seq not in self._pages:
            raise KeyError(f"KV sequence {seq!r} is not in use")
        return self._pages[seq]

    def _table(self, seq):
        return self.tables + seq * self.max_pages * ENTRY_BYTES

    def _write_descriptor(self, seq):
        desc = (self._table(seq).to_bytes(4, "little")
                + len(self._pages[seq]).to_bytes(4, "little"))
        self.device.write_mem(self.seq_table + DESCRIPTOR_BYTES * seq, desc)


def _round(n, unit=64):
    return -(-n // unit) * unit
