"""Amaranth-simulator tests of the AXI bus blocks: AxiReader, AxiWriter and CsrBank.

Reference: a small AXI4 slave memory written here as async testbenches (one per channel,
random ready/valid stalls, random response latency, SLVERR/DECERR at chosen addresses). It
checks the protocol rules the masters must keep (AxVALID and payload held until AxREADY, INCR
bursts of the bus size that stay inside a 4 KiB page, WLAST on exactly the last beat) and
records every burst, which is compared with a Python transcription of the splitting rule
(``octet.sim.axi_models.split_bursts``). Read data is compared with the memory's bytes,
written memory with a bytearray updated by the same strobes. CsrBank is driven by a
testbench AXI-Lite master and checked against the access table in its module docstring.
"""

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Fragment

from octet.hdl.axi import AxiLiteSignature, AxiSignature
from octet.hdl.axi_reader import AxiReader
from octet.hdl.axi_writer import AxiWriter
from octet.hdl.axil_csr import CsrBank
from octet.sim.amaranth_streams import run_with_watchdog, stream_get, stream_put
from octet.sim.axi_models import split_bursts

PAGE = 4096


def run(dut, *testbenches, background=(), timeout=50_000):
    run_with_watchdog(dut, *testbenches, background=background, timeout=timeout)


def elaborated(component):
    """The component, after checking that it elaborates (which also marks it as used)."""
    Fragment.get(component, None)
    return component


def stall_fn(rng, probability):
    if not probability:
        return None
    return lambda: int(rng.integers(1, 4)) if rng.random() < probability else 0


class SlaveMemory:
    """AXI4 slave memory as testbenches, with random stalls, latency and error responses.

    ``bad`` maps bus-word addresses to the RRESP/BRESP they answer (2 = SLVERR, 3 = DECERR).
    """

    def __init__(self, bus, data_width, rng, stall=0.3, latency=(1, 8), size=1 << 16, bad=None):
        self.bus, self.rng, self.stall, self.latency = bus, rng, stall, latency
        self.bytes = data_width // 8
        self.mem = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        self.bad = dict(bad or {})
        self.reads, self.writes, self.w_beats, self.b_due = deque(), deque(), deque(), deque()
        self.ar_log, self.aw_log = [], []
        self.in_flight = self.max_in_flight = 0

    def _stalled(self):
        return self.rng.random() < self.stall

    def _delay(self):
        return int(self.rng.integers(self.latency[0], self.latency[1] + 1))

    def _word(self, addr):
        return int.from_bytes(self.mem[addr:addr + self.bytes], "little")

    def _check(self, kind, addr, length, size, burst):
        assert burst == 1, f"{kind} burst type {burst}, expected INCR"
        assert 1 << size == self.bytes, f"{kind} size {size} for a {self.bytes}-byte bus"
        assert addr % self.bytes == 0, f"{kind} address {addr:#x} not bus-aligned"
        assert addr // PAGE == (addr + (length + 1) * self.bytes - 1) // PAGE, \
            f"{kind} burst at {addr:#x} of {length + 1} beats crosses 4 KiB"

    async def _address(self, ctx, kind, valid, ready, fields, accept):
        held, cycle = None, 0
        while True:
            ctx.set(ready, not self._stalled())
            _, _, v, r, *payload = await ctx.tick().sample(valid, ready, *fields)
            cycle += 1
            if held is not None:
                assert v and tuple(payload) == held, f"{kind} changed before {kind}READY"
            held = None
            if v and r:
                self._check(kind, *payload[:4])
                accept(cycle, *payload[:2])
            elif v:
                held = tuple(payload)

    async def ar_channel(self, ctx):
        b = self.bus

        def accept(cycle, addr, length):
            self.ar_log.append((addr, length + 1))
            self.reads.append((cycle + self._delay(), addr, length))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

        await self._address(ctx, "AR", b.arvalid, b.arready,
                            (b.araddr, b.arlen, b.arsize, b.arburst, b.arid), accept)

    async def r_channel(self, ctx):
        b, cycle, burst = self.bus, 0, None
        while True:
            if not ctx.get(b.rvalid):  # AXI: once RVALID is up it stays until RREADY
                if burst is None and self.reads and self.reads[0][0] <= cycle:
                    _, addr, length = self.reads.popleft()
                    burst = [addr, length, 0]
                if burst is not None and not self._stalled():
                    addr, length, index = burst
                    word = addr + index * self.bytes
                    ctx.set(b.rdata, self._word(word))
                    ctx.set(b.rresp, self.bad.get(word, 0))
                    ctx.set(b.rlast, index == length)
                    ctx.set(b.rvalid, 1)
            _, _, valid, ready = await ctx.tick().sample(b.rvalid, b.rready)
            cycle += 1
            if valid and ready:
                ctx.set(b.rvalid, 0)
                burst[2] += 1
                if burst[2] > burst[1]:
                    burst = None
                    self.in_flight -= 1

    async def aw_channel(self, ctx):
        b = self.bus

        def accept(cycle, addr, length):
            self.aw_log.append((addr, length + 1))
            self.writes.append((addr, length))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

        await self._address(ctx, "AW", b.awvalid, b.awready,
                            (b.awaddr, b.awlen, b.awsize, b.awburst, b.awid), accept)

    async def w_channel(self, ctx):
        b = self.bus
        while True:
            ctx.set(b.wready, not self._stalled())
            _, _, valid, ready, *beat = await ctx.tick().sample(
                b.wvalid, b.wready, b.wdata, b.wstrb, b.wlast)
            if valid and ready:
                self.w_beats.append(tuple(beat))

    async def b_channel(self, ctx):
        b, cycle = self.bus, 0
        while True:
            if self.writes and len(self.w_beats) > self.writes[0][1]:
                addr, length = self.writes.popleft()
                resp = 0
                for index in range(length + 1):
                    data, strb, last = self.w_beats.popleft()
                    assert last == (index == length), \
                        f"WLAST {last} on beat {index} of a {length + 1}-beat burst"
                    word = addr + index * self.bytes
                    for lane in range(self.bytes):
                        if strb >> lane & 1:
                            self.mem[word + lane] = data >> (8 * lane) & 0xFF
                    resp = max(resp, self.bad.get(word, 0))
                self.b_due.append((cycle + self._delay(), resp))
            if not ctx.get(b.bvalid) and self.b_due and self.b_due[0][0] <= cycle \
                    and not self._stalled():
                ctx.set(b.bresp, self.b_due.popleft()[1])
                ctx.set(b.bvalid, 1)
            _, _, valid, ready = await ctx.tick().sample(b.bvalid, b.bready)
            cycle += 1
            if valid and ready:
                ctx.set(b.bvalid, 0)
                self.in_flight -= 1

    def read_testbenches(self):
        return [self.ar_channel, self.r_channel]

    def write_testbenches(self):
        return [self.aw_channel, self.w_channel, self.b_channel]


# Requests for the read and write tests: a single beat, a page crossing, > 256 beats from a
# page's middle, exactly 256 at a page start, back-to-back short ones.
def request_mix(bus_bytes, rng):
    fixed = [(0x0000, 1), (0x1000 - 3 * bus_bytes, 7), (0x2000 + 40 * bus_bytes, 300),
             (0x4000, 256), (0x5000, 2), (0x5010 // bus_bytes * bus_bytes, 1)]
    for _ in range(6):
        fixed.append((int(rng.integers(0, 0x8000 // bus_bytes)) * bus_bytes,
                      int(rng.integers(1, 80))))
    return fixed


@pytest.mark.parametrize("data_width", [32, 64, 128])
def test_reader_random(data_width, seed):
    """Requests crossing pages, > 256 beats and back-to-back with tags, all channels stalling."""
    rng = np.random.default_rng(seed + data_width)
    dut = AxiReader(data_width=data_width, max_outstanding=4)
    bus_bytes = data_width // 8
    slave = SlaveMemory(dut.m_axi, data_width, rng, bad={0x5000 + bus_bytes: 2, 0x5000: 3})
    requests = [(addr, beats, i % 4) for i, (addr, beats) in enumerate(request_mix(bus_bytes, rng))]
    beats_seen = []

    async def producer(ctx):
        for addr, beats, tag in requests:
            await stream_put(ctx, dut.i_req, {"addr": addr, "beats": beats, "tag": tag},
                             stall_fn(rng, 0.2))

    async def consumer(ctx):
        for addr, beats, tag in requests:
            for i in range(beats):
                beat = await stream_get(ctx, dut.o_data, stall_fn(rng, 0.3))
                word = addr + i * bus_bytes
                assert beat.data == slave._word(word), f"request {addr:#x}+{i}: data"
                assert beat.last == (i == beats - 1), f"request {addr:#x}+{i}: last"
                assert beat.tag == tag, f"request {addr:#x}+{i}: tag"
                assert beat.error == (word in slave.bad), f"request {addr:#x}+{i}: error"
        for _ in range(3):
            await ctx.tick()
        assert not ctx.get(dut.busy)
        assert sum(beats_seen) == sum(b for _, b, _ in requests)

    async def beat_counter(ctx):
        async for _, _, beat in ctx.tick().sample(dut.beat):
            beats_seen.append(beat)

    run(dut, producer, consumer, background=[*slave.read_testbenches(), beat_counter])
    expect = [b for addr, beats, _ in requests for b in split_bursts(addr, beats, bus_bytes)]
    assert slave.ar_log == expect
    assert 1 < slave.max_in_flight <= 4


def test_reader_full_speed(seed):
    """No stalls, fixed latency: a 1024-beat read streams at one beat per cycle."""
    rng = np.random.default_rng(seed)
    dut = AxiReader(max_outstanding=2)
    slave = SlaveMemory(dut.m_axi, 64, rng, stall=0, latency=(4, 4))
    stamps = []

    async def producer(ctx):
        await stream_put(ctx, dut.i_req, {"addr": 0x800, "beats": 1024, "tag": 1})

    async def consumer(ctx):
        ctx.set(dut.o_data.ready, 1)
        cycle = 0
        while len(stamps) < 1024:
            _, _, valid, payload = await ctx.tick().sample(dut.o_data.valid, dut.o_data.payload)
            cycle += 1
            if valid:
                assert payload.data == slave._word(0x800 + 8 * len(stamps))
                stamps.append(cycle)

    run(dut, producer, consumer, background=slave.read_testbenches())
    # Four bursts (to the page end, then 256-beat pieces) with two in flight: no gaps after
    # the first beat, apart from a little slack.
    assert stamps[-1] - stamps[0] <= 1023 + 8, f"1024 beats took {stamps[-1] - stamps[0]} cycles"


@pytest.mark.parametrize("data_width", [32, 64])
def test_writer_random(data_width, seed):
    """Random strobes land, WLAST per burst, page and 256-beat splits, done in order."""
    rng = np.random.default_rng(seed + 7 * data_width)
    dut = AxiWriter(data_width=data_width, max_outstanding=3)
    bus_bytes = data_width // 8
    slave = SlaveMemory(dut.m_axi, data_width, rng)
    expect = bytearray(slave.mem)
    requests = request_mix(bus_bytes, rng)
    beats = []
    for addr, count in requests:
        for i in range(count):
            data = int.from_bytes(rng.integers(0, 256, bus_bytes, dtype=np.uint8).tobytes(),
                                  "little")
            strb = int(rng.integers(0, 1 << bus_bytes))
            beats.append((data, strb))
            for lane in range(bus_bytes):
                if strb >> lane & 1:
                    expect[addr + i * bus_bytes + lane] = data >> (8 * lane) & 0xFF

    async def requester(ctx):
        for addr, count in requests:
            await stream_put(ctx, dut.i_req, {"addr": addr, "beats": count}, stall_fn(rng, 0.2))

    async def data_source(ctx):
        for data, strb in beats:
            await stream_put(ctx, dut.i_data, {"data": data, "strb": strb}, stall_fn(rng, 0.3))

    async def completions(ctx):
        for _ in requests:
            done = await stream_get(ctx, dut.o_done, stall_fn(rng, 0.3))
            assert done.error == 0
        for _ in range(3):
            await ctx.tick()
        assert not ctx.get(dut.busy)

    run(dut, requester, data_source, completions, background=slave.write_testbenches())
    assert slave.mem == expect
    assert slave.aw_log == [b for a, n in requests for b in split_bursts(a, n, bus_bytes)]
    assert 1 < slave.max_in_flight <= 3


def test_writer_errors(seed):
    """A request with one failing burst reports error; the ones around it do not."""
    rng = np.random.default_rng(seed)
    dut = AxiWriter()
    slave = SlaveMemory(dut.m_axi, 64, rng, bad={0x0ff8: 2, 0x3000: 3})
    # The second request spans two bursts: the first gets SLVERR, the second OKAY.
    requests = [(0x0800, 4, 0), (0x0ff8, 3, 1), (0x2000, 2, 0), (0x3000, 1, 1), (0x3008, 1, 0)]

    async def requester(ctx):
        for addr, count, _ in requests:
            await stream_put(ctx, dut.i_req, {"addr": addr, "beats": count})

    async def data_source(ctx):
        for _ in range(sum(n for _, n, _ in requests)):
            await stream_put(ctx, dut.i_data, {"data": 0, "strb": 0xFF}, stall_fn(rng, 0.3))

    async def completions(ctx):
        for addr, _, error in requests:
            done = await stream_get(ctx, dut.o_done, stall_fn(rng, 0.5))
            assert done.error == error, f"request at {addr:#x}"

    run(dut, requester, data_source, completions, background=slave.write_testbenches())


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_argument_checks():
    with pytest.raises(TypeError, match=r"AXI data width must be an integer from 8 to 1024, "
                                        r"not 4"):
        AxiReader(data_width=4)
    with pytest.raises(ValueError, match=r"AXI data width must be a power of two, not 48"):
        AxiWriter(data_width=48)
    with pytest.raises(TypeError, match=r"AXI address width must be an integer from 12 to 64, "
                                        r"not 8"):
        AxiSignature(addr_width=8)
    with pytest.raises(TypeError, match=r"Outstanding burst limit must be an integer from 1 "
                                        r"to 256, not 0"):
        AxiReader(max_outstanding=0)
    with pytest.raises(TypeError, match=r"Tag width must be an integer from 1 to 16, not 0"):
        AxiReader(tag_width=0)
    with pytest.raises(ValueError, match=r"AXI-Lite data width must be 32 or 64, not 16"):
        AxiLiteSignature(data_width=16)
    writer = elaborated(AxiWriter())
    assert writer.m_axi.signature == AxiSignature(32, 64, 4, read=False)
    assert "rready" not in writer.m_axi.signature.members


# CsrBank ---------------------------------------------------------------------------------

CSR_MAP = [("ident", 0x00, "ro"), ("ctrl", 0x04, "wo"), ("base", 0x08, "rw", 0x1234_5678),
           ("irq", 0x0C, "w1c"), ("limit", 0x40, "rw")]


async def lite_write(ctx, bus, addr, value, strb=0xF, order="together", b_stall=0):
    """AXI-Lite write with AW before W, W before AW, or both at once; returns BRESP."""
    async def put(valid, ready, fields):
        for signal, v in fields:
            ctx.set(signal, v)
        ctx.set(valid, 1)
        await ctx.tick().until(ready)
        ctx.set(valid, 0)

    aw = (bus.awvalid, bus.awready, [(bus.awaddr, addr)])
    w = (bus.wvalid, bus.wready, [(bus.wdata, value), (bus.wstrb, strb)])
    if order == "aw_first":
        await put(*aw)
        await ctx.tick().repeat(2)
        await put(*w)
    elif order == "w_first":
        await put(*w)
        await ctx.tick().repeat(2)
        await put(*aw)
    else:
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wdata, value)
        ctx.set(bus.wstrb, strb)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        pending = {"aw", "w"}
        while pending:
            _, _, awr, wr = await ctx.tick().sample(bus.awready, bus.wready)
            if awr and "aw" in pending:
                ctx.set(bus.awvalid, 0)
                pending.discard("aw")
            if wr and "w" in pending:
                ctx.set(bus.wvalid, 0)
                pending.discard("w")
    for _ in range(b_stall):
        await ctx.tick()
    ctx.set(bus.bready, 1)
    (resp,) = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    return resp


async def lite_read(ctx, bus, addr):
    """AXI-Lite read; returns (RDATA, RRESP)."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    data, resp = await ctx.tick().sample(bus.rdata, bus.rresp).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    return data, resp


def strobe_monitor(dut, events):
    """Background testbench logging (name, "w", w_data) / (name, "r") for every strobe."""
    ports = [(name, kind) for name, _, access, _ in dut.registers
             for kind in ("w", "r") if hasattr(dut, f"{name}_{kind}_stb")]

    async def monitor(ctx):
        stbs = [dut.port(n, f"{k}_stb") for n, k in ports]
        datas = [dut.port(n, "w_data") if k == "w" else dut.port(n, "r_stb") for n, k in ports]
        async for _, _, *values in ctx.tick().sample(*stbs, *datas):
            for (name, kind), stb, d in zip(ports, values[:len(ports)], values[len(ports):],
                                            strict=True):
                if stb:
                    events.append((name, "w", d) if kind == "w" else (name, "r"))

    return monitor


@pytest.mark.parametrize("order", ["together", "aw_first", "w_first"])
def test_csr_bank(order):
    """RW reset values and byte strobes, RO/WO/W1C behaviour, unmapped -> SLVERR, strobes."""
    dut = CsrBank(CSR_MAP)
    events = []

    async def host(ctx):
        bus = dut.bus
        ctx.set(dut.ident_r_data, 0x0C7E7)
        ctx.set(dut.irq_r_data, 0b101)
        assert await lite_read(ctx, bus, 0x00) == (0x0C7E7, 0)
        assert ctx.get(dut.base_value) == 0x1234_5678
        assert await lite_read(ctx, bus, 0x08) == (0x1234_5678, 0)
        assert await lite_write(ctx, bus, 0x08, 0xAABB_CCDD, 0b0101, order) == 0
        assert ctx.get(dut.base_value) == 0x12BB_56DD
        assert await lite_read(ctx, bus, 0x08) == (0x12BB_56DD, 0)
        assert await lite_write(ctx, bus, 0x40, 0xFFFF_FFFF, 0xF, order, b_stall=3) == 0
        assert await lite_read(ctx, bus, 0x40) == (0xFFFF_FFFF, 0)
        # RO: the write is refused, nothing changes, nothing is strobed.
        assert await lite_write(ctx, bus, 0x00, 0xDEAD, 0xF, order) == 2
        assert await lite_read(ctx, bus, 0x00) == (0x0C7E7, 0)
        # WO: strobes carry the written bytes (unstrobed ones as zero); reads return 0.
        assert await lite_write(ctx, bus, 0x04, 0x1122_3344, 0b1100, order) == 0
        assert await lite_read(ctx, bus, 0x04) == (0, 0)
        # W1C: the design sees which bits to clear.
        assert await lite_read(ctx, bus, 0x0C) == (0b101, 0)
        assert await lite_write(ctx, bus, 0x0C, 0b100, 0xF, order) == 0
        # Unmapped addresses answer SLVERR instead of hanging.
        assert await lite_write(ctx, bus, 0x10, 1, 0xF, order) == 2
        assert await lite_read(ctx, bus, 0x44) == (0, 2)
        assert await lite_read(ctx, bus, 0xFC) == (0, 2)
        # Low address bits are ignored.
        assert await lite_read(ctx, bus, 0x0B) == (0x12BB_56DD, 0)
        await ctx.tick().repeat(2)

    run(dut, host, background=[strobe_monitor(dut, events)], timeout=2000)
    assert events == [
        ("ident", "r"), ("base", "r"), ("base", "w", 0x12BB_56DD), ("base", "r"),
        ("limit", "w", 0xFFFF_FFFF), ("limit", "r"), ("ident", "r"),
        ("ctrl", "w", 0x1122_0000), ("irq", "r"), ("irq", "w", 0b100), ("base", "r"),
    ]


def test_csr_read_strobe_is_the_sampling_cycle():
    """``r_stb`` pulses in the very cycle ``r_data`` is sampled: a value that changes every
    cycle, latched on the strobe, equals what the read returns (the 64-bit counter pattern)."""
    dut = CsrBank([("count", 0x00, "ro"), ("other", 0x04, "rw")])
    latched = []

    async def counter(ctx):
        value = 0
        async for _, _, stb in ctx.tick().sample(dut.count_r_stb):
            if stb:
                latched.append(value)
            value = (value + 7) & 0xFFFF_FFFF
            ctx.set(dut.count_r_data, value)

    async def host(ctx):
        for _ in range(3):
            data, resp = await lite_read(ctx, dut.bus, 0x00)
            assert resp == 0
            assert latched and data == latched[-1]
            await ctx.tick().repeat(len(latched))   # a different phase each time
        assert len(latched) == 3

    run(dut, host, background=[counter], timeout=2000)


def test_csr_back_to_back():
    """AW and W presented continuously: every write lands once, responses in order."""
    dut = CsrBank([("a", 0, "rw"), ("b", 4, "wo")])
    events = []

    async def host(ctx):
        for value in range(1, 6):
            assert await lite_write(ctx, dut.bus, 4 * (value % 2), value) == 0
        assert await lite_read(ctx, dut.bus, 0) == (4, 0)

    run(dut, host, background=[strobe_monitor(dut, events)], timeout=2000)
    assert events == [("b", "w", 1), ("a", "w", 2), ("b", "w", 3), ("a", "w", 4),
                      ("b", "w", 5), ("a", "r")]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_csr_argument_checks():
    with pytest.raises(ValueError, match=r"CSR register x access must be one of ro, rw, wo, "
                                         r"w1c, not 'rc'"):
        CsrBank([("x", 0, "rc")])
    with pytest.raises(TypeError, match=r"CSR register x address must be a multiple of 4, "
                                        r"not 2"):
        CsrBank([("x", 2, "ro")])
    with pytest.raises(ValueError, match=r"CSR register y address 0x0 is used twice"):
        CsrBank([("x", 0, "ro"), ("y", 0, "rw")])
    with pytest.raises(ValueError, match=r"CSR register name 'x' is used twice"):
        CsrBank([("x", 0, "ro"), ("x", 4, "rw")])
    with pytest.raises(ValueError, match=r"CSR register x address 0x100 does not fit in 8 "
                                         r"address bits"):
        CsrBank([("x", 0x100, "ro")])
    with pytest.raises(ValueError, match=r"CSR register x is ro; only rw registers have a "
                                         r"reset value"):
        CsrBank([("x", 0, "ro", 5)])
    with pytest.raises(TypeError, match=r"CSR register name must be an identifier, not '1x'"):
        CsrBank([("1x", 0, "ro")])
    with pytest.raises(ValueError, match=r"CSR bank needs at least one register"):
        CsrBank([])
    ports = elaborated(CsrBank([("r", 0, "ro"), ("w", 4, "rw", 3)])).signature.members
    assert set(ports) == {"bus", "r_r_data", "r_r_stb", "w_w_data", "w_w_stb", "w_value",
                          "w_r_stb"}
