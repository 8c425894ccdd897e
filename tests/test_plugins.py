"""Method plugins: a separate, installed package declares an ``snn_bench.methods`` entry point and
is found by every ``python -m bench`` process (list, run, and the runs a suite starts)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets.h5 import write_h5

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_MODULE = '''\
"""Nearest class mean of randomly projected spike counts (a plugin for tests)."""

from dataclasses import dataclass

import numpy as np

from methods.api import BaseHparams, Method


@dataclass
class CentroidHparams(BaseHparams):
    hidden: int = 16  # random features of the per-channel spike counts


class CountCentroid(Method):
    name = "count-centroid"
    framework = "numpy"
    Hparams = CentroidHparams

    def setup(self, spec, hparams, seed, device):
        self.proj = np.random.default_rng(seed).random((spec.n_in, hparams.hidden))
        self.sums = np.zeros((spec.n_classes, hparams.hidden))
        self.seen = np.zeros(spec.n_classes)

    def _counts(self, batch):
        return batch.x.sum(axis=1).astype(np.float64) @ self.proj

    def train_step(self, batch):
        counts = self._counts(batch)
        correct = int((self.predict(batch).argmax(axis=1) == batch.y).sum())
        np.add.at(self.sums, batch.y, counts)
        np.add.at(self.seen, batch.y, 1)
        return {"loss": 1.0, "correct": correct}

    def predict(self, batch):
        means = self.sums / np.maximum(self.seen, 1)[:, None]
        counts = self._counts(batch)
        return -((counts[:, None, :] - means[None]) ** 2).sum(axis=2)

    def state_dict(self):
        return {"sums": self.sums, "seen": self.seen, "proj": self.proj}

    def load_state_dict(self, state):
        self.sums, self.seen = np.asarray(state["sums"]), np.asarray(state["seen"])
        self.proj = np.asarray(state["proj"])
'''

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "snn-bench-tiny-plugin"
version = "0.1"

[project.entry-points."snn_bench.methods"]
count-centroid = "tiny_plugin.centroid:CountCentroid"
broken-plugin = "tiny_plugin.broken:Nothing"

[tool.setuptools]
packages = ["tiny_plugin"]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin package built and installed by pip into a fresh site directory (no index, no
    network), as a user would install it."""
    src = tmp_path_factory.mktemp("plugin_src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "tiny_plugin").mkdir()
    (src / "tiny_plugin" / "__init__.py").write_text("")
    (src / "tiny_plugin" / "centroid.py").write_text(PLUGIN_MODULE)
    (src / "tiny_plugin" / "broken.py").write_text("import a_module_that_does_not_exist\n")
    site = tmp_path_factory.mktemp("site")
    if importlib.util.find_spec("setuptools") is None:  # no build backend offline: lay it out
        return _hand_installed(src, site)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         "--no-build-isolation", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(site.glob("snn_bench_tiny_plugin-*.dist-info"))
    return site


def _hand_installed(src: Path, site: Path) -> Path:
    """The same distribution as pip would install it: the package and a .dist-info folder with
    its metadata and entry points."""
    shutil.copytree(src / "tiny_plugin", site / "tiny_plugin")
    info = site / "snn_bench_tiny_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: snn-bench-tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[snn_bench.methods]\ncount-centroid = tiny_plugin.centroid:CountCentroid\n"
        "broken-plugin = tiny_plugin.broken:Nothing\n")
    return site


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """Two classes firing different channels, 30 training and 12 test samples."""
    directory = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 12)):
        labels = np.arange(n) % 2
        times = [rng.uniform(0, 0.05, 40) for _ in labels]
        units = [rng.integers(0, 10, 40) + 10 * y for y in labels]
        write_h5(directory / f"tiny_{split}.h5", times, units, labels)
    return directory / "tiny"


def bench(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_list_shows_the_plugin(plugin_site, tmp_path):
    result = bench(plugin_site, "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "count-centroid" in line)
    assert "Nearest class mean" in line


def test_run_trains_the_plugin(plugin_site, small_data, tmp_path):
    out = tmp_path / "runs"
    result = bench(plugin_site, "run", "--method", "count-centroid", "--dataset", str(small_data),
                   "--epochs", "1", "--set", "steps=50", "--set", "batch_size=8", "--out", str(out),
                   "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["method"] == "count-centroid" and record["status"] == "ok"
    assert record["metrics"]["test_acc"] == 1.0  # the classes fire disjoint channels


def test_suite_runs_the_plugin_in_its_subprocesses(plugin_site, small_data, tmp_path):
    out = tmp_path / "suite"
    result = bench(plugin_site, "suite", "--methods", "count-centroid", "--datasets",
                   str(small_data), "--seeds", "0,1", "--epochs", "1", "--set", "steps=50",
                   "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert sorted(r["seed"] for r in records) == [0, 1]
    assert all(r["method"] == "count-centroid" and r["status"] == "ok" for r in records)


def test_tune_and_scale_run_the_plugin(plugin_site, small_data, tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    result = bench(plugin_site, "tune", "--method", "count-centroid", "--dataset", str(small_data),
                   "--trials", "2", "--budget-epochs", "1", "--params", "batch_size",
                   "--set", "steps=50", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    trials = [r for r in records if r.get("method") == "count-centroid" and "metrics" in r]
    assert len(trials) == 2 and all(r["status"] == "ok" for r in trials)
    out = tmp_path / "scale"
    result = bench(plugin_site, "scale", "--methods", "count-centroid", "--steps", "20,40",
                   "--hidden", "8", "--batch-size", "8", "--epochs", "1", "--max-batches", "1",
                   "--dataset", str(small_data), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert sorted(r["hparams"]["steps"] for r in records) == [20, 40]
    assert all(r["method"] == "count-centroid" and r["status"] == "ok" for r in records)


def test_a_broken_plugin_is_one_clear_line(plugin_site, small_data, tmp_path):
    result = bench(plugin_site, "run", "--method", "broken-plugin", "--dataset", str(small_data),
                   "--epochs", "1", "--out", str(tmp_path / "runs"), "--no-progress", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "broken-plugin" in lines[0] and "snn-bench-tiny-plugin" in lines[0]
    assert "No module named 'a_module_that_does_not_exist'" in lines[0]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.json"))
    listing = bench(plugin_site, "list", cwd=tmp_path)  # list still works, naming the problem
    assert listing.returncode == 0, listing.stderr


def test_without_the_package_the_method_is_unknown(small_data, tmp_path):
    result = bench(tmp_path, "run", "--method", "count-centroid", "--dataset", str(small_data),
                   "--epochs", "1", "--out", str(tmp_path / "runs"), "--no-progress", cwd=tmp_path)
    assert result.returncode == 2 and "unknown method 'count-centroid'" in result.stderr
