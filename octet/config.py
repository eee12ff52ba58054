"""Configuration of one generated accelerator, shared by the RTL, the golden model and host.

An :class:`AcceleratorConfig` fixes everything the three must agree on: array size,
scratchpad and accumulator depths, bus width and the device-memory window. The RTL exposes it
in its identity registers (``CONFIG0..2``) so the host can check it talks to the design it
compiled for.
"""

from dataclasses import dataclass

__all__ = ["AcceleratorConfig", "ConfigError"]


class ConfigError(ValueError):
    """An accelerator parameter is out of range; the message names it."""


def _power_of_two(x):
    return x > 0 and x & (x - 1) == 0


@dataclass(frozen=True)
class AcceleratorConfig:
    """Parameters of a generated accelerator.

    Parameters
    ----------
    rows, cols : int
        Systolic array size R x C (1 to 64 each).
    input_rows : int
        Rows of the input scratchpad, each R int8 values (an activation vector).
    weight_rows : int
        Rows of the weight scratchpad, each C int8 values (a weight-tile row).
    acc_rows : int
        Rows of the accumulator memory, each C int32 values.
    bus_bytes : int
        AXI data width in bytes (4, 8 or 16).
    mem_bytes : int
        Size of the device-memory window [0, mem_bytes) that DMA may touch (reset value of
        the ``MEM_LIMIT`` register).
    store_param_cache : int
        Requantization records (one per output channel) the store unit keeps on chip: an int8
        STORE of at most this many channels reads its table once (checking it, then serving
        the requantizer from the copy); a wider one reads it a second time, one n-tile at a
        time (0 to 4096).
    param_slots : int
        Parameter slots: requantization records kept on chip across instructions and
        programs (``param_src`` KEEP / SLOTS of STORE and KV_APPEND), so that a model's
        tables cross the bus once instead of once per use (0 to 8192; default 5120, the demo
        transformer's 4,624 fixed records with room to spare).
    """

    rows: int = 8
    cols: int = 8
    input_rows: int = 4096
    weight_rows: int = 4096
    acc_rows: int = 2048
    bus_bytes: int = 8
    mem_bytes: int = 1 << 24
    store_param_cache: int = 256
    param_slots: int = 5120

    def __post_init__(self):
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 1 <= v <= 64:
                raise ConfigError(f"array {name} must be an integer from 1 to 64, not {v!r}")
        for name in ("input_rows", "weight_rows", "acc_rows"):
            v = getattr(self, name)
            if not isinstance(v, int) or not _power_of_two(v) or not 16 <= v <= 65536:
                raise ConfigError(f"{name} must be a power of two from 16 to 65536, not {v!r}")
        if self.bus_bytes not in (4, 8, 16):
            raise ConfigError(f"bus_bytes must be 4, 8 or 16, not {self.bus_bytes!r}")
        if not isinstance(self.mem_bytes, int) or not 4096 <= self.mem_bytes <= 1 << 31 or \
                self.mem_bytes % self.bus_bytes:
            raise ConfigError(f"mem_bytes must be a multiple of the bus width from 4096 to "
                              f"2**31, not {self.mem_bytes!r}")
        if not isinstance(self.store_param_cache, int) or \
                not 0 <= self.store_param_cache <= 4096:
            raise ConfigError(f"store_param_cache must be an integer from 0 to 4096, not "
                              f"{self.store_param_cache!r}")
        if isinstance(self.param_slots, bool) or not isinstance(self.param_slots, int) or \
                not 0 <= self.param_slots <= 8192:
            raise ConfigError(f"param_slots must be an integer from 0 to 8192, not "
                              f"{self.param_slots!r}")
        if self.acc_rows < self.rows or self.input_rows < self.rows or \
                self.weight_rows < self.rows:
            raise ConfigError("scratchpads must hold at least one R x C tile")

    @property
    def bus_bits(self):
        return self.bus_bytes * 8
