"""Seed sweeps: one synthesis, several nextpnr placements, the fastest kept.

nextpnr's placement depends on its seed, and on the 8x8 system one netlist routes anywhere
between about 75 and 87 MHz (docs/fpga.md), as vendor flows' seed sweeps show for their tools.
:func:`run_seed_sweep` runs Yosys once in the build folder, then nextpnr once per seed in a
folder of its own (``seed<N>/``, a copy of the netlist and constraints: the YoWASP tools see
only their working folder), ``jobs`` at a time, and copies the best placement's results (the
highest Fmax; the earlier seed on a tie) back into the build folder, where
:func:`~octet.host.fpga_build.build_bitstream` packs its bitstream.

Tested by ``tests/test_bitstream.py`` (seed parsing, and a two-seed build of the smallest
system).
"""

import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["parse_seeds", "run_seed_sweep", "pack_script", "MAX_SEEDS"]

#: Most placements one sweep runs.
MAX_SEEDS = 64


def parse_seeds(text):
    """Seeds from ``"3"``, ``"1,4,9"``, ``"1-4"`` or a mix (``"1-3,7"``), in order, each once.

    Raises ValueError naming the part that is not a seed or a range of seeds.
    """
    seeds = []
    for part in str(text).split(","):
        found = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not found:
            raise ValueError(f"nextpnr seed {part.strip()!r} is not a number or a range "
                             f"N-M (e.g. --seed 1-4 or --seed 1,3,7)")
        first = int(found[1])
        last = int(found[2]) if found[2] else first
        if last < first:
            raise ValueError(f"nextpnr seed range {part.strip()!r} is empty (write it low-high)")
        if last >= 2 ** 31:
            raise ValueError(f"nextpnr seed {last} is out of range (0 to 2**31 - 1)")
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"at most {MAX_SEEDS} nextpnr seeds per build, not more "
                             f"(from {part.strip()!r})")
        seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    return tuple(seeds)


def _script_parts(build_dir, name):
    """Amaranth's build script split into its preamble and its yosys, nextpnr and ecppack
    command lines."""
    lines = (build_dir / f"build_{name}.sh").read_text().splitlines()
    commands = {}
    for var in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"):
        matching = [ln for ln in lines if ln.startswith(f'"${var}"')]
        if len(matching) != 1:
            raise RuntimeError(f"the build script in {build_dir} has {len(matching)} "
                               f"{var} commands, not one")
        commands[var] = matching[0]
    preamble = [ln for ln in lines if not ln.startswith('"$')]
    return preamble, commands


def run_seed_sweep(build_dir, env, say, seeds, jobs, after_synth=None):
    """Synthesise in ``build_dir``, place and route once per seed, keep the best.

    ``after_synth(build_dir)``, when given, runs between synthesis and placement (a
    floorplan: :func:`~octet.host.fpga_floorplan.apply_floorplan`).

    Returns ``(best_seed, {seed: fmax_mhz})``. The best seed's ``top.tim``,
    ``top.report.json`` and ``top.config`` are copied into ``build_dir``; each seed's logs stay
    in ``build_dir/seed<N>/``. A seed whose run fails stops the others and raises its error.
    """
    from .fpga_build import _NAME, _parse_report, _run_plan

    preamble, commands = _script_parts(build_dir, _NAME)
    (build_dir / f"synth_{_NAME}.sh").write_text("\n".join([*preamble, commands["YOSYS"]]) +
                                                 "\n")
    say(f"octet: one synthesis, then nextpnr with seeds {', '.join(map(str, seeds))} "
        f"({jobs} at a time)")
    _run_plan(build_dir, env, say, f"synth_{_NAME}.sh", "synth.log")
    if after_synth is not None:
        after_synth(build_dir)
    cancel = threading.Event()
    lock = threading.Lock()

    def place(seed):
        seed_dir = build_dir / f"seed{seed}"
        if seed_dir.exists():
            shutil.rmtree(seed_dir)
        seed_dir.mkdir()
        for suffix in (".json", ".lpf"):
            shutil.copyfile(build_dir / f"{_NAME}{suffix}", seed_dir / f"{_NAME}{suffix}")
        command = re.sub(r"--seed \d+", f"--seed {seed}", commands["NEXTPNR_ECP5"])
        (seed_dir / f"pnr_{_NAME}.sh").write_text("\n".join([*preamble, command]) + "\n")

        def tell(line):
            with lock:
                say(f"[seed {seed}] {line}")
        try:
            _run_plan(seed_dir, env, tell, f"pnr_{_NAME}.sh", "pnr.log", cancel=cancel)
        except BaseException:
            cancel.set()
            raise
        finally:
            (seed_dir / f"{_NAME}.json").unlink(missing_ok=True)   # a copy, tens of MB
        fmax = _parse_report(seed_dir)[1]
        tell(f"octet: seed {seed} routed, Fmax {fmax:.2f} MHz")
        return fmax

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(place, seed) for seed in seeds]
        wait(futures)
    except BaseException:
        cancel.set()                          # Ctrl-C: stop the placements under way
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception()]
    if errors:
        # The first real failure, not the "cancelled" of the seeds it stopped.
        raise next((e for e in errors if str(e) != "cancelled"), errors[0])
    fmax = {seed: future.result() for seed, future in zip(seeds, futures, strict=True)}
    best = max(seeds, key=lambda s: (fmax[s], -seeds.index(s)))
    for suffix in (".tim", ".report.json", ".config"):
        shutil.copyfile(build_dir / f"seed{best}" / f"{_NAME}{suffix}",
                        build_dir / f"{_NAME}{suffix}")
    return best, fmax


def pack_script(build_dir, name):
    """Write ``pack_<name>.sh``: the build script's ecppack command alone (a sweep's best
    placement, copied into ``build_dir``, to a bitstream)."""
    preamble, commands = _script_parts(build_dir, name)
    (build_dir / f"pack_{name}.sh").write_text("\n".join([*preamble, commands["ECPPACK"]]) +
                                               "\n")
