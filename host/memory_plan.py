"""A bump allocator over device memory.

The host compiler lays out one operation's program, operands, requantization records and
output in device memory with a :class:`MemoryPlan`: regions are handed out in order, aligned,
and never freed individually (a new operation starts a new plan). Tested through
``tests/test_compiler.py``.
"""

__all__ = ["MemoryPlan", "MemoryPlanError"]


class MemoryPlanError(ValueError):
    """A region does not fit in device memory, or an allocation request is invalid."""


class MemoryPlan:
    """Hands out aligned, non-overlapping regions of ``[base, size)``.

    Parameters
    ----------
    size : int
        End of the usable device memory (bytes).
    base : int
        First usable address.
    align : int
        Default alignment of every region (a power of two).
    """

    def __init__(self, size, base=0, align=32):
        if not isinstance(size, int) or size <= 0:
            raise MemoryPlanError(f"memory size must be a positive integer, not {size!r}")
        if not isinstance(base, int) or not 0 <= base <= size:
            raise MemoryPlanError(f"base must be an integer in [0, {size}], not {base!r}")
        _check_align(align)
        self.size = size
        self.align = align
        self._next = base
        #: Allocated regions: name -> (address, bytes).
        self.regions = {}

    @property
    def used(self):
        """First address not yet handed out."""
        return self._next

    def alloc(self, nbytes, name, align=None):
        """Reserve ``nbytes`` bytes for ``name`` and return the region's address."""
        align = self.align if align is None else align
        _check_align(align)
        if not isinstance(nbytes, int) or nbytes < 0:
            raise MemoryPlanError(f"region size must be a non-negative integer, not {nbytes!r}")
        if name in self.regions:
            raise MemoryPlanError(f"region {name!r} is already allocated")
        addr = -(-self._next // align) * align
        if addr + nbytes > self.size:
            raise MemoryPlanError(f"device memory exhausted: {name!r} needs {nbytes} bytes at "
                                  f"0x{addr:x} but memory ends at 0x{self.size:x}")
        self.regions[name] = (addr, nbytes)
        self._next = addr + nbytes
        return addr


def _check_align(align):
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise MemoryPlanError(f"alignment must be a power of two, not {align!r}")
