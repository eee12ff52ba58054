"""Wide unsigned ``a > b`` from registered chunk comparisons (for address range checks).

:func:`chunked_greater` compares ``a`` and ``b`` in chunks of ``chunk`` bits every cycle into
flip-flops (each chunk's carry chain is short; chunks above ``b``'s width are only a zero
test of ``a``), combines them in a balanced tree into one more flip-flop and returns that:
it holds ``a > b`` for the ``a`` and ``b`` of two cycles before. Tested by
``tests/test_staged_compare.py``.
"""

from amaranth.hdl import Signal

__all__ = ["chunked_greater"]


def chunked_greater(m, a, b, name, chunk=12):
    """Return a flip-flop holding ``a > b`` (unsigned) of two cycles before.

    Parameters
    ----------
    m : Module
        The flip-flops go into ``m.d.sync``.
    a, b : Value
        Unsigned operands of any widths.
    name : str
        Prefix of the flip-flops' names.
    chunk : int
        Bits per chunk (at least 1).
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunked_greater chunk must be a positive integer, not {chunk!r}")
    width = max(len(a), len(b))
    ax, bx = Signal(width, name=f"{name}_a"), Signal(width, name=f"{name}_b")
    m.d.comb += [ax.eq(a), bx.eq(b)]
    parts = []                                          # (gt, eq), least significant first
    for k, lo in enumerate(range(0, width, chunk)):
        hi = min(lo + chunk, width)
        gt, eq = Signal(name=f"{name}_gt{k}"), Signal(name=f"{name}_eq{k}")
        if lo >= len(b):
            m.d.sync += [gt.eq(ax[lo:hi] != 0), eq.eq(ax[lo:hi] == 0)]
        else:
            m.d.sync += [gt.eq(ax[lo:hi] > bx[lo:hi]), eq.eq(ax[lo:hi] == bx[lo:hi])]
        parts.append((gt, eq))
    while len(parts) > 1:                               # pairwise: (high, low) -> one
        merged = []
        for i in range(0, len(parts) - 1, 2):
            (gl, el), (gh, eh) = parts[i], parts[i + 1]
            merged.append((gh | (eh & gl), eh & el))
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    result = Signal(name=f"{name}_gt")
    m.d.sync += result.eq(parts[0][0])
    return result
