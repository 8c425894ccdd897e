"""``bench report``: numbers in the Markdown and CSV tables from hand-made records, the scaling
table, and the one loader (reruns, damaged records, an output folder that cannot be written). The
record helpers here are shared with test_report_versus.py, test_report_outputs.py and
test_compare.py."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from bench import records
from bench.cli import main as cli_main

MiB = 2**20


def make_record(method="alpha", seed=0, *, status="ok", acc=0.8, dataset="synthetic",
                version="v1", dataset_hash="h1", hparams=None, tags=None, seconds=1.0,
                memory=100 * MiB, curve=(0.3, 0.6, 0.8), spikes=2.0, synops=1000.0,
                dense=8000.0, finished="2025-01-01T00:00:00+00:00", error="RuntimeError: boom",
                run_id=None) -> dict:
    """A record as the runner writes it. ``curve``: validation accuracy per epoch, each epoch
    ``seconds`` timed and 1.5 x that in wall-clock time."""
    record = records.new_record(
        run_id=run_id or f"{method}-{dataset}-s{seed}-{version}-{status}-{finished[:10]}",
        method=method, method_version=version, dataset=dataset, dataset_hash=dataset_hash,
        seed=seed, hparams=hparams or {"hidden": 16, "steps": 50, "batch_size": 16},
        env={"device": "cpu", "commit": "0" * 40, "machine": "test"}, tags=tags or {})
    record["status"] = status
    record["finished_at"] = finished
    wall = 0.0
    for i, valid in enumerate(curve if status in ("ok", "diverged") else ()):
        wall += 1.5 * seconds
        record["curve"].append({"epoch": i + 1, "train_loss": 1.0, "train_acc": valid,
                                "valid_acc": valid, "seconds": seconds, "wall_seconds": wall})
    if status == "ok":
        record["metrics"].update(test_acc=acc, best_valid_acc=max(curve),
                                 train_seconds=seconds * len(curve), seconds_per_epoch=seconds,
                                 peak_train_bytes=memory, epochs=len(curve))
        record["inference"] = {"spikes_per_neuron": spikes, "spikes_per_sample": spikes * 16,
                               "synops_per_sample": synops, "dense_synops_per_sample": dense,
                               "activation_sparsity": 0.9}
    else:
        record["error"] = error
    return record


def write_all(directory: Path, recs: list[dict]) -> Path:
    for record in recs:
        records.write(record, directory)
    return directory


def run_report(tmp_path: Path, *extra: str) -> tuple[str, list[dict], Path]:
    out = tmp_path / "out"
    code = cli_main(["report", "--runs", str(tmp_path / "runs"), "--out", str(out), *extra])
    assert code == 0
    with open(out / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    return (out / "report.md").read_text(), rows, out


def md_row(markdown: str, first_cell: str, *more: str) -> list[str]:
    """Cells of the Markdown table row starting with ``first_cell`` (and ``more`` cells)."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:1 + len(more)] == [first_cell, *more]:
            return cells
    raise AssertionError(f"no row {first_cell!r} {more} in:\n{markdown}")


def md_header(markdown: str) -> list[str]:
    return md_row(markdown, "Method")


def md_cells(markdown: str, first_cell: str, *more: str) -> dict[str, str]:
    """The row of :func:`md_row` keyed by the column names of the first table in ``markdown``."""
    return dict(zip(md_header(markdown), md_row(markdown, first_cell, *more)))


def test_markdown_and_csv_numbers(mixed):
    markdown, rows, _ = run_report(mixed, "--target-acc", "0.7")
    header = md_header(markdown)
    assert "Variant" not in header  # no method varies its hyperparameters here
    alpha = md_cells(markdown, "alpha")
    assert alpha["Test acc (mean ± std)"] == "0.820 ± 0.020 (n=3)"
    assert alpha["Best valid acc"] == "0.833 ± 0.058"
    assert alpha["s / epoch"] == "2.00 s"  # median over seeds
    assert alpha["Peak train memory"] == "110.0 MiB"
    # first epoch with valid_acc >= 0.7: seed 0 epoch 3 (3 s, 4.5 s wall), seed 1 epoch 2
    # (4 s, 6 s wall), seed 2 epoch 3 (9 s, 13.5 s wall): medians 4 s and 6 s
    assert alpha["Time to target (timed / wall)"] == "4.00 s / 6.00 s wall"
    assert alpha["Spikes / neuron"] == "2.00"
    assert alpha["SynOps / sample"] == "1 k"
    assert alpha["Dense SynOps / sample"] == "8 k"
    assert alpha["Runs"] == "3 ok"

    beta = md_cells(markdown, "beta")
    assert beta["Test acc (mean ± std)"] == "0.600 ± 0.141 (n=2)"
    assert beta["Time to target (timed / wall)"] == "not reached"
    assert beta["SynOps / sample"] == "2.5 M"
    assert beta["Dense SynOps / sample"] == "12 M"
    assert beta["Runs"] == "2 ok, 1 failed, 1 diverged"

    gamma = md_cells(markdown, "gamma")
    assert gamma["Test acc (mean ± std)"] == "—"  # never a 0.0
    assert gamma["s / epoch"] == "—"
    assert gamma["Runs"] == "0 ok, 2 failed"
    assert "Target validation accuracy 0.70." in markdown
    assert "- beta on synthetic, seed 2: failed: RuntimeError: out of cheese" in markdown
    assert "- beta on synthetic, seed 3: diverged: diverged: loss nan" in markdown

    by_method = {row["method"]: row for row in rows}
    assert set(by_method) == {"alpha", "beta", "gamma"}
    a, b, g = by_method["alpha"], by_method["beta"], by_method["gamma"]
    assert float(a["test_acc_mean"]) == pytest.approx(0.82)
    assert float(a["test_acc_std"]) == pytest.approx(0.02)
    assert float(a["seconds_per_epoch"]) == 2.0
    assert float(a["peak_train_bytes"]) == 110 * MiB
    assert (a["target_reached"], float(a["target_seconds"]), float(a["target_wall_seconds"])) \
        == ("3", 4.0, 6.0)
    assert float(a["synops_per_sample"]) == 1000.0 and float(a["dense_synops_per_sample"]) == 8000.0
    assert (b["n_ok"], b["n_failed"], b["n_diverged"], b["n_timeout"]) == ("2", "1", "1", "0")
    assert b["target_reached"] == "0" and b["target_seconds"] == ""
    assert g["test_acc_mean"] == "" and g["n_failed"] == "2"  # empty, not 0.0
    assert {row["kind"] for row in rows} == {"main"}


def test_default_target_and_partial_reach(mixed):
    markdown, rows, _ = run_report(mixed)
    # best mean best-valid accuracy: alpha 0.8333 -> target floor(0.9 x 0.8333, 2) = 0.75
    assert "Target validation accuracy 0.75 (0.9 x best mean validation accuracy)." in markdown
    alpha = md_cells(markdown, "alpha")
    # seeds 0 and 2 reach 0.75 at epoch 3 (3 s and 9 s timed; 4.5 s and 13.5 s wall), seed 1 too
    assert alpha["Time to target (timed / wall)"] == "6.00 s / 9.00 s wall"
    markdown, _, _ = run_report(mixed, "--target-acc", "0.85")
    alpha = md_cells(markdown, "alpha")
    assert alpha["Time to target (timed / wall)"] == "9.00 s / 13.5 s wall (1/3 seeds)"


def test_retried_run_counts_once_and_variants_are_named(tmp_path):
    recs = [make_record("alpha", 0, status="failed", finished="2025-01-01T00:00:00+00:00"),
            make_record("alpha", 0, acc=0.9, finished="2025-01-02T00:00:00+00:00")]
    for hidden, version, acc in ((16, "h16", 0.6), (32, "h32", 0.7)):
        for seed in (0, 1):
            recs.append(make_record("beta", seed, acc=acc, version=version,
                                    hparams={"hidden": hidden, "steps": 50, "batch_size": 16}))
    write_all(tmp_path / "runs", recs)
    markdown, rows, _ = run_report(tmp_path)
    header = md_header(markdown)
    assert "Variant" in header
    alpha = md_cells(markdown, "alpha")
    assert alpha["Runs"] == "1 ok" and alpha["Test acc (mean ± std)"] == "0.900 (n=1)"
    assert alpha["Variant"] == "—"
    assert md_cells(markdown, "beta", "hidden=16")["Test acc (mean ± std)"] == "0.600 ± 0.000 (n=2)"
    assert md_cells(markdown, "beta", "hidden=32")["Test acc (mean ± std)"] == "0.700 ± 0.000 (n=2)"
    assert "1 older record of rerun configurations ignored" in markdown
    assert [r["variant"] for r in rows] == ["", "hidden=16", "hidden=32"]


# ---------------------------------------------------------------------------------------------
# Scaling sweeps


def _scale_records():
    recs = []
    for method, factor in (("alpha", 1.0), ("beta", 0.25)):
        for steps in (100, 200, 400):
            recs.append(make_record(
                method, 0, version=f"{method}-{steps}", curve=(0.5, 0.5), seconds=steps / 100 * factor,
                memory=steps * MiB * factor, dataset="synthetic-scale64x16",
                hparams={"hidden": 16, "steps": steps, "batch_size": 16, "dt_ms": 1000 / steps},
                tags={"scale": "1", "steps": str(steps), "hidden": "16", "max_batches": "4"}))
    return recs


def test_scale_records_get_their_own_table(mixed):
    write_all(mixed / "runs", _scale_records())
    markdown, rows, _ = run_report(mixed)
    scale_part = markdown.split("## Scaling with sequence length", 1)[1]
    beta = md_cells(scale_part, "beta", "synthetic-scale64x16", "16", "400")
    assert beta["s / epoch (last)"] == "1.00 s"
    assert beta["s / batch"] == "0.250 s"
    assert beta["Peak train memory"] == "100.0 MiB"
    main_part = markdown.split("## Scaling", 1)[0]
    assert "synthetic-scale64x16" not in main_part  # sweep points are not accuracy results
    assert sum(1 for r in rows if r["kind"] == "scale") == 6


# ---------------------------------------------------------------------------------------------
# The one loader: reruns and damaged files


def test_ok_record_wins_over_a_later_failed_rerun(tmp_path):
    recs = [make_record("alpha", 0, acc=0.9, finished="2025-01-01T00:00:00+00:00"),
            make_record("alpha", 0, status="failed", finished="2025-01-02T00:00:00+00:00",
                        error="KeyboardInterrupt: interrupted"),
            make_record("alpha", 1, status="failed", finished="2025-01-01T00:00:00+00:00"),
            make_record("alpha", 1, acc=0.7, finished="2025-01-02T00:00:00+00:00")]
    write_all(tmp_path / "runs", recs)
    markdown, rows, _ = run_report(tmp_path)
    alpha = md_cells(markdown, "alpha")
    assert alpha["Test acc (mean ± std)"] == "0.800 ± 0.141 (n=2)"  # both ok records count
    assert alpha["Runs"] == "2 ok (+1 failed rerun)"
    assert rows[0]["n_ok"] == "2" and rows[0]["n_failed_reruns"] == "1"
    assert "1 older record of rerun configurations ignored" in markdown  # seed 1's retried failure
    assert ("- alpha on synthetic, seed 0: failed: KeyboardInterrupt: interrupted (a rerun; the ok "
            "record alpha-synthetic-s0-v1-ok-2025-01-01 is kept)") in markdown


def test_wrong_shaped_records_are_skipped_with_one_warning_line_each(mixed, capsys):
    runs = mixed / "runs"
    (runs / "list.json").write_text("[]")
    bad_metrics = make_record("alpha", 7)
    bad_metrics["metrics"] = "0.99"
    (runs / "string-metrics.json").write_text(json.dumps(bad_metrics))
    (runs / "truncated.json").write_text('{"method": "al')
    (runs / "status.json").write_text(json.dumps({**make_record("alpha", 8), "status": "great"}))
    markdown, _, _ = run_report(mixed, "--target-acc", "0.7")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 4
    assert any("list.json: not a run record (a JSON list, not an object)" in w for w in warnings)
    assert any("string-metrics.json: not a run record ('metrics' is a str)" in w for w in warnings)
    assert any("truncated.json" in w for w in warnings)
    assert any("status.json: not a run record (unknown status 'great')" in w for w in warnings)
    assert md_cells(markdown, "alpha")["Test acc (mean ± std)"] == "0.820 ± 0.020 (n=3)"


def _unwritable(tmp_path: Path) -> Path:
    """A folder no file can be created in (root ignores permissions: use /proc then)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/proc/snn-bench-report")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("where", ["file", "read-only"])
def test_out_that_cannot_be_written_is_exit_2_before_any_work(mixed, capsys, where):
    if where == "file":
        out = mixed / "taken"
        out.write_text("not a folder")
    else:
        out = _unwritable(mixed)
    code = cli_main(["report", "--runs", str(mixed / "runs"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert str(out) in err


def test_variant_labels_round_floats_to_four_digits():
    from bench.results.grouping import plain

    assert plain(0.4994797706604004) == "0.4995" and plain(1e-3) == "0.001" and plain(30.0) == "30"
    assert plain("gauss_window") == "gauss_window" and plain(3) == "3"
