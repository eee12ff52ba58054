"""UART receiver and transmitter (8 data bits, no parity, 1 stop bit) with byte streams.

A bit lasts ``divisor`` clock cycles (``round(clock_hz / baud)``: :func:`uart_divisor`). The
receiver synchronises its pin, waits for a falling edge, checks the start bit half a bit later
and samples each data bit and the stop bit in its middle; a byte whose stop bit is low (a
framing error, or a break) is dropped and counted on ``framing_error``. The receiver has no
flow control: a byte not taken before the next one completes is lost, so its consumer must
keep up (the bridge takes one byte per cycle at most every ``divisor`` cycles).

Tested by ``tests/test_uart.py`` (Amaranth simulator: loopback at several divisors, a framing
error, a glitch shorter than half a bit) and as part of ``tests/test_soc_uart.py``.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "uart_divisor", "MIN_DIVISOR"]

#: The receiver samples at half a bit; fewer than 4 cycles per bit leaves no margin.
MIN_DIVISOR = 4


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise TypeError(f"UART divisor must be an integer of at least {MIN_DIVISOR} clock "
                        f"cycles per bit, not {divisor!r}")


def uart_divisor(clock_hz, baud):
    """Cycles per bit for ``baud`` at ``clock_hz``; the rate error must stay within 2 %."""
    if not clock_hz > 0 or not baud > 0:
        raise ValueError(f"clock ({clock_hz!r} Hz) and baud rate ({baud!r}) must be positive")
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{baud} baud needs at least {MIN_DIVISOR} clock cycles per bit; "
                         f"a {clock_hz / 1e6:g} MHz clock gives {clock_hz / baud:.2f}")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"{baud} baud at {clock_hz / 1e6:g} MHz is off by {error:.1%} "
                         f"(divisor {divisor}); choose a baud rate closer to clock / N")
    return divisor


class UartRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least :data:`MIN_DIVISOR`).

    Ports
    -----
    rx : In(1)
        The serial line (idle high); synchronised inside.
    o_stream : Out(stream.Signature(8))
        Received bytes; ``valid`` stays up until taken or the next byte arrives.
    framing_error : Out(1)
        Pulses when a byte is dropped because its stop bit was low.
    """

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8))
    framing_error: Out(1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self._divisor))
        bits = Signal(4)          # bits still to sample after the start bit
        shift = Signal(8)
        with m.If(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        m.d.comb += self.framing_error.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "IDLE"               # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self._divisor - 1), bits.eq(9)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(bits != 1):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)),
                                 bits.eq(bits - 1), timer.eq(self._divisor - 1)]
                with m.Else():
                    with m.If(rx):
                        m.d.sync += [self.o_stream.payload.eq(shift),
                                     self.o_stream.valid.eq(1)]
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                    m.next = "STOP"
            with m.State("STOP"):
                # Wait for the line to be idle before hunting for the next start bit, so a
                # break (line held low) is one framing error, not a stream of zero bytes.
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least :data:`MIN_DIVISOR`).

    Ports
    -----
    i_stream : In(stream.Signature(8))
        Bytes to send; one is taken when the line is free.
    tx : Out(1)
        The serial line (idle high).
    busy : Out(1)
        A byte is being sent.
    """

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._divisor))
        bits = Signal(4)                   # bits left to send, start and stop included
        frame = Signal(10, init=0x3FF)     # stop, data (LSB first), start; shifted out LSB
        m.d.comb += [self.tx.eq(frame[0]), self.busy.eq(bits != 0),
                     self.i_stream.ready.eq(bits == 0)]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [frame.eq(1 << 9 | self.i_stream.payload << 1), bits.eq(10),
                         timer.eq(self._divisor - 1)]
        with m.Elif(bits != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq(1 << 9 | frame >> 1), bits.eq(bits - 1),
                             timer.eq(self._divisor - 1)]
        return m
