"""The board system: accelerator, block-RAM device memory and the UART host bridge.

Block diagram::

    rx -> UartRx -> UartBridge -> UartTx -> tx
                      |m_axil       |m_axi
                      v             v
                 AxiLiteSlice       |
                      v             v
                 Accelerator -> AxiArbiter -> AxiBram (config.mem_bytes of block RAM)
                     s_axil    m_axi

The register slice keeps the bridge's state machine and the accelerator's register bank out of
each other's timing paths (a register access takes a few cycles more). ``link_error`` is
registered (a cycle later; it only drives an LED).

The host (:class:`~octet.host.board.BoardDevice`) reaches the accelerator's registers and the
device memory through the bridge; the accelerator fetches its programs and data from the same
memory. Everything is synthesizable (no simulation models): ``octet bitstream`` puts it on a
board (``octet.hdl.boards``), and ``tests/test_soc_uart.py`` runs it in Verilator with the
host's byte stream bit-banged onto ``rx``.
"""

from dataclasses import replace

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig

from .accelerator import Accelerator
from .axi_arbiter import AxiArbiter
from .axi_bram import AxiBram
from .axil_slice import AxiLiteSlice
from .uart import UartRx, UartTx
from .uart_bridge import UartBridge

__all__ = ["Soc", "soc_config"]


def soc_config(rows=2, cols=2, mem_bytes=1 << 16, bus_bytes=8):
    """The accelerator configuration for a board: small scratchpads, block-RAM memory.

    Scratchpads of 512 rows (input, weight) and an accumulator of 256 rows keep each of them
    to one block RAM deep (ECP5 DP16KD: 512 x 36), so block RAM use grows only with the array
    width. ``mem_bytes`` is the on-chip device memory. No parameter slots: they would take
    about 20 block RAMs, and a model whose tables need them does not fit 64 KiB of memory.
    """
    base = AcceleratorConfig(rows=rows, cols=cols, bus_bytes=bus_bytes, mem_bytes=mem_bytes)
    return replace(base, input_rows=max(512, rows), weight_rows=max(512, cols),
                   acc_rows=max(256, rows), param_slots=0)


class Soc(wiring.Component):
    """Accelerator + block-RAM device memory + UART bridge.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator; ``config.mem_bytes`` bytes of block RAM are its device memory.
    divisor : int
        UART clock cycles per bit (:func:`~octet.hdl.uart.uart_divisor`).
    clock_hz : int
        The clock frequency, which the bridge reports to the host.
    timeout_cycles : int, optional
        Bridge idle timeout inside a frame (default: 20 ms of the clock, at least 64 bytes).
    unit_domain : str
        The accelerator's unit domain (``Accelerator(unit_domain=...)``), default ``"sync"``.

    Ports
    -----
    rx : In(1)
        UART from the host (idle high).
    tx : Out(1)
        UART to the host.
    irq : Out(1)
        The accelerator's interrupt.
    link_error : Out(1)
        Pulses when the bridge answers a request with an error.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    irq: Out(1)
    link_error: Out(1)

    def __init__(self, config, *, divisor, clock_hz, timeout_cycles=None, unit_domain="sync"):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"SoC config must be an AcceleratorConfig, not {config!r}")
        if not isinstance(clock_hz, int) or isinstance(clock_hz, bool) or clock_hz <= 0:
            raise TypeError(f"SoC clock must be a positive integer in Hz, not {clock_hz!r}")
        if timeout_cycles is None:
            timeout_cycles = max(clock_hz // 50, 64 * 10 * divisor)
        self._config = config
        self.accel = Accelerator(config, unit_domain=unit_domain)
        self.memory = AxiBram(config.mem_bytes, config.bus_bits)
        self.arbiter = AxiArbiter(2, 32, config.bus_bits, 4)
        self.bridge = UartBridge(config.bus_bytes, config.mem_bytes, clock_hz, timeout_cycles)
        self.uart_rx = UartRx(divisor)
        self.uart_tx = UartTx(divisor)
        self.reg_slice = AxiLiteSlice(8, 32)
        super().__init__()

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        for name in ("accel", "memory", "arbiter", "bridge", "uart_rx", "uart_tx", "reg_slice"):
            m.submodules[name] = getattr(self, name)
        m.d.comb += [self.uart_rx.rx.eq(self.rx), self.tx.eq(self.uart_tx.tx),
                     self.irq.eq(self.accel.irq)]
        m.d.sync += self.link_error.eq(self.bridge.error)
        wiring.connect(m, self.uart_rx.o_stream, self.bridge.i_stream)
        wiring.connect(m, self.bridge.o_stream, self.uart_tx.i_stream)
        wiring.connect(m, self.bridge.m_axil, self.reg_slice.s)
        wiring.connect(m, self.reg_slice.m, self.accel.s_axil)
        wiring.connect(m, self.accel.m_axi, self.arbiter.s_axi[0])
        wiring.connect(m, self.bridge.m_axi, self.arbiter.s_axi[1])
        wiring.connect(m, self.arbiter.m_axi, self.memory.s_axi)
        return m
