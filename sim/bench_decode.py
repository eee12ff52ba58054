"""The decode benchmark: ``octet run`` on a 32-byte prompt plus 64 tokens, golden and RTL.

Each measurement is the real command line, ``octet run --prompt PROMPT --max-tokens 64
--json`` (greedy) in a child process, timed from outside; its JSON line gives the counters'
figures (time to first token, time per output token, roofline fraction, bytes per token).
The Verilator model is built first (and timed) so that the run's wall time is the generation
itself plus starting the simulation, what a user with a built model waits for. Used by
``octet bench decode`` (:mod:`octet.commands.bench`).
"""

import json
import subprocess
import sys
import time

__all__ = ["PROMPT", "NEW_TOKENS", "run_decode_once", "ensure_model"]

#: The benchmark's prompt: 32 bytes of Python, as in ``docs/runtime.md``.
PROMPT = "class Parser(object):\n    def __"
#: Bytes generated after the prompt.
NEW_TOKENS = 64


def ensure_model():
    """Build (or find) the default Verilator session model; return the seconds it took."""
    from octet.config import AcceleratorConfig
    from octet.host.verilator_session import accelerator_model
    start = time.monotonic()
    accelerator_model(AcceleratorConfig(), progress=True)
    return time.monotonic() - start


def run_decode_once(backend, host_requant=False, prompt=PROMPT, new_tokens=NEW_TOKENS):
    """Run ``octet run`` once; return its JSON report with ``outer_wall_s`` added.

    Raises
    ------
    RuntimeError
        The command failed (its stderr's tail is in the message).
    """
    command = [sys.executable, "-m", "octet", "run", "--prompt", prompt,
               "--max-tokens", str(new_tokens), "--backend", backend, "--json"]
    if host_requant:
        command.append("--host-requant")
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["outer_wall_s"] = wall
    return report
