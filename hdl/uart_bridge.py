"""The host bridge: framed requests from a byte stream onto the registers and device memory.

It speaks the protocol of :mod:`octet.host.uart_protocol` (described in ``docs/fpga.md``):
requests ``0x5A cmd seq len16 payload crc16`` in, replies ``0xA5 status seq len16 payload
crc16`` out. A whole request is received into a small buffer and its CRC, command, length
and address range are checked **before** anything touches a bus, so a corrupted, malformed,
unknown or truncated request (no byte for ``timeout_cycles`` in the middle of a frame) gets an
error reply and changes nothing. Bytes outside a frame (before a sync byte) are dropped.

Registers are reached through an AXI4-Lite master (one access per request), device memory
through an AXI4 master with single-beat transfers (byte strobes for the partial words at the
ends of an unaligned WRITE_MEM). One request is handled at a time; the host waits for each
reply before sending the next request.

This module holds the buffer, the bus masters and the request state machine; its parts live
beside it: the frame's registers and receiving states (:mod:`.uart_frame`), the checks
(:mod:`.uart_checks`), the reply machine (:mod:`.uart_reply`) and the CRC (:mod:`.crc16`;
``crc16_step`` is re-exported here).

Tested by ``tests/test_uart_bridge.py`` (Amaranth simulator: every command, unaligned
accesses, every error reply, no write on a bad frame) and ``tests/test_soc_uart.py``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.host.uart_protocol import MAX_DATA, PROTOCOL_VERSION, Command, Status

from .axi import AxiBurst, AxiLiteSignature, AxiSignature
from .crc16 import crc16_step
from .uart_checks import UartRequestChecks
from .uart_frame import RequestFrame
from .uart_reply import UartReply

# crc16_step moved to .crc16; re-exported for existing imports.
__all__ = ["UartBridge", "crc16_step"]


class UartBridge(wiring.Component):
    """Framed-protocol engine between a byte stream and the accelerator's buses.

    Parameters
    ----------
    bus_bytes : int
        Width of the memory bus in bytes (4, 8 or 16).
    mem_bytes : int
        Size of the device memory; a memory request reaching beyond it answers ADDRESS.
    clock_hz : int
        Clock frequency, reported by INFO (the host derives waiting times from it).
    timeout_cycles : int
        Cycles without a byte after which a started frame is dropped (TIMEOUT reply).
    reg_addr_width : int
        Width of the register address; READ_REG / WRITE_REG beyond it answer ADDRESS.

    Ports
    -----
    i_stream : In(stream.Signature(8))
        Request bytes (from a :class:`~octet.hdl.uart.UartRx`).
    o_stream : Out(stream.Signature(8))
        Reply bytes (to a :class:`~octet.hdl.uart.UartTx`).
    m_axi : Out(AxiSignature(32, 8 * bus_bytes, 4))
        Device memory.
    m_axil : Out(AxiLiteSignature(reg_addr_width, 32))
        Registers.
    error : Out(1)
        Pulses when an error reply starts (for a status LED).
    """

    def __init__(self, bus_bytes=8, mem_bytes=1 << 16, clock_hz=50_000_000,
                 timeout_cycles=1 << 20, reg_addr_width=8):
        if bus_bytes not in (4, 8, 16):
            raise TypeError(f"UART bridge bus width must be 4, 8 or 16 bytes, not {bus_bytes!r}")
        for name, value, low, high in (("memory size", mem_bytes, bus_bytes, 1 << 32),
                                       ("clock frequency", clock_hz, 1, (1 << 32) - 1),
                                       ("timeout", timeout_cycles, 16, 1 << 32),
                                       ("register address width", reg_addr_width, 3, 32)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise TypeError(f"UART bridge {name} must be an integer from {low} to {high}, "
                                f"not {value!r}")
        self._bus = bus_bytes
        self._mem = mem_bytes
        self._clock = clock_hz
        self._timeout = timeout_cycles
        self._reg_width = reg_addr_width
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "o_stream": Out(stream.Signature(8)),
            "m_axi": Out(AxiSignature(32, 8 * bus_bytes, 4)),
            "m_axil": Out(AxiLiteSignature(reg_addr_width, 32)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self._bus
        shift = (B - 1).bit_length()
        words = MAX_DATA // B + 1
        axi, axil = self.m_axi, self.m_axil
        rx, tx = self.i_stream, self.o_stream

        # The buffer holds memory data at its position within bus words: byte i of a request
        # at address a sits at buffer byte (a % B) + i, so bus words move whole.
        m.submodules.buffer = buf = memory.Memory(
            shape=data.ArrayLayout(8, B), depth=words, init=[])
        buf_w = buf.write_port(granularity=1)     # one enable per byte lane (element)
        buf_r = buf.read_port()

        # The request frame's registers and receive logic (uart_frame), and its states below.
        frame = RequestFrame(B, self._timeout)
        cmd, seq, length, crc = frame.cmd, frame.seq, frame.length, frame.crc
        addr, arg, count = frame.addr, frame.arg, frame.count
        take, byte, timed_out = frame.take, frame.byte, frame.timed_out
        listening, in_frame = frame.listening, frame.in_frame
        status = Signal(3)
        # The command decoded into one flag per command, registered: cmd is set by the frame's
        # second byte, long before the checks and the reply look at it.
        is_cmd = {c: Signal(name=f"is_{c.name.lower()}") for c in Command}
        for c, flag in is_cmd.items():
            m.d.sync += flag.eq(cmd == c)
        read_mem = is_cmd[Command.READ_MEM]

        offset = addr[:shift]
        word = Signal(range(words + 1))       # bus word of the transfer in progress
        n_words = Signal(range(words + 1))      # registered: addr and count are set by then
        m.d.sync += n_words.eq((offset + count + B - 1) >> shift)

        # --- Request bytes ---------------------------------------------------------------
        frame.add_logic(m, rx)
        write_data = take & frame.in_data
        # The buffer is written by payload bytes, or by memory read beats while r_pend (both
        # registers: no state decode in the write enables).
        r_pend = Signal(name="r_pend")
        r_beat = axi.rvalid & r_pend
        lanes = Mux(write_data, 1 << frame.data_index[:shift], 0)
        m.d.comb += [buf_w.addr.eq(Mux(r_pend, word, frame.data_index >> shift)),
                     buf_w.data.eq(Mux(r_pend, axi.rdata, byte.replicate(B))),
                     buf_w.en.eq(Mux(r_beat, (1 << B) - 1, lanes))]

        # --- Checks (in the cycle after the last CRC byte) -------------------------------
        mem_count = Mux(read_mem, arg[:16], length - 4)
        # The checks, registered in steps while the frame waits in SETTLE (see uart_checks).
        m.submodules.checks = checks = UartRequestChecks(self._mem, self._reg_width)
        for c, flag in is_cmd.items():
            m.d.comb += checks.commands[c.name.lower()].eq(flag)
        m.d.comb += [checks.length.eq(length), checks.read_count.eq(arg[:16]),
                     checks.addr.eq(addr), checks.count.eq(count), checks.crc.eq(crc)]
        check_fail, check_status = checks.check_fail, checks.check_status
        settle = Signal(range(3))

        # --- Reply bytes -----------------------------------------------------------------
        # The reply is sent by a second state machine (UartReply), so that neither one's state
        # decode has to cover the other's states: the request machine sets status and length,
        # starts it and waits in REPLY for its end.
        m.submodules.reply = reply_sm = UartReply(B)
        wiring.connect(m, reply_sm.o_stream, wiring.flipped(tx))
        reply_len = Signal(16)
        # The INFO / READ_REG payload: INFO's constant, or the register value captured when
        # the read answers (only the bridge reads registers), so that neither register's
        # enable comes from the state decode.
        reply_info = Signal()
        reg_value = Signal(32)
        with m.If(axil.rvalid):
            m.d.sync += reg_value.eq(axil.rdata)
        info = PROTOCOL_VERSION | B << 8 | MAX_DATA << 16 | self._clock << 32
        reply_word = Mux(reply_info, info, reg_value)
        reply_go = Signal()
        reply_end = reply_sm.reply_end
        m.d.comb += [reply_sm.start.eq(reply_go), reply_sm.status.eq(status),
                     reply_sm.seq.eq(seq), reply_sm.length.eq(reply_len),
                     reply_sm.word.eq(reply_word), reply_sm.read_mem.eq(read_mem),
                     reply_sm.offset.eq(offset), reply_sm.buf_data.eq(buf_r.data),
                     self.error.eq(reply_sm.error)]

        def reply(code, n=0):
            m.d.sync += [status.eq(code), reply_len.eq(n), reply_go.eq(1)]
            m.next = "REPLY"

        # The buffer's read port reads all the time (its data is only used in MEM_WRITE and
        # in the reply's REPLY_DATA), at the reply's buf_pos while replying. Its address is a
        # register (the choice would otherwise run on into every LUT RAM of the buffer), so
        # the data shows two cycles after the position that selects it changes.
        buf_addr = Signal.like(buf_r.addr)
        m.d.sync += buf_addr.eq(Mux(reply_sm.replying, reply_sm.buf_pos >> shift, word))
        m.d.comb += [buf_r.en.eq(1), buf_r.addr.eq(buf_addr)]

        # --- Bus defaults ----------------------------------------------------------------
        m.d.comb += [axi.arlen.eq(0), axi.arsize.eq(shift), axi.arburst.eq(AxiBurst.INCR),
                     axi.arid.eq(0), axi.awlen.eq(0), axi.awsize.eq(shift),
                     axi.awburst.eq(AxiBurst.INCR), axi.awid.eq(0), axi.wlast.eq(1),
                     axi.araddr.eq(Cat(Const(0, shift), (addr >> shift) + word)),
                     axi.awaddr.eq(Cat(Const(0, shift), (addr >> shift) + word)),
                     axil.araddr.eq(addr), axil.awaddr.eq(addr), axil.wdata.eq(arg),
                     axil.wstrb.eq(0xF)]
        aw_done = Signal()
        w_done = Signal()
        # The AXI4 handshake signals come straight from registers (set on entering the state
        # that waits for the handshake, cleared by it), not from the state decode.
        ar_pend, aw_pend, w_pend, b_pend = (Signal(name=n) for n in (
            "ar_pend", "aw_pend", "w_pend", "b_pend"))
        m.d.comb += [axi.arvalid.eq(ar_pend), axi.rready.eq(r_pend), axi.awvalid.eq(aw_pend),
                     axi.wvalid.eq(w_pend), axi.bready.eq(b_pend)]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += [ar_pend.eq(0), r_pend.eq(1)]
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += r_pend.eq(0)
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += aw_pend.eq(0)
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += w_pend.eq(0)
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += b_pend.eq(0)
        bus_error = Signal()
        last_word = Signal()                 # word is the transfer's last bus word
        m.d.comb += last_word.eq(word + 1 == n_words)
        # The same, registered: fresh in MEM_READ_DATA, which word never changes into.
        last_read = Signal()
        m.d.sync += last_read.eq(last_word)
        strb = Signal(B)                     # MEM_WRITE: the word's byte strobes
        # The strobes of the transfer's first and last words (registered: addr and count
        # are set long before).
        strb_first, strb_last = Signal(B), Signal(B)
        end_lane = (offset + count)[:shift]
        m.d.sync += [strb_first.eq((Const((1 << B) - 1, B) << offset)[:B]),
                     strb_last.eq(Mux(end_lane != 0, ((Const(1, B + 1) << end_lane) - 1)[:B],
                                      (1 << B) - 1))]
        last = Signal()                      # MEM_WRITE: ... and whether it is the last
        # The write beat's fields whatever the state (wvalid is a register of its own), so the
        # buffer's data and the strobes reach the memory's write registers with no state
        # decode on the way.
        m.d.comb += [axi.wstrb.eq(strb), axi.wdata.eq(buf_r.data)]

        # A frame state giving up (in_frame is high exactly in those states): the TIMEOUT reply
        # is started here rather than from each state, so the reply's inputs do not decode them.
        frame_timeout = timed_out & in_frame & ~take
        with m.If(frame_timeout):
            m.d.sync += [in_frame.eq(0), listening.eq(0), status.eq(Status.TIMEOUT),
                         reply_len.eq(0), reply_go.eq(1)]

        with m.FSM():
            # HUNT, then one state per frame field (PAYLOAD takes ``length`` bytes); a frame
            # that stops arriving goes to REPLY (the TIMEOUT reply itself: frame_timeout).
            frame.add_states(m, mem_count, settle, after="SETTLE", timeout_state="REPLY")
            with m.State("SETTLE"):
                # count (set by the last byte), then end, then the verdicts.
                m.d.sync += settle.eq(settle + 1)
                with m.If(settle == 2):
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [word.eq(0), aw_done.eq(0), w_done.eq(0), bus_error.eq(0),
                             reply_info.eq(is_cmd[Command.INFO])]
                with m.If(check_fail):
                    reply(check_status)
                with m.Else():
                    with m.If(is_cmd[Command.INFO]):
                        reply(Status.OK, 8)
                    with m.Elif(is_cmd[Command.READ_REG]):
                        m.next = "REG_READ"
                    with m.Elif(is_cmd[Command.WRITE_REG]):
                        m.next = "REG_WRITE"
                    with m.Elif(is_cmd[Command.READ_MEM]):
                        m.d.sync += ar_pend.eq(1)
                        m.next = "MEM_READ_ADDR"
                    with m.Elif(is_cmd[Command.WRITE_MEM]):
                        m.next = "MEM_WRITE_FETCH"

            # --- Registers ---
            with m.State("REG_READ"):
                m.d.comb += [axil.arvalid.eq(~aw_done), axil.rready.eq(1)]
                with m.If(axil.arvalid & axil.arready):
                    m.d.sync += aw_done.eq(1)
                with m.If(axil.rvalid):
                    reply(Mux(axil.rresp[1], Status.BUS_ERROR, Status.OK),
                          Mux(axil.rresp[1], 0, 4))
            with m.State("REG_WRITE"):
                m.d.comb += [axil.awvalid.eq(~aw_done), axil.wvalid.eq(~w_done),
                             axil.bready.eq(1)]
                with m.If(axil.awvalid & axil.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(axil.wvalid & axil.wready):
                    m.d.sync += w_done.eq(1)
                with m.If(axil.bvalid):
                    reply(Mux(axil.bresp[1], Status.BUS_ERROR, Status.OK))

            # --- Memory reads: one beat per word into the buffer ---
            with m.State("MEM_READ_ADDR"):
                with m.If(axi.arready):
                    m.next = "MEM_READ_DATA"
            with m.State("MEM_READ_DATA"):
                with m.If(axi.rvalid):
                    m.d.sync += [word.eq(word + 1), bus_error.eq(bus_error | axi.rresp[1])]
                    with m.If(last_read):
                        m.next = "MEM_END"
                    with m.Else():
                        m.d.sync += ar_pend.eq(1)
                        m.next = "MEM_READ_ADDR"
            with m.State("MEM_END"):
                with m.If(bus_error):
                    reply(Status.BUS_ERROR)
                with m.Else():
                    reply(Status.OK, Mux(read_mem, count, 0))

            # --- Memory writes: one beat per word from the buffer ---
            with m.State("MEM_WRITE_FETCH"):
                # The word's strobes and "last" are worked out here, registered for MEM_WRITE;
                # the buffer's address takes the word.
                lo = Mux(word == 0, strb_first, (1 << B) - 1)
                hi = Mux(last_word, strb_last, (1 << B) - 1)
                m.d.sync += [strb.eq(lo & hi), last.eq(last_word)]
                m.next = "MEM_WRITE_READ"
            with m.State("MEM_WRITE_READ"):
                # The buffer reads the word; its data shows in MEM_WRITE.
                m.d.sync += [aw_pend.eq(1), w_pend.eq(1), b_pend.eq(1)]
                m.next = "MEM_WRITE"
            with m.State("MEM_WRITE"):
                with m.If(axi.bvalid):
                    m.d.sync += [word.eq(word + 1), bus_error.eq(bus_error | axi.bresp[1])]
                    with m.If(last):
                        m.next = "MEM_END"
                    with m.Else():
                        m.next = "MEM_WRITE_FETCH"

            with m.State("REPLY"):
                with m.If(reply_end):
                    m.d.sync += listening.eq(1)
                    m.next = "HUNT"

        # (Last, as reply_go's clear came after the request machine's sets before the split.)
        with m.If(reply_sm.started):
            m.d.sync += reply_go.eq(0)

        return m
