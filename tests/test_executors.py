"""`bench suite --executor slurm|ray`: the same suite through submitit's local executor (processes
on this machine, as SLURM would run them) and through a Ray instance the test starts on the
loopback interface, with a stand-in for `bench run` (tests/test_suite.py's) where one cell fails
once; a killed controller; the report of a small real suite through submitit equals the local
executor's."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from tests.test_suite import SUITE, stand_in, suite_process, wait_for_pids, write_tiny_dataset  # noqa: F401

SUBMITIT = ["--executor", "slurm", "--slurm-cluster", "local"]


def needs_submitit() -> None:
    """Skips without submitit, which the executor imports itself (a plain import here would
    close the logging handlers already installed: see the test below)."""
    if importlib.util.find_spec("submitit") is None:
        pytest.skip("submitit is not installed")


def test_loading_submitit_leaves_the_logging_handlers_and_their_files_open():
    needs_submitit()
    # A fresh interpreter: submitit is imported once per process. The handler closes its stream
    # when closed, as absl's does with a stream that is no longer sys.stderr.
    script = textwrap.dedent("""
        import io, logging, os
        from bench.executors.slurm import load_submitit

        class Closing(logging.StreamHandler):
            def close(self):
                self.stream.close()
                super().close()

        stream = io.StringIO()
        logging.getLogger("elsewhere").addHandler(Closing(stream))
        load_submitit().AutoExecutor
        assert not stream.closed, "a handler was closed by the import"
        assert "SUBMITIT_LOG_LEVEL" not in os.environ
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "SUBMITIT_LOG_LEVEL"})
    assert done.returncode == 0, done.stderr


def ok_records(out: Path) -> list[str]:
    found = [json.loads(p.read_text()) for p in out.glob("*.json")]
    return sorted(r["tags"]["suite_cell"] for r in found if r["status"] == "ok")


def check_fail_once_suite(out: Path, calls, err: str) -> None:
    assert len(calls()) == 5  # four cells, one of them twice
    assert sorted(calls()).count("paralif:0 hidden=16") == 2
    ok = ok_records(out)
    assert len(ok) == 4 and len(set(ok)) == 4  # every cell's result, once
    assert "paralif on synthetic, seed 0: failed; resubmitted (1 of 2)" in err
    assert "4 runs (4 run now, 0 done before): 4 ok" in err


def test_submitit_local_suite_resubmits_a_failed_cell(tmp_path, stand_in, capsys):
    needs_submitit()
    set_plan, calls = stand_in
    set_plan({"paralif:0": "fail_once"})
    out = tmp_path / "runs"
    assert cli_main([*SUITE, "--out", str(out), *SUBMITIT]) == 0
    check_fail_once_suite(out, calls, capsys.readouterr().err)
    assert any((out / "submitit").iterdir())  # the jobs' own output is kept
    assert cli_main([*SUITE, "--out", str(out), *SUBMITIT]) == 0  # done: nothing submitted
    assert len(calls()) == 5


def test_a_killed_controller_loses_no_cell_and_runs_none_twice(tmp_path, stand_in, capsys):
    needs_submitit()
    set_plan, calls = stand_in
    set_plan({"bptt-snntorch:0": "slow", "paralif:1": "slow", "sleep": 15})
    out = tmp_path / "runs"
    controller = suite_process(tmp_path, out, *SUBMITIT)
    wait_for_pids(tmp_path, 2)  # all four jobs submitted, the two slow ones running
    controller.send_signal(signal.SIGKILL)
    controller.wait(timeout=60)
    assert cli_main([*SUITE, "--out", str(out), *SUBMITIT]) == 0
    err = capsys.readouterr().err
    ran = calls()
    assert len(ran) == len(set(ran)) == 4, ran  # no cell ran twice
    ok = ok_records(out)
    assert len(ok) == 4 and len(set(ok)) == 4  # none lost
    assert "running elsewhere; waiting for it" in err


@pytest.fixture
def local_ray():
    """A Ray instance of two CPUs on the loopback interface, shut down after the test."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_suite_resubmits_a_failed_cell(tmp_path, stand_in, local_ray, capsys):
    set_plan, calls = stand_in
    set_plan({"paralif:0": "fail_once"})
    out = tmp_path / "runs"
    assert cli_main([*SUITE, "--out", str(out), "--executor", "ray"]) == 0
    check_fail_once_suite(out, calls, capsys.readouterr().err)


MEASURED = re.compile(r"\d m?s\b|[KMG]iB|wall")  # a time (s or ms) or memory figure of the machine


def report_rows(runs: Path, out: Path) -> list[str]:
    """The report's Markdown lines with every time and memory figure (which no two runs share)
    blanked; accuracies, configurations and counts kept."""
    assert cli_main(["report", "--runs", str(runs), "--out", str(out), "--no-html"]) == 0
    lines = (out / "report.md").read_text().splitlines()
    return ["|".join("~" if MEASURED.search(cell) else cell for cell in line.split("|"))
            for line in lines if str(runs) not in line]


def test_submitit_local_report_equals_the_local_one(tmp_path, monkeypatch):
    needs_submitit()
    monkeypatch.setenv("SNN_BENCH_DATA", str(tmp_path / "cache"))
    dataset = str(write_tiny_dataset(tmp_path / "data"))
    args = ["suite", "--methods", "bptt-snntorch", "--datasets", dataset, "--seeds", "0,1",
            "--epochs", "1", "--grid", "hidden=8,16", "--set", "steps=30", "--set", "dt_ms=33",
            "--set", "batch_size=16"]
    assert cli_main([*args, "--out", str(tmp_path / "local")]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "submitit"), *SUBMITIT]) == 0
    local = report_rows(tmp_path / "local", tmp_path / "report-local")
    remote = report_rows(tmp_path / "submitit", tmp_path / "report-submitit")
    assert local and local == remote
