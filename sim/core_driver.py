"""Host-style driver of the compute core inside a cocotb simulation.

:class:`CoreDriver` owns one :class:`~octet.sim.cocotb_streams.StreamSource` or ``StreamSink``
per stream of :class:`octet.hdl.compute_core.ComputeCore` and runs whole operations on it: a
host-tiled GEMM (the tile sequence of :mod:`octet.host.tiling`) and a requantization pass. It
counts the clock cycles each operation takes from first beat offered to last beat received.
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from octet.hdl.layouts import (
    accumulator_layout,
    activation_layout,
    int8_row_layout,
    requant_param_layout,
    weight_row_layout,
)
from octet.host.tiling import accumulate_tile, gemm_tiles

from .cocotb_streams import StreamSink, StreamSource, random_pause

__all__ = ["CoreDriver", "core_size"]


def core_size(dut):
    """(rows, cols) of the core, read off its port widths."""
    rows = (len(dut.a_stream__payload) - 1) // 8
    cols = len(dut.w_stream__payload) // 8
    return rows, cols


class CoreDriver:
    """Drive a ComputeCore top level.

    Parameters
    ----------
    dut : cocotb handle
    rng : numpy.random.Generator or None
        Source of random stalls.
    stall : float
        Probability that each stream idles in a given cycle (0 disables stalls).
    """

    def __init__(self, dut, rng=None, stall=0.0):
        self.dut = dut
        self.rows, self.cols = core_size(dut)
        rng = rng or np.random.default_rng(0)
        pause = lambda: random_pause(rng, stall)  # noqa: E731 - one fresh pauser per stream
        self.w = StreamSource(dut, "w_stream", weight_row_layout(self.cols), pause())
        self.a = StreamSource(dut, "a_stream", activation_layout(self.rows), pause())
        self.o = StreamSink(dut, "o_stream", accumulator_layout(self.cols), pause())
        self.p = StreamSource(dut, "p_stream", requant_param_layout(), pause())
        self.rq_i = StreamSource(dut, "rq_i_stream", accumulator_layout(self.cols), pause())
        self.rq_o = StreamSink(dut, "rq_o_stream", int8_row_layout(self.cols), pause())
        self._rng = rng
        self.cycle = 0
        self._counter = cocotb.start_soon(self._count())

    async def _count(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    def set_stall(self, probability):
        """Change the stall probability of every stream."""
        for s in (self.w, self.a, self.o, self.p, self.rq_i, self.rq_o):
            s.pause = random_pause(self._rng, probability)

    async def reset(self, cycles=3):
        """Synchronous reset; drops whatever the streams had queued."""
        self.dut.rst.value = 1
        for s in (self.w, self.a, self.p, self.rq_i, self.o, self.rq_o):
            s.clear()
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        for s in (self.o, self.rq_o):
            s.clear()

    async def gemm(self, a, b):
        """A int8 (M, K) @ B int8 (K, N) on the array; returns (int32 (M, N), cycles)."""
        m = a.shape[0]
        tiles = list(gemm_tiles(a, b, self.rows, self.cols))
        start = self.cycle
        for tile in tiles:
            for k in range(self.rows):
                self.w.send({f"{j}": int(v) for j, v in enumerate(tile.weights[k])})
            for i in range(m):
                beat = {f"data.{r}": int(v) for r, v in enumerate(tile.activations[i])}
                beat["last"] = int(i == m - 1)
                self.a.send(beat)
        out = np.zeros((m, b.shape[1]), dtype=np.int32)
        for tile in tiles:
            rows = []
            for i in range(m):
                beat = await self.o.recv()
                assert beat["last"] == (i == m - 1), f"last flag wrong on row {i}"
                rows.append([beat[f"data.{j}"] for j in range(self.cols)])
            accumulate_tile(out, tile, np.array(rows, dtype=np.int64))
        return out, self.cycle - start

    async def requantize(self, acc, params):
        """int32 (M, N) -> int8 (M, N) through the requantizer, C channels at a time."""
        m, n = acc.shape
        start = self.cycle
        out = np.zeros((m, n), dtype=np.int8)
        for n0 in range(0, n, self.cols):
            width = min(self.cols, n - n0)
            for c in range(self.cols):
                mult, shift, bias = params.channel(n0 + c) if c < width else (0, 0, 0)
                self.p.send({"multiplier": mult, "shift": shift, "bias": bias,
                             "zero_point": params.zero_point, "relu": int(params.relu)})
            # Rows sent before the last parameter beat is taken would use the old parameters.
            await self.p.wait_idle()
            for i in range(m):
                beat = {f"data.{c}": int(acc[i, n0 + c]) for c in range(width)}
                beat["last"] = int(i == m - 1)
                self.rq_i.send(beat)
            for i in range(m):
                beat = await self.rq_o.recv()
                out[i, n0:n0 + width] = [beat[f"data.{c}"] for c in range(width)]
        return out, self.cycle - start
