"""Runs held to fewer cores than the machine has (bptt-spyx: methods/cpu.py) take different
cores when they run side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from methods import cpu

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lock_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SNN_BENCH_CORE_LOCKS", str(tmp_path / "cores"))
    claims_before = list(cpu._CLAIMS)
    yield tmp_path / "cores"
    for handle in cpu._CLAIMS[len(claims_before):]:
        handle.close()
    cpu._CLAIMS[:] = claims_before


def release(handles) -> None:
    for handle in handles:
        handle.close()
        cpu._CLAIMS.remove(handle)


def test_claims_take_free_cores_first_and_share_when_none_is_free(lock_folder):
    allowed = [0, 1, 2, 3]
    assert cpu.claim_cores(allowed, 2) == [0, 1]
    first = list(cpu._CLAIMS[-2:])
    assert cpu.claim_cores(allowed, 2) == [2, 3]
    assert cpu.claim_cores(allowed, 1) == [0]  # all claimed: shared, as without claims
    release(first)
    assert cpu.claim_cores(allowed, 3) == [0, 1, 2]  # two freed, and one shared


def test_without_a_writable_lock_folder_the_first_cores_are_kept(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SNN_BENCH_CORE_LOCKS", str(blocker / "cores"))
    assert cpu.claim_cores([3, 5, 7], 2) == [3, 5]


CHILD = """
import os, sys
from methods.cpu import limit_cpu_affinity
kept = limit_cpu_affinity()
print(kept, sorted(os.sched_getaffinity(0)), flush=True)
sys.stdin.readline()
"""


def start_run(lock_folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SNN_BENCH_THREADS": "1",
           "SNN_BENCH_CORE_LOCKS": str(lock_folder)}
    return subprocess.Popen([sys.executable, "-c", CHILD], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two cores")
def test_two_one_thread_runs_side_by_side_get_different_cores(tmp_path):
    first = start_run(tmp_path)
    first_line = first.stdout.readline().split("] [")
    second = start_run(tmp_path)
    second_line = second.stdout.readline().split("] [")
    for proc in (first, second):
        proc.communicate("\n", timeout=30)
    (a_kept, a_mask), (b_kept, b_mask) = first_line, second_line
    assert a_kept.lstrip("[") == a_mask.rstrip("]\n")  # the mask is what was claimed
    assert b_kept.lstrip("[") == b_mask.rstrip("]\n")
    assert a_kept != b_kept
    third = start_run(tmp_path)  # both ended: the first core is free again
    assert third.stdout.readline().split("] [")[0] == a_kept
    third.communicate("\n", timeout=30)
