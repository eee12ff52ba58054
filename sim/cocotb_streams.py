"""cocotb drivers for Amaranth ``lib.stream`` ports (``<name>__payload/__valid/__ready``).

Shaped like cocotbext-axi's stream models: a :class:`StreamSource` and a :class:`StreamSink`
with queues, each running one coroutine per clock, and an optional ``pause`` callable that is
asked every cycle whether to idle (random stalls, i.e. backpressure on every stream).

Timing convention (checked against Verilator through cocotb 2.1): values read right after
``RisingEdge`` are those the design saw before that edge, so a handshake is detected as
``valid and ready`` sampled at the edge, and anything written after the edge applies to the
next cycle.
"""

from collections import deque

import cocotb
from cocotb.triggers import Event, RisingEdge

from octet.bitfields import pack_fields, unpack_fields

__all__ = ["StreamSource", "StreamSink", "random_pause"]


def random_pause(rng, probability):
    """A pause callable that idles with the given probability (0 = never)."""
    if probability <= 0:
        return None
    return lambda: rng.random() < probability


class StreamSource:
    """Drives beats into a stream input of the design.

    Parameters
    ----------
    dut : cocotb handle
        Top level.
    name : str
        Stream port name (``w_stream`` for ``w_stream__payload`` etc.).
    layout : amaranth Layout
        Payload layout, to pack dicts of leaf values.
    pause : callable or None
        Asked once per cycle before offering a beat; True idles that cycle.
    """

    def __init__(self, dut, name, layout, pause=None):
        self._clk = dut.clk
        self._payload = getattr(dut, f"{name}__payload")
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._layout = layout
        self.pause = pause
        self._queue = deque()
        self._current = None
        self._idle = Event()
        self._idle.set()
        self.sent = 0
        self._valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, values):
        """Queue one beat (a dict of layout leaf names to ints, or an already packed int)."""
        word = values if isinstance(values, int) else pack_fields(self._layout, values)
        self._queue.append(word)
        self._idle.clear()

    async def wait_idle(self):
        """Wait until every queued beat has been accepted."""
        await self._idle.wait()

    def clear(self):
        """Drop queued beats and the one on offer (as after a reset)."""
        self._queue.clear()
        self._current = None
        self._valid.value = 0
        self._idle.set()

    async def _run(self):
        while True:
            await RisingEdge(self._clk)
            if self._current is not None and self._valid.value and self._ready.value:
                self._current = None
                self.sent += 1
            if self._current is None:
                if self._queue and not (self.pause and self.pause()):
                    self._current = self._queue.popleft()
                    self._payload.value = self._current
                    self._valid.value = 1
                else:
                    self._valid.value = 0
                    if not self._queue:
                        self._idle.set()


class StreamSink:
    """Accepts beats from a stream output of the design and unpacks them.

    Parameters
    ----------
    dut, name, layout, pause
        As for :class:`StreamSource`; ``pause`` True deasserts ``ready`` for a cycle.
    """

    def __init__(self, dut, name, layout, pause=None):
        self._clk = dut.clk
        self._payload = getattr(dut, f"{name}__payload")
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._layout = layout
        self.pause = pause
        self._queue = deque()
        self._arrived = Event()
        self.received = 0
        self._ready.value = 0
        self._task = cocotb.start_soon(self._run())

    def clear(self):
        self._queue.clear()
        self._arrived.clear()

    async def recv(self):
        """The next beat as a dict of leaf values (waits for it)."""
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        return self._queue.popleft()

    def __len__(self):
        return len(self._queue)

    async def _run(self):
        while True:
            await RisingEdge(self._clk)
            if self._ready.value and self._valid.value:
                self._queue.append(unpack_fields(self._layout, int(self._payload.value)))
                self.received += 1
                self._arrived.set()
            self._ready.value = 0 if (self.pause and self.pause()) else 1
