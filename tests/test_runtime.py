"""The transformer runtime on the accelerator (``octet.host.runtime``): logits bit-identical to
the integer reference with the golden GEMM (prefill, chunked prefill, decode, refill after the
context fills, several array shapes), deterministic sampling, the program builder's tokens,
and the model preparation's errors. The Verilator-marked test generates on the RTL and must
give the golden model's bytes."""

import numpy as np
import pytest

from octet.config import AcceleratorConfig
from octet.host.device import GoldenDevice
from octet.host.devices import accelerator_config, open_device
from octet.host.model_layout import LayoutError, pack_weight
from octet.host.program_builder import ProgramBuilder
from octet.host.runtime import DeviceTransformer, generate_on_device
from octet.host.sampling import Sampler, SamplingError
from octet.isa import Opcode, StoreMode, Target
from octet.quant.integer_reference import InferenceError, IntegerTransformer, golden_gemm
from octet.quant.model_file import ModelFileError
from octet.quant.prepare import prepare_model
from octet.quant.quantize import calibrate, quantize, save_quantized

from .test_quant_integer import TINY, tiny_model


@pytest.fixture(scope="module")
def shipped():
    """The shipped model, quantized as ``octet run`` does."""
    return prepare_model().qmodel


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model()
    calib = np.random.default_rng(1).integers(32, 127, (8, TINY.context))
    return quantize(model, calibrate(model, calib))


def test_shipped_model_prefill_and_decode_are_bit_identical(shipped):
    """Chunked prefill (3 chunks of at most 10) and four decode steps on the golden device
    give exactly the integer reference's logits with the golden GEMM."""
    tokens = list(b"def fib(n):\n    if n < 2:\n")
    runtime = DeviceTransformer(GoldenDevice(timed=False), shipped, max_rows=10)
    reference = IntegerTransformer(shipped, golden_gemm)
    logits, cache = reference.prefill(tokens)
    np.testing.assert_array_equal(runtime.prefill(tokens), logits)
    assert [s.tokens for s in runtime.steps] == [8, 9, 9]
    for token in b"retu":
        np.testing.assert_array_equal(runtime.decode(token), reference.decode(token, cache))
    step = runtime.steps[-1]
    assert step.kind == "decode" and step.programs == 4 * 4 + 1
    assert step.counters["cycles"] > runtime.layout.weight_bytes // 8
    assert step.counters["bytes_read"] > runtime.layout.weight_bytes


@pytest.mark.parametrize("rows,cols,bus,max_rows,host_requant", [
    (8, 8, 8, 5, False), (4, 4, 4, 16, False), (16, 16, 16, 3, False), (8, 4, 16, 7, False),
    (8, 8, 8, 6, True)])
def test_tiny_model_any_array_and_chunking(tiny, rows, cols, bus, max_rows, host_requant):
    config = accelerator_config(rows, cols, bus)
    runtime = DeviceTransformer(GoldenDevice(config, timed=False), tiny, max_rows=max_rows,
                                host_requant=host_requant)
    reference = IntegerTransformer(tiny, golden_gemm)
    tokens = np.random.default_rng(rows * cols).integers(0, 256, 20)
    logits, cache = reference.prefill(tokens[:13])
    np.testing.assert_array_equal(runtime.prefill(tokens[:13]), logits)
    np.testing.assert_array_equal(runtime.forward(tokens[13:17]),
                                  reference.forward(tokens[13:17], cache))
    for t in tokens[17:]:
        np.testing.assert_array_equal(runtime.decode(t), reference.decode(t, cache))


def test_small_scratchpads_up_to_the_full_context(tiny):
    """Scratchpads too small to hold every head's keys at once (they are loaded as they fit)
    and to keep a whole weight op resident; decoding up to the last position stays exact."""
    config = AcceleratorConfig(input_rows=128, weight_rows=256, acc_rows=256)
    runtime = DeviceTransformer(GoldenDevice(config, timed=False), tiny, max_rows=4)
    reference = IntegerTransformer(tiny, golden_gemm)
    tokens = np.random.default_rng(5).integers(0, 256, TINY.context)
    logits, cache = reference.prefill(tokens[:40])
    np.testing.assert_array_equal(runtime.prefill(tokens[:40]), logits)
    for t in tokens[40:]:
        np.testing.assert_array_equal(runtime.decode(t), reference.decode(t, cache))


@pytest.mark.parametrize("param_slots", [0, 300, 5120])
def test_parameter_slots_keep_the_tables_on_chip(tiny, param_slots):
    """The fixed tables that fit the parameter slots are kept by their first STORE and read
    from the slots afterwards (none, some, all of them): the logits stay exact, and a decode
    step reads 16 bytes less per kept record than with no slots."""
    def run(slots):
        config = AcceleratorConfig(param_slots=slots)
        runtime = DeviceTransformer(GoldenDevice(config), tiny, max_rows=8)
        reference = IntegerTransformer(tiny, golden_gemm)
        tokens = np.random.default_rng(3).integers(0, 256, 14)
        logits, cache = reference.prefill(tokens[:10])
        np.testing.assert_array_equal(runtime.prefill(tokens[:10]), logits)
        for t in tokens[10:]:
            np.testing.assert_array_equal(runtime.decode(t), reference.decode(t, cache))
        return runtime

    runtime, plain = run(param_slots), run(0)
    slots = runtime.layout.slots
    assert plain.layout.slots == {}
    kept = sum(runtime.layout._records[name] for name in slots)
    assert kept <= param_slots and (param_slots < 5120 or len(slots) == TINY.n_layer * 5)
    assert param_slots != 300 or 0 < len(slots) < TINY.n_layer * 5
    saved = plain.steps[-1].counters["bytes_read"] - runtime.steps[-1].counters["bytes_read"]
    assert saved == 16 * kept


@pytest.mark.parametrize("temperature,top_k", [(0.0, 0), (0.9, 0)])
def test_generation_past_the_context_equals_the_reference(tiny, temperature, top_k):
    """The tiny model's context is 48: generating 60 bytes refills the cache (twice)."""
    result = generate_on_device(GoldenDevice(timed=False), tiny, b"abc", 60,
                                temperature=temperature, top_k=top_k, seed=7)
    reference = IntegerTransformer(tiny, golden_gemm)
    assert result.tokens == reference.generate(b"abc", 60, temperature, seed=7)
    kinds = [s.kind for s in result.steps]
    assert kinds[0] == "prefill" and "refill" in kinds
    assert kinds.count("decode") + sum(k == "refill" for k in kinds) // 2 == 59


def test_generation_streams_each_byte(tiny):
    seen = []
    result = GoldenDevice(timed=False).call_streaming(
        generate_on_device, seen.append, tiny, b"x = ", 5, temperature=0.5, top_k=3, seed=1)
    assert bytes(v[0] for v in seen) == result.tokens
    assert [v[1] for v in seen] == ["prefill"] + ["decode"] * 4
    again = generate_on_device(GoldenDevice(timed=False), tiny, b"x = ", 5, temperature=0.5,
                               top_k=3, seed=1, stream=False)
    assert again.tokens == result.tokens


def test_sampler():
    logits = np.array([0.0, 3.0, 1.0, 3.0, -2.0])
    assert Sampler()(logits) == 1
    draws = [Sampler(2.0, top_k=2, seed=s)(logits) for s in range(40)]
    assert set(draws) == {1, 3}
    sampler = Sampler(1.5, seed=4)
    first = [sampler(logits) for _ in range(20)]
    again = Sampler(1.5, seed=4)
    assert [again(logits) for _ in range(20)] == first
    for kwargs, message in [({"temperature": -1}, "temperature"),
                            ({"temperature": float("nan")}, "temperature"),
                            ({"top_k": 1.5}, "top_k"), ({"seed": -2}, "seed")]:
        with pytest.raises(SamplingError, match=message):
            Sampler(**kwargs)


def test_bad_input_and_context(tiny):
    runtime = DeviceTransformer(GoldenDevice(timed=False), tiny, max_rows=8)
    with pytest.raises(InferenceError, match="prompt has 49 bytes but the model's context "
                                             "holds 48"):
        runtime.generate(bytes(49), 1)
    with pytest.raises(InferenceError, match="at least one byte"):
        runtime.generate(b"", 1)
    runtime.prefill(np.arange(48))
    with pytest.raises(InferenceError, match="49 positions exceed the context of 48"):
        runtime.decode(1)
    with pytest.raises(InferenceError, match=r"tokens must lie in \[0, 256\)"):
        runtime.prefill([300])


def test_model_that_does_not_fit(shipped):
    small = AcceleratorConfig(mem_bytes=1 << 19)
    with pytest.raises(LayoutError, match="does not fit the accelerator's 524288-byte"):
        DeviceTransformer(GoldenDevice(small), shipped)
    with pytest.raises(LayoutError, match="head dimension 32 must be a multiple of the "
                                          "array's rows \\(64\\)"):
        DeviceTransformer(GoldenDevice(accelerator_config(64, 64)), shipped)


def test_pack_weight_tile_order():
    w = np.arange(12 * 10).reshape(12, 10).astype(np.int8)
    packed = np.frombuffer(pack_weight(w, 4, 4), np.int8).reshape(3, 3, 4, 4)  # nt, kt, r, c
    np.testing.assert_array_equal(packed[1, 2], w[8:12, 4:8])
    np.testing.assert_array_equal(packed[2, 0, :, :2], w[0:4, 8:10])
    assert not packed[2, :, :, 2:].any()


def test_builder_relays_store_to_load():
    """A STORE then a LOAD of its bytes: the builder inserts one relay GEMM, the golden device
    runs it without deadlock and leaves every queue empty, and the data flows."""
    device = GoldenDevice(accelerator_config(4, 4), timed=False)
    device.write_mem(0x800, bytes(range(1, 17)))
    b = ProgramBuilder(device.config, relay_acc_row=device.config.acc_rows - 1)
    b.load(target=Target.INPUT, spad_addr=0, rows=1, row_bytes=4, dram_addr=0x800)
    b.load(target=Target.WEIGHT, spad_addr=0, rows=4, row_bytes=4, dram_addr=0x804,
           dram_stride=4)
    b.gemm(m=1, k_tiles=1, n_tiles=1, acc_addr=0, w_stride=1)
    b.store(mode=StoreMode.INT32, acc_addr=0, rows=1, cols=4, dram_addr=0x900)
    b.load(target=Target.INPUT, spad_addr=4, rows=1, row_bytes=4, dram_addr=0x900)
    b.gemm(m=1, k_tiles=1, n_tiles=1, a_addr=4, acc_addr=4, w_stride=1)
    b.store(mode=StoreMode.INT32, acc_addr=4, rows=1, cols=4, dram_addr=0x900)
    program = b.finish()
    assert b.relays == 1
    assert [op for op, _ in program].count(Opcode.GEMM) == 3
    device.write_program(0x1000, program)
    device.run(0x1000)
    w = np.frombuffer(bytes(range(5, 17)) + bytes(4), np.int8).reshape(4, 4).astype(np.int64)
    first = np.arange(1, 5) @ w
    out = np.frombuffer(device.read_mem(0x900, 16), "<i4")
    # The second product reads the first's int32 output bytes as int8 activations.
    a2 = np.frombuffer(first.astype("<i4").tobytes()[:4], np.int8).astype(np.int64)
    np.testing.assert_array_equal(out, a2 @ w)


def test_prepare_model_errors(tmp_path, tiny):
    with pytest.raises(ModelFileError, match="does not exist"):
        prepare_model(tmp_path / "missing.octm")
    bad = tmp_path / "bad.octm"
    bad.write_bytes(b"OCTETMDL" + bytes(40))
    with pytest.raises(ModelFileError, match="bad.octm"):
        prepare_model(bad)
    save_quantized(tiny, tmp_path / "q.octm")
    prepared = prepare_model(tmp_path / "q.octm")
    assert prepared.qmodel.config == TINY and "saved W8A8" in prepared.description
    with pytest.raises(ModelFileError, match="already quantized"):
        prepare_model(tmp_path / "q.octm", sparsity="2:4")
    with pytest.raises(ValueError, match="sparsity must be one of"):
        prepare_model(sparsity="75")


@pytest.mark.verilator
def test_verilator_generation_equals_golden(shipped):
    """8-byte prompt + 4 bytes on the RTL of the default accelerator: the same bytes and the
    same logits as the golden device, streamed back one by one from inside the simulation.
    (The logits catch what greedy bytes may hide: wrong attention scores in the prefill.)"""
    prompt = b"def main"
    golden = generate_on_device(GoldenDevice(timed=False), shipped, prompt, 4)
    seen = []
    with open_device("verilator", AcceleratorConfig(), progress=False) as device:
        result = device.call_streaming(generate_on_device, seen.append, shipped, prompt, 4,
                                       timeout_cycles=5_000_000)
    assert result.tokens == golden.tokens
    assert len(result.logits) == len(golden.logits) == 4
    for rtl, model in zip(result.logits, golden.logits, strict=True):
        np.testing.assert_array_equal(rtl, model)
    assert bytes(v[0] for v in seen) == result.tokens
    for rtl, model in zip(result.steps, golden.steps, strict=True):
        assert rtl.counters["compute_cycles"] == model.counters["compute_cycles"]
        assert rtl.counters["instructions"] == model.counters["instructions"]
        assert rtl.counters["bytes_written"] == model.counters["bytes_written"]
