"""Cached Verilator builds of Amaranth designs, run through ``cocotb_tools.runner``.

A build is keyed by a hash of everything that goes into it (the generated Verilog, the top
module name, the Verilator and cocotb versions), so a second test run or CLI call with the same
design reuses the compiled model instead of spending a minute in the C++ compiler. Builds live
in ``$OCTET_CACHE_DIR`` (default ``~/.cache/octet/verilator``), one folder per hash, guarded by
a file lock so parallel runs never build the same model twice at once. The cache is kept
under a size limit, least recently used builds first (:mod:`octet.sim.build_cache`).

Visibility. cocotb's runner makes *every* signal public (``--public-flat-rw``), which keeps
Verilator from optimising anything away and puts all combinational logic into the region it
re-evaluates at every ``eval()`` (several per clock cycle): on the accelerator that costs most
of the simulation time. A build given ``public=`` instead makes only the named signals
visible (a Verilator control file), for models whose testbench touches nothing else (the
fast in-design-memory model: the top-level ports and the memory array).
"""

import fcntl
import hashlib
import os
import sys
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from amaranth.back import verilog

from octet.sim.build_cache import MARKER, cache_limit_bytes, mark_used, prune
from octet.toolchain import use_bundled_verilator

__all__ = ["VerilatorModel", "build_model", "cache_root"]


def cache_root():
    """Folder holding all cached builds."""
    base = os.environ.get("OCTET_CACHE_DIR")
    if base:
        return Path(base).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "octet" / "verilator"


@contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class VerilatorModel:
    """A compiled Verilator model of one design, ready to run cocotb test modules.

    Parameters
    ----------
    build_dir : Path
        The cached build folder.
    toplevel : str
        Verilog top module name.
    """

    def __init__(self, build_dir, toplevel):
        self.build_dir = Path(build_dir)
        self.toplevel = toplevel

    def run(self, test_module, extra_env=None, test_dir=None, testcase=None, seed=None,
            log_file=None):
        """Run a cocotb test module on the model; return the path of its results XML.

        Every run gets its own ``test_dir`` (a fresh temporary folder unless given) so that
        concurrent runs on one cached model do not overwrite each other's results.
        """
        from cocotb_tools.runner import get_runner

        use_bundled_verilator()
        runner = get_runner("verilator")
        test_dir = Path(test_dir) if test_dir else self.build_dir / "runs" / f"{os.getpid()}"
        test_dir.mkdir(parents=True, exist_ok=True)
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        env.update(extra_env or {})
        try:
            return runner.test(test_module=test_module, hdl_toplevel=self.toplevel,
                               hdl_toplevel_lang="verilog", build_dir=self.build_dir,
                               test_dir=test_dir, extra_env=env, testcase=testcase,
                               seed=seed, log_file=log_file)
        except SystemExit:
            # cocotb's runner exits when a test fails; the results file says which.
            results = test_dir / "results.xml"
            if not results.exists():
                raise
            return results


def _runner(public_flat):
    """cocotb's Verilator runner, without ``--public-flat-rw`` unless ``public_flat``."""
    from cocotb_tools.runner import Verilator

    class _Runner(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            if not public_flat:
                commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return _Runner()


def _control_file(public):
    """Verilator control-file text making the ``(module, signal)`` pairs readable/writable."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{module}" -var "{var}"' for module, var in public]
    return "\n".join(lines) + "\n"


def build_model(component, toplevel, progress=True, ports=None, extra_verilog=(),
                public=None):
    """Convert an Amaranth component to Verilog and compile it with Verilator, cached.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design.
    toplevel : str
        Name of the Verilog top module.
    progress : bool
        Print a line to stderr when a (slow) build actually happens.
    extra_verilog : sequence of str
        Verilog texts of modules the design instantiates (simulation models).
    public : sequence of (str, str), optional
        ``(module, signal)`` name patterns the testbench may access; everything else is
        private to Verilator (much faster). Default: every signal is public.

    Returns
    -------
    VerilatorModel
    """
    use_bundled_verilator()
    # No source-location attributes: moving a line of Python must not force a rebuild.
    text = verilog.convert(component, name=toplevel, ports=ports, emit_src=False)
    text = "\n".join([text, *extra_verilog])
    key = hashlib.sha256("\0".join([
        text, toplevel, version("verilator"), version("cocotb"), "octet-build-1",
        *([] if public is None else ["public", repr(sorted(public))]),
    ]).encode()).hexdigest()[:16]
    limit = cache_limit_bytes()          # (checked before a long build, not after)
    build_dir = cache_root() / f"{toplevel}-{key}"
    marker = build_dir / MARKER
    if marker.exists():
        mark_used(build_dir)
        return VerilatorModel(build_dir, toplevel)
    with _locked(cache_root() / f"{toplevel}-{key}.lock"):
        if marker.exists():
            mark_used(build_dir)
            return VerilatorModel(build_dir, toplevel)
        build_dir.mkdir(parents=True, exist_ok=True)
        source = build_dir / f"{toplevel}.v"
        source.write_text(text)
        args = ["-Wno-fatal", "-O3"]
        if public is not None:
            control = build_dir / "public.vlt"
            control.write_text(_control_file(public))
            args.append(str(control))
        log = build_dir / "build.log"
        if progress:
            print(f"octet: compiling Verilator model {toplevel} ({build_dir.name}); "
                  f"first time only, log in {log}", file=sys.stderr, flush=True)
        start = time.monotonic()
        runner = _runner(public is None)
        # The wheel's verilated.mk was configured with an empty precompiled-header include
        # flag, which breaks every model large enough to be split into several C++ files;
        # a make command-line override (through MAKEFLAGS) supplies the flag g++ needs.
        saved = os.environ.get("MAKEFLAGS")
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include"]))
        try:
            runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                         build_args=args, log_file=log)
        except (SystemExit, Exception) as exc:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"Verilator build of {toplevel} failed ({exc}); "
                               f"end of {log}:\n{tail}") from None
        finally:
            if saved is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = saved
        seconds = time.monotonic() - start
        (build_dir / "build_seconds").write_text(f"{seconds:.2f}\n")
        marker.write_text("ok\n")
        if progress:
            print(f"octet: compiled {toplevel} in {seconds:.0f} s", file=sys.stderr,
                  flush=True)
    removed = prune(cache_root(), limit, keep=[build_dir])
    if removed and progress:
        freed = sum(size for _, size in removed) / 1e9
        print(f"octet: removed {len(removed)} least recently used Verilator builds "
              f"({freed:.1f} GB) from {cache_root()} to keep it under "
              f"{limit / 1e9:g} GB ($OCTET_CACHE_MAX_GB)", file=sys.stderr, flush=True)
    return VerilatorModel(build_dir, toplevel)
