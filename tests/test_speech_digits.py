"""The spoken-digits path end to end on a tiny set: espeak-ng voices -> audio -> cochlea -> SHD
files -> one epoch of training. Skips when espeak-ng is not installed."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.cli import main as bench_main
from datasets.info import describe
from datasets.speech import digits

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng not installed (apt-get install espeak-ng)")


def test_tiny_spoken_digits_trains_for_an_epoch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNN_BENCH_DATA", str(tmp_path / "data"))
    assert bench_main(["data", "info", "spoken-digits"]) == 2
    assert "data make spoken-digits" in capsys.readouterr().err
    files = digits.make_spoken_digits(tmp_path / "data", jobs=2, speakers=("m1", "f2", "m3"),
                                      test_speakers=("m3",), repeats=1, rate=8000,
                                      progress=False)
    info = describe("spoken-digits", tmp_path / "data")
    assert info["n_classes"] == 20 and info["class_names"][10] == "de-null"
    assert info["splits"]["train"]["samples"] == 40 and info["splits"]["test"]["samples"] == 20
    assert info["splits"]["test"]["classes_present"] == 20
    assert files["test"].is_file() and not (tmp_path / "data" / "spoken-digits" / "audio").exists()
    code = bench_main(["data", "info", "spoken-digits"])
    assert code == 0 and "held-out speakers: m3" in capsys.readouterr().out
    out = tmp_path / "runs"
    code = bench_main(["run", "--method", "gru", "--dataset", "spoken-digits", "--epochs", "1",
                       "--set", "steps=80", "--set", "dt_ms=10", "--set", "hidden=16",
                       "--out", str(out), "--no-progress"])
    assert code == 0
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["status"] == "ok" and 0.0 <= record["metrics"]["test_acc"] <= 1.0
