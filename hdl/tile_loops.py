"""Loop engine for a GEMM's tile walk: three nested counters and a running address.

The compute unit walks ``nt < n_tiles`` (outer), ``kt < k_tiles``, ``i < inner`` (inner)
and reads or writes row ``base + nt * n_step + kt * k_step + i * i_step`` (mod 2**16) at
each step. Computing that sum directly needs three multipliers and a four-input adder in
front of a memory address. Here the address is a register updated by one 16-bit addition per
step (the start of the current tile and of the current n-tile are kept as registers too),
and the ``last`` flags are registers updated from down-counters one step ahead, so every
output is a flip-flop. ``last_i & last_kt`` is kept as a register of its own
(``last_ikt``), so that the n-tile base's clock enable is one gate after the caller's
``advance``.

Tested by ``tests/test_tile_loops.py`` (Amaranth simulator, against the closed formula) and
through the accelerator tests.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TileLoops", "ADDR_BITS"]

#: Address width: the ISA's scratchpad and accumulator addresses are 16 bits.
ADDR_BITS = 16


class TileLoops(wiring.Component):
    """Counters for (nt, kt, i) with a running address; outputs are registers.

    Parameters
    ----------
    inner_bits, tile_bits : int
        Widths of the inner count and of the tile counts.

    Ports
    -----
    start : In(1)
        Begin a new walk: ``base``, ``inner``, ``k_tiles`` and ``n_tiles`` are sampled (each
        count at least 1; the compute unit rejects zero counts before it gets here).
    base : In(16)
    inner : In(inner_bits)
    k_tiles, n_tiles : In(tile_bits)
    i_step, k_step, n_step : In(16)
        Address steps; read while the walk runs (hold them constant).
    advance : In(1)
        Move to the next step (ignored in the cycle of ``start``).
    addr : Out(16)
        Address of the current step.
    last_i, last_kt, last_nt : Out(1)
        The current step is the last of its loop.
    last_ikt : Out(1)
        ``last_i & last_kt`` (a register).
    done : Out(1)
        The current step is the last one of the walk.
    first_kt : Out(1)
        The current step belongs to the first k-tile.
    """

    def __init__(self, inner_bits=16, tile_bits=12):
        for name, value in (("inner_bits", inner_bits), ("tile_bits", tile_bits)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"Loop {name} must be a positive integer, not {value!r}")
        self._inner_bits = inner_bits
        self._tile_bits = tile_bits
        super().__init__({
            "start": In(1), "base": In(ADDR_BITS), "inner": In(inner_bits),
            "k_tiles": In(tile_bits), "n_tiles": In(tile_bits),
            "i_step": In(ADDR_BITS), "k_step": In(ADDR_BITS), "n_step": In(ADDR_BITS),
            "advance": In(1),
            "addr": Out(ADDR_BITS),
            "last_i": Out(1), "last_kt": Out(1), "last_nt": Out(1), "last_ikt": Out(1),
            "done": Out(1),
            "first_kt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        kt_base = Signal(ADDR_BITS)   # address of (nt, kt, 0)
        nt_base = Signal(ADDR_BITS)   # address of (nt, 0, 0)
        m.d.comb += self.done.eq(self.last_i & self.last_kt & self.last_nt)

        # Down-counters of the steps left in each loop, the current one included (so that
        # starting needs no subtraction), and their reload values. The `last` flags are
        # assigned through their next values (`*_last_next`), which `last_ikt` also uses.
        loops = []
        for name, count, bits, last in (("i", self.inner, self._inner_bits, self.last_i),
                                        ("kt", self.k_tiles, self._tile_bits, self.last_kt),
                                        ("nt", self.n_tiles, self._tile_bits, self.last_nt)):
            left = Signal(bits, name=f"{name}_left")
            reload = Signal(bits, name=f"{name}_reload")
            reload_last = Signal(name=f"{name}_reload_last")
            last_next = Signal(name=f"{name}_last_next")
            loops.append((left, reload, reload_last, last, last_next))
            m.d.comb += last_next.eq(last)
            m.d.sync += last.eq(last_next)
            with m.If(self.start):
                m.d.sync += [left.eq(count), reload.eq(count), reload_last.eq(count == 1)]
                m.d.comb += last_next.eq(count == 1)
        m.d.sync += self.last_ikt.eq(loops[0][4] & loops[1][4])

        def step(index):
            left, reload, reload_last, last, last_next = loops[index]
            with m.If(last):
                m.d.sync += left.eq(reload)
                m.d.comb += last_next.eq(reload_last)
            with m.Else():
                m.d.sync += left.eq(left - 1)
                m.d.comb += last_next.eq(left == 2)

        next_nt = nt_base + self.n_step
        with m.If(self.start):
            m.d.sync += nt_base.eq(self.base)
        with m.Elif(self.advance & self.last_ikt):  # (not nested below: a shorter enable)
            step(2)
            m.d.sync += nt_base.eq(next_nt)

        with m.If(self.start):
            m.d.sync += [self.addr.eq(self.base), kt_base.eq(self.base), self.first_kt.eq(1)]
        with m.Elif(self.advance):
            step(0)
            with m.If(~self.last_i):
                m.d.sync += self.addr.eq(self.addr + self.i_step)
            with m.Else():
                step(1)
                m.d.sync += self.first_kt.eq(self.last_kt)
                with m.If(~self.last_ikt):
                    next_kt = kt_base + self.k_step
                    m.d.sync += [kt_base.eq(next_kt), self.addr.eq(next_kt)]
                with m.Else():
                    m.d.sync += [kt_base.eq(next_nt), self.addr.eq(next_nt)]
        return m
