"""Word reader: consecutive 32-bit words of device memory, one bus read each, never stalling.

The KV-cache controller reads sequence descriptors and block-table entries with it. Each word
is a one-beat read of the bus word that holds it, and a read is only requested while the
reader's word buffer has room for it and every read still in flight, so the beats it receives
are always taken at once: the shared in-order read channel never waits on this reader (which
would block the load unit's data behind a controller that waits for the load unit).
``flush`` drops buffered words and stops requesting; beats still in flight are taken and
dropped, and ``busy`` stays high until they have arrived.

Tested through the KV-cache controller (``tests/test_kv_rtl.py``).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .unit_ports import BusRequest

__all__ = ["WordReader"]

_DEPTH = 4


class WordReader(wiring.Component):
    """Reads ``count`` 32-bit words from ``addr`` on.

    Parameters
    ----------
    bus_bytes : int
        Bytes per bus beat (4, 8 or 16).

    Ports
    -----
    start : In(1)
        Begin a run (only while not ``busy``); ``addr`` and ``count`` are sampled.
    addr : In(32)
        Byte address of the first word (4-byte aligned).
    count : In(18)
        Words to read.
    flush : In(1)
        Drop buffered words and request no more.
    o_req : Out(BusRequest())
    i_data : In(stream {data, error})
        The beats of this reader's requests; always ready.
    o_word : Out(stream {word: 32, error: 1})
        The words in order; ``error`` when the bus answered SLVERR / DECERR.
    busy : Out(1)
        Words to request, in flight or buffered.
    """

    def __init__(self, bus_bytes):
        if bus_bytes not in (4, 8, 16):
            raise ValueError(f"WordReader bus_bytes must be 4, 8 or 16, not {bus_bytes!r}")
        self._bus = bus_bytes
        super().__init__({
            "start": In(1), "addr": In(32), "count": In(18), "flush": In(1),
            "o_req": Out(BusRequest()),
            "i_data": In(stream.Signature(data.StructLayout({"data": 8 * bus_bytes,
                                                             "error": 1}))),
            "o_word": Out(stream.Signature(data.StructLayout({"word": 32, "error": 1}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self._bus
        m.submodules.words = words = fifo.SyncFIFOBuffered(width=33, depth=_DEPTH)
        issue_addr = Signal(32)
        issue_left = Signal(18)
        recv_addr = Signal(32)
        outstanding = Signal(range(_DEPTH + 1))
        n_words = Signal(range(_DEPTH + 1))   # words.level, without the FIFO's adder

        issuing = Signal()             # issue_left != 0, kept as a flag
        in_flight = Signal()           # outstanding != 0, kept as a flag
        m.d.comb += [
            self.o_req.valid.eq(issuing & ~self.flush & (outstanding + n_words < _DEPTH)),
            self.o_req.payload.addr.eq(issue_addr & ~(B - 1)),
            self.o_req.payload.beats.eq(1),
        ]
        requested = self.o_req.valid & self.o_req.ready
        with m.If(self.start):
            m.d.sync += [issue_addr.eq(self.addr), recv_addr.eq(self.addr),
                         issue_left.eq(self.count), issuing.eq(self.count != 0)]
        with m.Elif(self.flush):
            m.d.sync += [issue_left.eq(0), issuing.eq(0)]
        with m.Elif(requested):
            m.d.sync += [issue_addr.eq(issue_addr + 4), issue_left.eq(issue_left - 1),
                         issuing.eq(issue_left != 1)]

        # Beats are registered on the way in (the reader always takes them, so a plain
        # register keeps full rate); a beat there still counts as outstanding.
        got = Signal()
        beat = Signal.like(self.i_data.payload)
        m.d.comb += self.i_data.ready.eq(1)
        m.d.sync += [got.eq(self.i_data.valid), beat.eq(self.i_data.payload)]
        select = Signal(32)
        if B == 4:
            m.d.comb += select.eq(beat.data)
        else:
            lane = recv_addr[2:(B.bit_length() - 1)]
            with m.Switch(lane):
                for k in range(B // 4):
                    with m.Case(k):
                        m.d.comb += select.eq(beat.data[32 * k:32 * k + 32])
        m.d.comb += [words.w_data.eq(select | (beat.error << 32)),
                     words.w_en.eq(got & ~self.flush)]
        with m.If(got & ~self.start):
            m.d.sync += recv_addr.eq(recv_addr + 4)
        m.d.sync += outstanding.eq(outstanding + requested - got)
        # outstanding + requested - got != 0, without the adder behind the bus's ready.
        m.d.sync += in_flight.eq(requested | Mux(got, outstanding > 1, outstanding != 0))

        m.d.comb += [self.o_word.valid.eq(words.r_rdy & ~self.flush),
                     self.o_word.payload.word.eq(words.r_data[:32]),
                     self.o_word.payload.error.eq(words.r_data[32]),
                     words.r_en.eq(self.o_word.ready | self.flush)]
        m.d.sync += n_words.eq(n_words + (words.w_en & words.w_rdy) -
                               (words.r_en & words.r_rdy))
        m.d.comb += self.busy.eq(issuing | in_flight | (n_words != 0))
        return m
