"""cocotb module: the simulation side of a Verilator session (``octet.host.verilator_session``).

One cocotb test, :func:`host_session`, sets up the accelerator with its memory inside the
design (``octet.hdl.accelerator_sim``: nothing in Python runs per clock cycle), wraps it in a
:class:`~octet.sim.fast_device.FastVerilatorDevice`, connects to the host process through the
Unix socket named by ``$OCTET_SESSION_SOCKET`` and runs :func:`serve` as a blocking host job,
``await bridge(serve)(device, connection)``. The configuration is ``$OCTET_CONFIG`` (JSON of
:class:`~octet.config.AcceleratorConfig` fields).

While :func:`serve` waits for the next request the simulation is paused; a request runs on the
VerilatorDevice, whose register accesses and waits re-enter the simulator. Requests are
pickled tuples (``multiprocessing.connection``):

* ``("read_reg", reg)``, ``("write_reg", reg, value)``, ``("read_mem", addr, n)``,
  ``("write_mem", addr, data)``, ``("wait", cycles)``: the device primitives;
* ``("call", function, args, kwargs)``: host code, ``function(device, *args, **kwargs)``,
  run here next to the RTL (``function`` is pickled by reference, so it is imported here);
* ``("close",)``: end the session (so does the host closing the socket).

While a ``call`` runs, host code may report progress with ``device.emit(value)``: each sends
``("emit", value)`` ahead of the reply (the host hands it to the callback of
``VerilatorSession.call_streaming``, or drops it). The transformer runtime streams generated
bytes this way.

The first message goes the other way: ``("hello", pid)`` names the simulation process, which
the host terminates when it has to stop without waiting (an interrupt during a request).

Each request gets one reply, ``("ok", value)`` or ``("error", exception)``; an exception that
cannot be pickled is replaced by a ``DeviceError`` naming it, and every exception carries the
simulation side's traceback as a note. Used only through ``VerilatorSession``; tested by
``tests/test_host_session.py`` (:func:`serve` on the golden device) and the Verilator-marked
test of ``tests/test_cli.py``.
"""

import json
import os
import pickle
import traceback
from contextlib import suppress
from multiprocessing.connection import Client

import cocotb
from cocotb.task import bridge

from octet.config import AcceleratorConfig
from octet.host.device import DeviceError
from octet.sim.fast_device import start_fast_device

__all__ = ["host_session", "serve"]


def _portable(exc):
    """``exc`` with the traceback as a note, or a DeviceError naming it if it cannot pickle."""
    note = "raised in the Verilator simulation:\n" + "".join(traceback.format_exception(exc))
    try:
        exc.add_note(note)
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any failure to round-trip means "send a stand-in"
        stand_in = DeviceError(f"{type(exc).__name__}: {exc}")
        stand_in.add_note(note)
        return stand_in


def _call(device, function, args, kwargs):
    return function(device, *args, **kwargs)


def serve(device, connection):
    """Answer requests from the host process on ``connection`` until it closes the session."""
    def emit(value):
        with suppress(OSError):          # the host is gone; the reply will fail too
            connection.send(("emit", value))

    device.emit = emit
    handlers = {
        "read_reg": device.read_reg, "write_reg": device.write_reg,
        "read_mem": device.read_mem, "write_mem": device.write_mem, "wait": device.wait,
        "call": lambda function, args, kwargs: _call(device, function, args, kwargs),
    }
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return                       # the host went away
        except Exception as exc:  # noqa: BLE001 - e.g. a function that cannot be imported here
            connection.send(("error", _portable(DeviceError(
                f"the simulation cannot load the request ({type(exc).__name__}: {exc}); "
                f"call() takes module-level functions of importable modules"))))
            continue
        if request[0] == "close":
            connection.send(("ok", None))
            return
        try:
            reply = ("ok", handlers[request[0]](*request[1:]))
        except Exception as exc:  # noqa: BLE001 - every error goes back to the host
            reply = ("error", _portable(exc))
        try:
            connection.send(reply)
        except OSError:
            return                       # the host closed the session without waiting
        except Exception as exc:  # noqa: BLE001 - a result that cannot be pickled
            connection.send(("error", _portable(DeviceError(
                f"the result of {request[0]} cannot be sent to the host: {exc}"))))


@cocotb.test()
async def host_session(dut):
    """Serve one host process until it closes the session."""
    config = AcceleratorConfig(**json.loads(os.environ.get("OCTET_CONFIG", "{}")))
    device = await start_fast_device(dut, config)
    connection = Client(os.environ["OCTET_SESSION_SOCKET"], family="AF_UNIX")
    # The host stops this process with a signal if it cannot wait for a request to finish.
    connection.send(("hello", os.getpid()))
    try:
        await bridge(serve)(device, connection)
    finally:
        connection.close()
