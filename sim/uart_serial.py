"""A pyserial-like port on the UART pins of a simulated design (cocotb).

:class:`SimSerial` lets blocking host code, such as :class:`~octet.host.board.BoardDevice`,
run unchanged against the RTL of a board design: it runs in a ``cocotb.task.bridge`` thread,
and ``write()`` / ``read()`` re-enter the simulator (``cocotb.task.resume``) to bit-bang bytes
onto the design's ``rx`` pin and collect bytes that a monitor coroutine decodes from its
``tx`` pin, at ``divisor`` clock cycles per bit (8N1). Simulated time passes only inside
these calls, as it does for a real board only while the host waits for it.

Used by ``octet.sim.tb_soc_uart``.
"""

from collections import deque

import cocotb
from cocotb.task import resume
from cocotb.triggers import ClockCycles, FallingEdge

__all__ = ["SimSerial"]


class SimSerial:
    """pyserial's ``read`` / ``write`` / ``reset_input_buffer`` / ``close`` on UART pins.

    Parameters
    ----------
    clk, rx, tx : cocotb handles
        The clock (running), the design's receive pin (driven here) and transmit pin.
    divisor : int
        Clock cycles per bit.
    timeout_bytes : int
        ``read`` returns early after this many byte times without a new byte (pyserial's
        timeout, in simulated time).
    """

    def __init__(self, clk, rx, tx, divisor, timeout_bytes=4096):
        self._clk, self._rx, self._tx = clk, rx, tx
        self._divisor = divisor
        self._timeout_cycles = timeout_bytes * 10 * divisor
        self._received = deque()
        self.bytes_written = 0
        self.bytes_read = 0
        rx.value = 1
        self._monitor = cocotb.start_soon(self._receive())

    async def _receive(self):
        d = self._divisor
        while True:
            await FallingEdge(self._tx)
            await ClockCycles(self._clk, d // 2)
            if self._tx.value:                     # not a start bit
                continue
            byte = 0
            for i in range(8):
                await ClockCycles(self._clk, d)
                byte |= int(self._tx.value) << i
            await ClockCycles(self._clk, d)        # middle of the stop bit
            if self._tx.value:
                self._received.append(byte)

    async def send(self, data):
        """Bit-bang ``data`` onto ``rx`` (also usable from cocotb coroutines)."""
        d = self._divisor
        for byte in data:
            for bit in [0] + [byte >> i & 1 for i in range(8)] + [1]:
                self._rx.value = bit
                await ClockCycles(self._clk, d)
        self.bytes_written += len(data)

    async def receive(self, n):
        """Up to ``n`` received bytes: fewer if nothing arrives for the timeout."""
        idle = 0
        step = 10 * self._divisor
        while len(self._received) < n and idle < self._timeout_cycles:
            before = len(self._received)
            await ClockCycles(self._clk, step)
            idle = 0 if len(self._received) != before else idle + step
        out = bytes(self._received.popleft() for _ in range(min(n, len(self._received))))
        self.bytes_read += len(out)
        return out

    async def idle(self, cycles):
        await ClockCycles(self._clk, cycles)

    # --- pyserial interface (blocking; call from a cocotb.task.bridge thread) --------------

    def write(self, data):
        resume(self.send)(bytes(data))
        return len(data)

    def read(self, n=1):
        return resume(self.receive)(n)

    def reset_input_buffer(self):
        self._received.clear()

    def close(self):
        pass
