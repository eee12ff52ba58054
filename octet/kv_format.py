"""The KV cache in device memory: geometry register, sequence descriptors, page addresses.

This module is the one definition of how the KV-cache controller (``hdl/kv_controller.py``),
the golden simulator (:mod:`octet.sim.isa_kv`) and the host (:mod:`octet.host.kv_cache`) lay
out K and V. In the manner of vLLM's PagedAttention, with the translation done in hardware:

* A **pool** holds the int8 K (or V) rows of one (layer, head, K|V) for every sequence, in
  ``pool_pages`` physical pages of ``page_tokens`` rows of ``row_pitch`` bytes (all three
  powers of two). Pool ``q`` starts at ``KV_POOL_BASE + q * pool_bytes``; ``pools`` of them
  form the KV area, which must lie below MEM_LIMIT. The host numbers pools
  ``(kind * layers + layer) * heads + head`` so that one instruction can name the heads of a
  layer as consecutive pools.
* A sequence's **descriptor** (8 bytes at ``KV_SEQ_TABLE + 8 * seq``) gives the address of its
  **block table** and how many pages it has allocated (0: the slot is free). Block-table entry
  ``i`` (a little-endian uint32) is the physical page that holds the sequence's positions
  ``i * page_tokens ..`` in every pool, so one table serves all layers and heads.
* Row ``p`` of sequence ``s`` in pool ``q`` is at
  ``KV_POOL_BASE + ((q * pool_pages + table[p // page_tokens]) * page_tokens
  + p % page_tokens) * row_pitch`` (:meth:`KvGeometry.row_address`).
"""

from dataclasses import dataclass

from amaranth.lib import data

from octet.bitfields import pack_fields, unpack_fields

__all__ = ["GEOMETRY", "DESCRIPTOR", "DESCRIPTOR_BYTES", "ENTRY_BYTES", "KvGeometry"]

#: The KV_GEOMETRY register.
GEOMETRY = data.StructLayout({
    "log2_page_tokens": 4,
    "log2_row_pitch": 4,
    "log2_pool_pages": 5,
    "reserved0": 3,
    "pools": 12,
    "reserved1": 4,
})

#: A sequence descriptor in device memory (little endian).
DESCRIPTOR = data.StructLayout({"table_addr": 32, "pages": 32})
DESCRIPTOR_BYTES = DESCRIPTOR.size // 8
#: Bytes per block-table entry (a physical page number).
ENTRY_BYTES = 4


def _log2(name, value, limit):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 \
            or value & (value - 1) or value > 1 << limit:
        raise ValueError(f"KV {name} must be a power of two from 1 to {1 << limit}, "
                         f"not {value!r}")
    return value.bit_length() - 1


@dataclass(frozen=True)
class KvGeometry:
    """Shape of the KV area: the KV_GEOMETRY register and KV_POOL_BASE.

    Parameters
    ----------
    page_tokens : int
        Token rows per page (power of two, at most 2**15).
    row_pitch : int
        Bytes per row (power of two, at most 2**15); at least the head dimension.
    pool_pages : int
        Physical pages per pool (power of two, at most 2**31).
    pools : int
        Number of pools (1 to 4095): layers x heads x 2 for K and V.
    pool_base : int
        Device address of page 0 of pool 0 (the KV_POOL_BASE register).
    """

    page_tokens: int
    row_pitch: int
    pool_pages: int
    pools: int
    pool_base: int = 0

    def __post_init__(self):
        _log2("page_tokens", self.page_tokens, 15)
        _log2("row_pitch", self.row_pitch, 15)
        _log2("pool_pages", self.pool_pages, 31)
        if isinstance(self.pools, bool) or not isinstance(self.pools, int) \
                or not 1 <= self.pools <= 4095:
            raise ValueError(f"KV pools must be an integer from 1 to 4095, not {self.pools!r}")
        if not isinstance(self.pool_base, int) or not 0 <= self.pool_base < 1 << 32:
            raise ValueError(f"KV pool_base must be a 32-bit address, not {self.pool_base!r}")

    @property
    def page_bytes(self):
        return self.page_tokens * self.row_pitch

    @property
    def pool_bytes(self):
        return self.pool_pages * self.page_bytes

    @property
    def area_end(self):
        """First byte after the KV area."""
        return self.pool_base + self.pools * self.pool_bytes

    def register(self):
        """Value of the KV_GEOMETRY register."""
        return pack_fields(GEOMETRY, {
            "log2_page_tokens": self.page_tokens.bit_length() - 1,
            "log2_row_pitch": self.row_pitch.bit_length() - 1,
            "log2_pool_pages": self.pool_pages.bit_length() - 1,
            "pools": self.pools})

    @classmethod
    def from_registers(cls, geometry, pool_base):
        """The geometry the hardware sees in KV_GEOMETRY and KV_POOL_BASE.

        Raises ValueError when the register describes no valid geometry (0 pools).
        """
        f = unpack_fields(GEOMETRY, geometry)
        return cls(page_tokens=1 << f["log2_page_tokens"], row_pitch=1 << f["log2_row_pitch"],
                   pool_pages=1 << f["log2_pool_pages"], pools=f["pools"],
                   pool_base=pool_base)

    def row_address(self, pool, page, slot):
        """Address of row ``slot`` of physical ``page`` in ``pool``."""
        return (self.pool_base
                + ((pool * self.pool_pages + page) * self.page_tokens + slot) * self.row_pitch)
