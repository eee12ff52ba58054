"""``octet eval``: the command's JSON keys and the evaluation on a tiny model."""

import argparse
import json

import numpy as np
import pytest

from octet.commands import evaluate as eval_command
from octet.quant.evaluate import VARIANTS, evaluate, markdown_table
from octet.quant.model import Model, ModelConfig, init_params
from octet.quant.model_file import save_model

TINY = ModelConfig(context=24, d_model=16, n_layer=1, n_head=2, d_ff=32)


def _parse(argv):
    parser = argparse.ArgumentParser(prog="octet")
    eval_command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_eval_command_prints_json_with_the_agreed_keys(tmp_path, capsys):
    path = tmp_path / "tiny.octm"
    save_model(Model(TINY, init_params(TINY, seed=2)), path)
    args = _parse(["eval", "--model", str(path), "--windows", "3", "--json"])
    args.run(args)
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert set(report) == {"metric", "fp32", "w8a8", "w8a8_sparse50", "w8a8_2of4"}
    assert report["metric"] == "bits_per_byte"
    for key in VARIANTS:
        assert 0 < report[key] < 9, key     # near 8 bits for an untrained model
    assert any(line.startswith("| variant") for line in lines)


def test_evaluate_extended_variants(tmp_path):
    model = Model(TINY, init_params(TINY, seed=2))
    results, info = evaluate(model, windows=2, extended=True)
    assert {"w8a8_magnitude50", "fp32_sparse50", "fp32_2of4"} <= set(results)
    assert info["bytes_scored"] == 2 * TINY.context
    table = markdown_table(results)
    assert "`w8a8_2of4`" in table and np.isfinite(list(results.values())[1:]).all()


def test_octet_eval_through_the_cli(tmp_path, capsys):
    from octet import cli
    if eval_command not in cli._subcommands():
        pytest.skip("'octet eval' is not registered in octet/cli.py yet")
    path = tmp_path / "tiny.octm"
    save_model(Model(TINY, init_params(TINY, seed=2)), path)
    assert cli.main(["eval", "--model", path, "--windows", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metric"] == \
        "bits_per_byte"
    assert cli.main(["eval", "--model", tmp_path / "missing.octm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    path.write_bytes(path.read_bytes()[:-1])
    assert cli.main(["eval", "--model", path]) == 2
    assert "truncated" in capsys.readouterr().err
