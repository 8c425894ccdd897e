"""The example adapter of docs/ARCHITECTURE.md, taken from the page as it is written, registered with
one line and run through the runner: one file and one registry line make a method."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from bench import cli, records, registry
from datasets.h5 import write_h5

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


def example_source() -> str:
    section = DOC.read_text().split("## Adding a method", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_documented_adapter_runs_through_the_runner(tmp_path, monkeypatch, capsys):
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "count_centroids.py").write_text(
        '"""Nearest class centroid of per-channel spike counts (the documented example)."""\n'
        + example_source())
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.setitem(registry.METHODS, "count-centroids", "count_centroids:CountCentroids")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 24)):  # three classes firing on three channel bands
        labels = np.arange(n) % 3
        units = [rng.integers(label * 200, label * 200 + 100, 60) for label in labels]
        times = [np.sort(rng.uniform(0, 0.05, 60)) for _ in labels]
        write_h5(tmp_path / f"tiny_{split}.h5", times, units, labels)
    out = tmp_path / "runs"
    code = cli.main(["run", "--method", "count-centroids", "--dataset", str(tmp_path / "tiny"),
                     "--epochs", "2", "--set", "steps=50", "--set", "batch_size=16",
                     "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    (path,) = records.record_paths(out)
    record = records.read(path)
    assert record["status"] == "ok" and record["method"] == "count-centroids"
    assert record["metrics"]["test_acc"] >= 0.9  # the bands separate the classes
    assert [p["train_loss"] for p in record["curve"]][-1] == 0.0  # no error once it has seen them
    assert "count_centroids" in sys.modules


def test_bench_list_shows_whole_descriptions(capsys):
    assert cli.main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]
             if line.startswith("  ")}
    for name in registry.method_names():
        text = lines[name].split(maxsplit=1)[1]
        assert text.endswith("."), text  # the whole first paragraph, not a cut first line
        assert ":mod:" not in text
