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

Tested by ``tests/test_uart_bridge.py`` (Amaranth simulator: every command, unaligned
accesses, every error reply, no write on a bad frame) and ``tests/test_soc_uart.py``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.host.uart_protocol import (
    CRC_INIT,
    MAX_DATA,
    PROTOCOL_VERSION,
    SYNC_REPLY,
    SYNC_REQUEST,
    Command,
    Status,
    crc16_update,
)

from .axi import AxiBurst, AxiLiteSignature, AxiSignature

__all__ = ["UartBridge", "crc16_step"]


def _crc16_taps():
    """For each bit of the next CRC register, the (crc bits, byte bits) it XORs.

    CRC update is linear over GF(2), so feeding each single input bit through the reference
    :func:`~octet.host.uart_protocol.crc16_update` gives the whole function.
    """
    taps = [([], []) for _ in range(16)]
    for i in range(16):
        out = crc16_update(1 << i, 0)
        for j in range(16):
            if out >> j & 1:
                taps[j][0].append(i)
    for i in range(8):
        out = crc16_update(0, 1 << i)
        for j in range(16):
            if out >> j & 1:
                taps[j][1].append(i)
    return taps


_TAPS = _crc16_taps()


def crc16_step(crc, byte):
    """The CRC-16/CCITT-FALSE register after ``byte``: one XOR of a few bits per output bit,
    derived from :func:`octet.host.uart_protocol.crc16_update` (no deep expression)."""
    return Cat(*(Cat(*(crc[i] for i in c), *(byte[i] for i in b)).xor()
                 for c, b in _TAPS))


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

    @staticmethod
    def _frame_byte(m, state, after, env):
        """What the request state ``state`` does with the byte it takes."""
        byte, received, length = env["byte"], env["received"], env["length"]
        if state == "COMMAND":
            m.d.sync += env["cmd"].eq(byte)
        elif state == "SEQ":
            m.d.sync += env["seq"].eq(byte)
        elif state == "LEN0":
            m.d.sync += length[:8].eq(byte)
        elif state == "LEN1":
            m.d.sync += [length[8:].eq(byte), env["to_go"].eq(Cat(length[:8], byte))]
            with m.If(Cat(length[:8], byte) == 0):
                m.next = "CRC0"
            with m.Else():
                m.next = after
            return
        elif state == "PAYLOAD":
            m.d.sync += [received.eq(received + 1), env["to_go"].eq(env["to_go"] - 1)]
            # data_index and in_data follow received (see elaborate).
            data_index, in_data = env["data_index"], env["in_data"]
            offset_m3 = Cat(byte[:env["shift"]], Const(0, 17 - env["shift"])) + (1 << 17) - 3
            m.d.sync += data_index.eq(Mux(env["rcv_zero"], offset_m3[:17], data_index + 1))
            with m.If(env["rcv_three"]):
                m.d.sync += in_data.eq(1)
            with m.If(env["rcv_full"]):
                m.d.sync += in_data.eq(0)
            with m.If(env["to_go_one"]):
                # in_data is only set within the payload (the buffer's write enable uses it
                # without the state).
                m.d.sync += in_data.eq(0)
                m.next = after
            return
        elif state == "CRC1":
            count = env["count"]
            m.d.sync += [env["in_frame"].eq(0), count.eq(env["mem_count"][:len(count)]),
                         env["settle"].eq(0), env["listening"].eq(0)]
        m.next = after

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

        cmd = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        received = Signal(16)        # payload bytes received so far
        to_go = Signal(16)           # payload bytes still to come
        crc = Signal(16)
        addr = Signal(32)
        arg = Signal(32)             # WRITE_REG value; READ_MEM count in [0:16]
        status = Signal(3)
        count = Signal(range(MAX_DATA + 1))   # memory bytes of the request
        idle = Signal(range(self._timeout + 1))
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
        # A byte taken from rx is registered (take, byte) and handled in the next cycle, so
        # the handshake does not run on into the frame logic. rx.ready comes from registers:
        # set while hunting for a frame or taking its bytes (HUNT to CRC1, listening), low in
        # the cycle a byte is handled (the state moves on in it) and when a timeout is due.
        take = Signal()                        # a byte taken last cycle is handled now
        byte = Signal(8)
        crc_in = crc16_step(crc, byte)
        listening = Signal(init=1)
        timed_out = Signal()
        m.d.comb += rx.ready.eq(listening & ~take & ~timed_out)
        m.d.sync += [take.eq(rx.valid & rx.ready), byte.eq(rx.payload)]
        # Compares on the payload counters, registered: a counter changes only when a byte is
        # handled, and the next byte is handled two cycles later at the earliest.
        rcv_zero, rcv_three, rcv_full, rcv_addr, rcv_arg, to_go_one = (
            Signal(name=n) for n in ("rcv_zero", "rcv_three", "rcv_full", "rcv_addr", "rcv_arg",
                                     "to_go_one"))
        m.d.sync += [rcv_zero.eq(received == 0), rcv_three.eq(received == 3),
                     rcv_full.eq(received == 3 + MAX_DATA), rcv_addr.eq(received < 4),
                     rcv_arg.eq((received >= 4) & (received < 8)), to_go_one.eq(to_go == 1)]

        # The idle timer runs from the sync byte until the frame's last byte.
        in_frame = Signal()
        with m.If(take | ~in_frame):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        # Registered (a frame times out one cycle after the limit; it is ~20 ms anyway).
        m.d.sync += timed_out.eq(in_frame & (idle == self._timeout) & ~take)

        # Payload: address bytes 0..3, argument bytes 4..7; for WRITE_MEM bytes 4.. are data.
        # received - 4 + offset and "received in [4, 4 + MAX_DATA)", kept in registers (both
        # only matter once received >= 4, when the offset is known).
        data_index = Signal(17)
        in_data = Signal()
        with m.If(take & rcv_addr):
            m.d.sync += addr.word_select(received[:2], 8).eq(byte)
        with m.If(take & rcv_arg):
            m.d.sync += arg.word_select(received[:2], 8).eq(byte)
        write_data = take & in_data
        # The buffer is written by payload bytes, or by memory read beats while r_pend (both
        # registers: no state decode in the write enables).
        r_pend = Signal(name="r_pend")
        r_beat = axi.rvalid & r_pend
        lanes = Mux(write_data, 1 << data_index[:shift], 0)
        m.d.comb += [buf_w.addr.eq(Mux(r_pend, word, data_index >> shift)),
                     buf_w.data.eq(Mux(r_pend, axi.rdata, byte.replicate(B))),
                     buf_w.en.eq(Mux(r_beat, (1 << B) - 1, lanes))]

        # --- Checks (in the cycle after the last CRC byte) -------------------------------
        expected = {Command.INFO: 0, Command.READ_REG: 4, Command.WRITE_REG: 8,
                    Command.READ_MEM: 6}
        known = Signal()
        length_ok = Signal()
        m.d.comb += [known.eq(Cat(*is_cmd.values()).any()),
                     length_ok.eq(Cat(*(is_cmd[c] & (length == n) for c, n in expected.items()),
                                      is_cmd[Command.WRITE_MEM] & (length >= 5) &
                                      (length <= 4 + MAX_DATA)).any())]
        mem_count = Mux(read_mem, arg[:16], length - 4)
        count_ok = ~read_mem | ((arg[:16] != 0) & (arg[:16] <= MAX_DATA))
        reg_cmd = is_cmd[Command.READ_REG] | is_cmd[Command.WRITE_REG]
        mem_cmd = is_cmd[Command.READ_MEM] | is_cmd[Command.WRITE_MEM]
        reg_ok = (addr[:2] == 0) & (addr[self._reg_width:] == 0) if self._reg_width < 32 \
            else (addr[:2] == 0)
        # The checks are registered in two steps (the end address, then every verdict) while
        # the frame waits in SETTLE, so CHECK decides from flip-flops.
        end = Signal(34)
        m.d.sync += end.eq(addr + count)
        crc_bad, cmd_bad, length_bad, addr_bad = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [crc_bad.eq(crc != 0), cmd_bad.eq(~known),
                     length_bad.eq(~length_ok | ~count_ok),
                     addr_bad.eq((reg_cmd & ~reg_ok) | (mem_cmd & (end > self._mem)))]
        settle = Signal(range(3))
        # The verdicts' outcome, registered once more (they are set by the second SETTLE
        # cycle, these by CHECK), so CHECK's reply does not run through their priority chain.
        check_fail = Signal()
        check_status = Signal.like(status)
        m.d.sync += [check_fail.eq(crc_bad | cmd_bad | length_bad | addr_bad),
                     check_status.eq(Mux(crc_bad, Status.CRC, Mux(
                         cmd_bad, Status.COMMAND, Mux(length_bad, Status.LENGTH,
                                                      Status.ADDRESS))))]

        # --- Reply bytes -----------------------------------------------------------------
        # The reply byte waits in a register (tx_valid, tx_byte) until taken: each reply state
        # loads one byte when the register is free, so nothing in the state machine waits
        # for the consumer's ready in the same cycle.
        reply_len = Signal(16)
        reply_word = Signal(64)              # INFO / READ_REG payload
        sent = Signal(16)                    # payload bytes sent
        tx_crc = Signal(16)
        tx_byte = Signal(8)
        tx_valid = Signal()
        fetched = Signal(2)                  # READ_MEM: 1: buf_r.data holds the word,
                                             # 2: mem_byte holds the byte to send
        mem_byte = Signal(8)
        m.d.comb += [tx.payload.eq(tx_byte), tx.valid.eq(tx_valid)]
        with m.If(tx.valid & tx.ready):
            m.d.sync += tx_valid.eq(0)
        free = ~tx_valid
        # The CRC takes a loaded byte in the cycle after (from tx_byte); the CRC bytes wait
        # for it.
        crc_due = Signal()
        m.d.sync += crc_due.eq(0)
        with m.If(crc_due):
            m.d.sync += tx_crc.eq(crc16_step(tx_crc, tx_byte))

        def send(value, crc_out=True):
            m.d.sync += [tx_byte.eq(value), tx_valid.eq(1), crc_due.eq(crc_out)]

        buf_pos = Signal(17)                 # sent + offset, kept in step with sent

        to_send = Signal(16)                 # reply payload bytes still to send

        # The reply is sent by a second state machine (below), so that neither one's state
        # decode has to cover the other's states: the request machine sets status and length,
        # starts it and waits in REPLY for its end.
        reply_go = Signal()
        reply_end = Signal()

        def reply(code, n=0):
            m.d.sync += [status.eq(code), reply_len.eq(n), reply_go.eq(1)]
            m.next = "REPLY"

        # The buffer's read port reads all the time (its data is only used in MEM_WRITE and
        # REPLY_DATA, each a cycle after addressing it), at buf_pos while replying.
        replying = Signal()
        m.d.comb += [buf_r.en.eq(1), buf_r.addr.eq(Mux(replying, buf_pos >> shift, word))]
        # Compares on counters, registered: each is used a cycle or more after its counter
        # last changed (reply_len before REPLY_LEN1, to_send two cycles after a load).
        reply_empty, last_to_send = Signal(), Signal()
        m.d.sync += [reply_empty.eq(reply_len == 0), last_to_send.eq(to_send == 1)]

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

        # A frame state giving up (in_frame is high exactly in those states): the TIMEOUT reply
        # is started here rather than from each state, so the reply's inputs do not decode them.
        frame_timeout = timed_out & in_frame & ~take
        with m.If(frame_timeout):
            m.d.sync += [in_frame.eq(0), listening.eq(0), status.eq(Status.TIMEOUT),
                         reply_len.eq(0), reply_go.eq(1)]

        with m.FSM():
            with m.State("HUNT"):
                with m.If(take & (byte == SYNC_REQUEST)):
                    m.d.sync += [crc.eq(CRC_INIT), received.eq(0), in_frame.eq(1), in_data.eq(0),
                                 addr.eq(0), arg.eq(0), seq.eq(0)]
                    m.next = "COMMAND"
            # Frame bytes: each state takes one byte (PAYLOAD takes ``length``), or gives up
            # with TIMEOUT when the frame stops arriving.
            for state, after in (("COMMAND", "SEQ"), ("SEQ", "LEN0"), ("LEN0", "LEN1"),
                                 ("LEN1", "PAYLOAD"), ("PAYLOAD", "CRC0"), ("CRC0", "CRC1"),
                                 ("CRC1", "SETTLE")):
                with m.State(state):
                    with m.If(take):
                        m.d.sync += crc.eq(crc_in)
                        self._frame_byte(m, state, after, locals())
                    with m.Elif(timed_out):
                        m.next = "REPLY"     # the TIMEOUT reply itself: frame_timeout
            with m.State("SETTLE"):
                # count (set by the last byte), then end, then the verdicts.
                m.d.sync += settle.eq(settle + 1)
                with m.If(settle == 2):
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [word.eq(0), aw_done.eq(0), w_done.eq(0), bus_error.eq(0)]
                with m.If(check_fail):
                    reply(check_status)
                with m.Else():
                    with m.If(is_cmd[Command.INFO]):
                        m.d.sync += reply_word.eq(
                            PROTOCOL_VERSION | B << 8 | MAX_DATA << 16 | self._clock << 32)
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
                    m.d.sync += reply_word.eq(axil.rdata)
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
                # The word's strobes and "last" are worked out here, registered for MEM_WRITE.
                lo = Mux(word == 0, strb_first, (1 << B) - 1)
                hi = Mux(last_word, strb_last, (1 << B) - 1)
                m.d.sync += [aw_pend.eq(1), w_pend.eq(1), b_pend.eq(1), strb.eq(lo & hi),
                             last.eq(last_word)]
                m.next = "MEM_WRITE"
            with m.State("MEM_WRITE"):
                m.d.comb += [axi.wstrb.eq(strb), axi.wdata.eq(buf_r.data)]
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

        m.d.sync += reply_end.eq(0)
        with m.FSM(name="reply_fsm"):
            with m.State("REPLY_IDLE"):
                with m.If(reply_go):
                    m.d.sync += [reply_go.eq(0), to_send.eq(reply_len), sent.eq(0),
                                 buf_pos.eq(offset), fetched.eq(0), replying.eq(1)]
                    m.next = "REPLY_SYNC"
            with m.State("REPLY_SYNC"):
                m.d.comb += self.error.eq(free & (status != Status.OK))
                with m.If(free):
                    send(SYNC_REPLY, crc_out=False)
                    m.d.sync += tx_crc.eq(CRC_INIT)
                    m.next = "REPLY_STATUS"
            for state, value, after in (("REPLY_STATUS", status, "REPLY_SEQ"),
                                        ("REPLY_SEQ", seq, "REPLY_LEN0"),
                                        ("REPLY_LEN0", reply_len[:8], "REPLY_LEN1")):
                with m.State(state):
                    with m.If(free):
                        send(value)
                        m.next = after
            with m.State("REPLY_LEN1"):
                with m.If(free):
                    send(reply_len[8:])
                    m.next = "REPLY_DATA"
                    with m.If(reply_empty):
                        m.next = "REPLY_CRC0"
            with m.State("REPLY_DATA"):
                load = Signal()
                with m.If(read_mem):
                    # Three cycles per byte: address the buffer, take the byte from what it
                    # shows, then send it.
                    m.d.comb += load.eq(free & (fetched == 2))
                    with m.If(fetched == 1):
                        m.d.sync += mem_byte.eq(buf_r.data[buf_pos[:shift]])
                    with m.If(fetched != 2):
                        m.d.sync += fetched.eq(fetched + 1)
                    with m.If(load):
                        send(mem_byte)
                with m.Else():
                    m.d.comb += load.eq(free)
                    with m.If(load):
                        send(reply_word.word_select(sent[:3], 8))
                with m.If(load):
                    m.d.sync += [sent.eq(sent + 1), buf_pos.eq(buf_pos + 1),
                                 to_send.eq(to_send - 1), fetched.eq(0)]
                    with m.If(last_to_send):
                        m.next = "REPLY_CRC0"
            with m.State("REPLY_CRC0"):
                with m.If(free & ~crc_due):
                    send(tx_crc[8:], crc_out=False)
                    m.next = "REPLY_CRC1"
            with m.State("REPLY_CRC1"):
                with m.If(free):
                    send(tx_crc[:8], crc_out=False)
                    m.d.sync += [reply_end.eq(1), replying.eq(0)]
                    m.next = "REPLY_IDLE"

        return m
