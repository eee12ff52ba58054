"""Two or more AXI4 masters onto one AXI4 slave, one burst at a time per direction.

Reads and writes are arbitrated independently, round robin. A master's read burst owns the
slave's read channels from its AR until its last R beat; a write burst owns AW, W and B from
its AW until its B response. Bursts of different masters therefore never interleave and IDs
pass through unchanged. The price is no overlap between consecutive read bursts, which costs a
few cycles per burst: fine for on-chip block RAM shared by the accelerator and the UART bridge.

Tested through ``tests/test_soc_uart.py`` (the host writing and reading memory between and
around accelerator programs) and ``tests/test_uart_bridge.py``.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AxiSignature

__all__ = ["AxiArbiter"]

_READ_ADDR = ("arid", "araddr", "arlen", "arsize", "arburst")
_READ_DATA = ("rid", "rdata", "rresp", "rlast")
_WRITE_ADDR = ("awid", "awaddr", "awlen", "awsize", "awburst")
_WRITE_DATA = ("wdata", "wstrb", "wlast")
_WRITE_RESP = ("bid", "bresp")


class AxiArbiter(wiring.Component):
    """Shares one AXI4 slave between ``masters`` AXI4 masters.

    Parameters
    ----------
    masters : int
        Number of masters, 2 to 8.
    addr_width, data_width, id_width : int
        The AXI4 signature of every port (:class:`~octet.hdl.axi.AxiSignature`).

    Ports
    -----
    s_axi : list of In(AxiSignature(addr_width, data_width, id_width))
        One slave port per master (``s_axi[0]`` .. ``s_axi[masters - 1]``).
    m_axi : Out(AxiSignature(addr_width, data_width, id_width))
        To the shared slave.
    """

    def __init__(self, masters=2, addr_width=32, data_width=64, id_width=4):
        if not isinstance(masters, int) or isinstance(masters, bool) or not 2 <= masters <= 8:
            raise TypeError(f"AXI arbiter needs 2 to 8 masters, not {masters!r}")
        self._masters = masters
        sig = AxiSignature(addr_width, data_width, id_width)
        super().__init__({"s_axi": In(sig).array(masters), "m_axi": Out(sig)})

    @property
    def masters(self):
        return self._masters

    def _channel(self, m, prefix, addr, data, resp, final):
        """Arbitrate one direction; ``final(port)`` is the handshake that ends a burst."""
        n = self._masters
        ports, out = self.s_axi, self.m_axi
        busy = Signal(name=f"{prefix}_busy")      # a burst owns the channel
        addr_sent = Signal(name=f"{prefix}_addr_sent")
        # The owner one-hot, in flip-flops, so that each channel's steering (which reaches
        # the slave's handshake and the masters' ready logic) starts from one register.
        grant = Signal(n, name=f"{prefix}_grant")
        last = Signal(range(n), name=f"{prefix}_last")
        valid_name = f"{addr[0][:2]}valid"
        ready_name = f"{addr[0][:2]}ready"
        with m.If(~busy):
            # Round robin: the first requester after the last owner.
            for prev in range(n):
                with m.If(last == prev):
                    order = [(prev + 1 + k) % n for k in range(n)]
                    for k in reversed(order):
                        with m.If(getattr(ports[k], valid_name)):
                            m.d.sync += [grant.eq(1 << k), busy.eq(1), addr_sent.eq(0)]
        for k in range(n):
            port = ports[k]
            mine = grant[k]
            with m.If(mine):
                m.d.comb += getattr(out, valid_name).eq(getattr(port, valid_name) & ~addr_sent)
                m.d.comb += getattr(port, ready_name).eq(getattr(out, ready_name) & ~addr_sent)
                for name in addr:
                    m.d.comb += getattr(out, name).eq(getattr(port, name))
                for name in data:
                    # master -> slave data signals (W channel) or slave -> master (R, B)
                    if port.signature.members[name].flow == In:
                        m.d.comb += getattr(out, name).eq(getattr(port, name))
                    else:
                        m.d.comb += getattr(port, name).eq(getattr(out, name))
                for valid, ready in resp:
                    # valid flows one way, ready the other
                    if port.signature.members[valid].flow == In:
                        m.d.comb += [getattr(out, valid).eq(getattr(port, valid)),
                                     getattr(port, ready).eq(getattr(out, ready))]
                    else:
                        m.d.comb += [getattr(port, valid).eq(getattr(out, valid)),
                                     getattr(out, ready).eq(getattr(port, ready))]
                with m.If(getattr(out, valid_name) & getattr(out, ready_name)):
                    m.d.sync += addr_sent.eq(1)
                with m.If(final(out)):
                    m.d.sync += [busy.eq(0), grant.eq(0), last.eq(k)]

    def elaborate(self, platform):
        m = Module()
        self._channel(m, "rd", _READ_ADDR, _READ_DATA, [("rvalid", "rready")],
                      lambda o: o.rvalid & o.rready & o.rlast)
        self._channel(m, "wr", _WRITE_ADDR, _WRITE_DATA + _WRITE_RESP,
                      [("wvalid", "wready"), ("bvalid", "bready")],
                      lambda o: o.bvalid & o.bready)
        return m
