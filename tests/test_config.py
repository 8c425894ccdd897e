"""``bench run --config FILE.toml``: the file stands for the same command-line options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import cli
from datasets import write_spike_dataset

NET = {"hidden": 8, "steps": 30, "batch_size": 8, "recurrent": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    pairs = lambda n: [((rng.uniform(0, 0.03, 400), rng.integers(0, 20, 400) + 20 * (i % 2)), i % 2)
                       for i in range(n)]
    return write_spike_dataset(tmp_path_factory.mktemp("d") / "d",
                               {"train": pairs(20), "test": pairs(8)})


def main(argv) -> int:
    """The CLI's exit status (argparse-level errors exit through SystemExit)."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return int(exc.code)


def record_in(out):
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def write_config(path, data, out, extra=""):
    sets = "\n".join(f"{k} = {json.dumps(v)}" for k, v in NET.items())
    path.write_text(f'method = "bptt-snntorch"\ndataset = "{data}"\nepochs = 2\nseed = 3\n'
                    f'out = "{out}"\nno_progress = true\n{extra}\n[set]\n{sets}\n'
                    '[tag]\nstudy = "toml"\n')
    return path


def test_a_config_file_is_the_same_run_as_its_options(data, tmp_path):
    config = write_config(tmp_path / "run.toml", data, tmp_path / "a")
    assert cli.main(["run", "--config", str(config)]) == 0
    sets = [a for k, v in NET.items() for a in ("--set", f"{k}={str(v).lower()}")]
    assert cli.main(["run", "--method", "bptt-snntorch", "--dataset", str(data), "--epochs", "2",
                     "--seed", "3", "--out", str(tmp_path / "b"), "--no-progress", *sets,
                     "--tag", "study=toml"]) == 0
    a, b = record_in(tmp_path / "a"), record_in(tmp_path / "b")
    assert a["hparams"] == b["hparams"] and a["hparams"]["hidden"] == 8
    assert a["hparams"]["recurrent"] is False and a["seed"] == 3
    assert a["run_key"] == b["run_key"] and a["tags"]["study"] == "toml"


def test_the_command_line_wins(data, tmp_path):
    config = write_config(tmp_path / "run.toml", data, tmp_path / "a")
    assert cli.main(["run", "--config", str(config), "--epochs", "1", "--set", "hidden=4",
                     "--seed", "0"]) == 0
    record = record_in(tmp_path / "a")
    assert record["hparams"]["epochs"] == 1 and record["hparams"]["hidden"] == 4
    assert record["seed"] == 0 and record["hparams"]["steps"] == 30  # the rest from the file


@pytest.mark.parametrize("extra,message", [
    ("bogus = 1", "unrecognized arguments: --bogus 1"),
    ('threads = "two"', "argument --threads: invalid int value: 'two'"),
    ('device = "tpu"', "argument --device: invalid choice: 'tpu'"),
])
def test_bad_files_are_one_line(data, tmp_path, capsys, extra, message):
    config = write_config(tmp_path / "bad.toml", data, tmp_path / "a", extra)
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "bad.toml" in err
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").glob("*.json"))


def test_missing_method_and_unreadable_files(tmp_path, capsys):
    (tmp_path / "empty.toml").write_text('epochs = 1\n')
    assert main(["run", "--config", str(tmp_path / "empty.toml")]) == 2
    assert "the following arguments are required: --method" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text('method = \n')
    assert main(["run", "--config", str(tmp_path / "broken.toml")]) == 2
    assert "not a readable TOML file" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "no config file" in capsys.readouterr().err
