"""``octet run`` and the transformer ``octet demo`` on the golden backend: the streamed text and
the JSON report, equal to the integer reference's generation; bad flags, prompts and model
files end with one line and status 2."""

import json

import pytest

import octet.quant.prepare
from octet.cli import main
from octet.host.device import GoldenDevice
from octet.host.runtime import CLOCK_HZ, generate_on_device
from octet.quant.integer_reference import IntegerTransformer, golden_gemm
from octet.quant.model_file import DEFAULT_MODEL

_PREPARED = {}


@pytest.fixture(autouse=True)
def cached_models(monkeypatch):
    """Quantize each (file, sparsity) once for the whole module."""
    real = octet.quant.prepare.prepare_model

    def prepare(path=None, sparsity="none", log=None):
        key = (str(path), sparsity)
        if key not in _PREPARED:
            _PREPARED[key] = real(path, sparsity, log)
        return _PREPARED[key]

    monkeypatch.setattr(octet.quant.prepare, "prepare_model", prepare)
    return prepare


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def test_run_golden_greedy_json(capsys, cached_models):
    assert main(["run", "--prompt", "def f(x):", "--max-tokens", "4", "--json"]) == 0
    out = capsys.readouterr().out
    report = last_json(out)
    qmodel = cached_models().qmodel
    expect = IntegerTransformer(qmodel, golden_gemm).generate(b"def f(x):", 4)
    assert bytes(report["tokens"]) == expect
    assert report["text"] == expect.decode("utf-8", errors="replace")
    assert "def f(x):" + report["text"] in out          # the streamed text
    assert report["prefill_tokens"] == 9 and report["decode_steps"] == 3
    assert report["clock_mhz"] == CLOCK_HZ / 1e6
    assert report["tokens_per_s_at_clock"] == pytest.approx(CLOCK_HZ / report["tpot_cycles"])
    assert report["roofline_cycles_per_token"] == 819_200 / 8
    assert 0.5 < report["roofline_fraction"] < 1
    assert 0 < report["utilization"] < 1 and report["ttft_cycles"] > report["tpot_cycles"]
    assert report["bytes_per_token"] > report["weight_bytes"] == 819_200
    assert report["programs_per_token"] == 17 and report["wall_s"] > 0
    assert report["backend"] == "golden" and report["cycle_source"] == "cycle model"
    assert "time to first token" in out and "tokens/s at 100 MHz" in out


def test_run_sampling_sparsity_and_host_requantization(capsys, cached_models):
    """Requantizing on the host changes nothing in the bytes (compared with the default)."""
    assert main(["run", "--prompt", "import ", "--max-tokens", "5", "--temperature", "0.8",
                 "--top-k", "5", "--seed", "3", "--sparsity", "2:4", "--host-requant",
                 "--json"]) == 0
    report = last_json(capsys.readouterr().out)
    qmodel = cached_models(None, "2:4").qmodel
    assert qmodel.sparsity("blocks.0.mlp.up") == 0.5
    expect = generate_on_device(GoldenDevice(timed=False), qmodel, b"import ", 5,
                                temperature=0.8, top_k=5, seed=3)
    assert bytes(report["tokens"]) == expect.tokens
    assert (report["sparsity"], report["top_k"], report["seed"]) == ("2:4", 5, 3)
    assert report["host_requant"] is True


@pytest.mark.parametrize("flags,message", [
    (["--max-tokens", "0"], "argument --max-tokens: must be at least 1, got 0"),
    (["--max-tokens", "2", "--temperature", "-1"], "argument --temperature: must be a "
                                                    "finite number >= 0"),
    (["--max-tokens", "2", "--top-k", "many"], "argument --top-k: expected a whole number"),
    (["--max-tokens", "2", "--sparsity", "75"], "argument --sparsity: invalid choice: '75'"),
    (["--max-tokens", "2", "--backend", "fpga"], "argument --backend: invalid choice"),
])
def test_run_bad_flags_are_one_line(capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--prompt", "x", *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("octet run: error: ") and message in err[0], err


def test_run_unknown_flag_is_one_line(capsys):
    assert main(["run", "--prompt", "x", "--max-tokens", "1", "--bogus", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["octet: error: unrecognized arguments: --bogus 3"]


@pytest.mark.parametrize("prompt,message", [
    ("x" * 300, "the prompt has 300 bytes but the model's context holds 256"),
    ("", "--prompt must not be empty"),
])
def test_run_bad_prompt_is_one_line(capsys, prompt, message):
    assert main(["run", "--prompt", prompt, "--max-tokens", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"octet: error: {message}", err


def test_run_bad_model_file_is_one_line(capsys, tmp_path):
    corrupt = tmp_path / "corrupt.octm"
    data = bytearray(DEFAULT_MODEL.read_bytes())
    data[-100] ^= 0xFF                  # inside the tensor data
    corrupt.write_bytes(bytes(data))
    for path, message in [(corrupt, "checksum mismatch"),
                          (tmp_path / "none.octm", "does not exist")]:
        assert main(["run", "--prompt", "x", "--max-tokens", "1", "--model", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"octet: error: model file {path}") \
            and message in err[0], err


def test_demo_transformer_golden(capsys):
    assert main(["demo", "--backend", "golden", "--max-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "golden bytes == golden model's bytes:" in out and "PASS" in out
    assert "def __init__(self" in out and "time per output token" in out
