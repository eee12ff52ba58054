"""The UART bridge's reply machine: sends ``0xA5 status seq len16 payload crc16`` byte by byte.

:class:`UartReply` is the second of the bridge's two state machines (:mod:`.uart_bridge`
holds the request machine), kept apart so that neither one's state decode covers the other's
states. The request machine sets the status, length and payload, raises ``start`` and waits
for ``done``; the reply machine loads one byte at a time into an output register (the stream's
payload and valid come straight from flip-flops), folds each sent byte into the reply's
CRC-16 a cycle later, and takes each payload byte (READ_MEM's out of the bridge's buffer,
the others out of ``word``) in four cycles: address, read, capture, send.

Tested through the bridge by ``tests/test_uart_bridge.py`` (every reply, including every
error reply and unaligned READ_MEM) and ``tests/test_soc_uart.py``.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.host.uart_protocol import CRC_INIT, SYNC_REPLY, Status

from .crc16 import crc16_step

__all__ = ["UartReply"]


class UartReply(wiring.Component):
    """Sends one reply frame of the bridge's protocol per ``start``.

    ``status``, ``seq``, ``length``, ``word``, ``read_mem`` and ``offset`` must hold still from
    ``start`` until ``reply_end``. The outputs named like registers (``reply_end``,
    ``buf_pos``, ``replying``) are flip-flops, named as before the reply machine had its own
    module (timing reports are searched by these names).

    Parameters
    ----------
    bus_bytes : int
        Width of the bridge's buffer words in bytes (4, 8 or 16).

    Ports
    -----
    start : In(1)
        A reply is due; held until ``started``.
    started : Out(1)
        The machine takes the reply this cycle (the owner of ``start`` clears it).
    reply_end : Out(1)
        Pulses in the cycle after the reply's last byte is loaded.
    status : In(3)
        The reply's status byte (:class:`~octet.host.uart_protocol.Status`).
    seq : In(8)
        The request's sequence number, echoed.
    length : In(16)
        Payload bytes.
    word : In(64)
        The payload of a reply that is not READ_MEM's (INFO, READ_REG), least significant
        byte first.
    read_mem : In(1)
        The payload comes from the buffer: ``length`` bytes from byte ``offset``.
    offset : In(log2(bus_bytes))
        The first payload byte's lane in the buffer's first word.
    buf_data : In(data.ArrayLayout(8, bus_bytes))
        The bridge's buffer read port data (two cycles after ``buf_pos`` addresses it).
    buf_pos : Out(17)
        The buffer byte of the next payload byte (``buf_pos >> log2(bus_bytes)`` is the word).
    replying : Out(1)
        From ``start`` being taken to the last byte: the buffer read port is the machine's.
    error : Out(1)
        Pulses when an error reply (status other than OK) starts.
    o_stream : Out(stream.Signature(8))
        Reply bytes (to a :class:`~octet.hdl.uart.UartTx`).
    """

    def __init__(self, bus_bytes=8):
        if bus_bytes not in (4, 8, 16):
            raise TypeError(f"UART reply bus width must be 4, 8 or 16 bytes, not {bus_bytes!r}")
        self._bus = bus_bytes
        super().__init__({
            "start": In(1), "started": Out(1), "reply_end": Out(1),
            "status": In(3), "seq": In(8), "length": In(16), "word": In(64),
            "read_mem": In(1), "offset": In((bus_bytes - 1).bit_length()),
            "buf_data": In(data.ArrayLayout(8, bus_bytes)),
            "buf_pos": Out(17), "replying": Out(1), "error": Out(1),
            "o_stream": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        shift = (self._bus - 1).bit_length()
        tx = self.o_stream
        status, seq, reply_len, reply_word = self.status, self.seq, self.length, self.word
        read_mem = self.read_mem

        # The reply byte waits in a register (tx_valid, tx_byte) until taken: each reply state
        # loads one byte when the register is free, so nothing in the state machine waits
        # for the consumer's ready in the same cycle.
        sent = Signal(16)                    # payload bytes sent
        tx_crc = Signal(16)
        tx_byte = Signal(8)
        tx_valid = Signal()
        fetched = Signal(2)                  # 2: buf_data holds the word,
                                             # 3: mem_byte holds the byte to send
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

        buf_pos = self.buf_pos               # sent + offset, kept in step with sent

        to_send = Signal(16)                 # reply payload bytes still to send

        reply_end = self.reply_end
        replying = self.replying
        # Compares on counters, registered: each is used a cycle or more after its counter
        # last changed (reply_len before REPLY_LEN1, to_send two cycles after a load).
        reply_empty, last_to_send = Signal(), Signal()
        m.d.sync += [reply_empty.eq(reply_len == 0), last_to_send.eq(to_send == 1)]

        m.d.sync += reply_end.eq(0)
        with m.FSM(name="reply_fsm"):
            with m.State("REPLY_IDLE"):
                with m.If(self.start):
                    # (start itself is cleared by its owner: started.)
                    m.d.comb += self.started.eq(1)
                    m.d.sync += [to_send.eq(reply_len), sent.eq(0),
                                 buf_pos.eq(self.offset), fetched.eq(0), replying.eq(1)]
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
                # Four cycles per byte: the buffer's (registered) address takes buf_pos, the
                # buffer reads, the byte (from what the buffer shows, or from ``word``) goes
                # into a register, and is sent, so the byte multiplexers end in that register
                # rather than in the output register.
                load = Signal()
                m.d.comb += load.eq(free & (fetched == 3))
                with m.If(fetched == 2):
                    m.d.sync += mem_byte.eq(Mux(read_mem, self.buf_data[buf_pos[:shift]],
                                                reply_word.word_select(sent[:3], 8)))
                with m.If(fetched != 3):
                    m.d.sync += fetched.eq(fetched + 1)
                with m.If(load):
                    send(mem_byte)
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
