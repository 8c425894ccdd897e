"""``bench report``: numbers in the Markdown and CSV tables from hand-made records, and the HTML
page rendered by headless Chromium (screenshot not blank, tables and decodable images present)."""

from __future__ import annotations

import base64
import csv
import json
import io
import os
import re
import shutil
import subprocess
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


@pytest.fixture
def mixed(tmp_path):
    """alpha: 3 ok seeds; beta: 2 ok, 1 failed, 1 diverged; gamma: only failures."""
    recs = [make_record("alpha", s, acc=a, seconds=sec, memory=m, curve=c)
            for s, a, sec, m, c in ((0, 0.80, 1.0, 100 * MiB, (0.3, 0.6, 0.8)),
                                    (1, 0.82, 2.0, 110 * MiB, (0.4, 0.7, 0.8)),
                                    (2, 0.84, 3.0, 120 * MiB, (0.5, 0.5, 0.9)))]
    recs += [make_record("beta", s, acc=a, seconds=0.5, curve=(0.2, 0.4), synops=2.5e6,
                         dense=1.2e7, spikes=0.25) for s, a in ((0, 0.5), (1, 0.7))]
    recs += [make_record("beta", 2, status="failed", error="RuntimeError: out of cheese"),
             make_record("beta", 3, status="diverged", curve=(0.1,), error="diverged: loss nan")]
    recs += [make_record("gamma", s, status="failed", error="ValueError: bad shape")
             for s in (0, 1)]
    write_all(tmp_path / "runs", recs)
    return tmp_path


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


def _paired_records() -> list[dict]:
    """ref and alpha under two variants (loss=a, loss=b). Variant a: seeds 0-2 paired with
    differences +2, -4, +5 points, plus an alpha-only seed 3 and a failed ref seed 4 next to an ok
    alpha seed 4. Variant b: alpha 10 points behind on the single seed both ran."""
    recs = []
    for loss, version in (("a", "ra"), ("b", "rb")):
        hp = {"hidden": 16, "steps": 50, "batch_size": 16, "loss": loss}
        refs = (0.50, 0.60, 0.70) if loss == "a" else (0.40,)
        for seed, acc in enumerate(refs):
            recs.append(make_record("ref", seed, acc=acc, version=version, hparams=hp))
        if loss == "a":
            recs.append(make_record("ref", 4, status="failed", version=version, hparams=hp))
        alphas = (0.52, 0.56, 0.75, 0.99, 0.90) if loss == "a" else (0.30,)
        for seed, acc in enumerate(alphas):
            recs.append(make_record("alpha", seed, acc=acc, version="a" + version, hparams=hp))
    return recs


def test_versus_pairs_seeds_and_reports_the_mean_difference(tmp_path, capsys):
    write_all(tmp_path / "runs", _paired_records())
    markdown, _, out = run_report(tmp_path, "--versus", "ref", "--margin", "1")
    printed = capsys.readouterr().out
    section = markdown.split("### Paired by seed against ref", 1)[1]
    a = md_cells(section, "alpha", "loss=a")
    # differences +2, -4, +5: mean +1.0, sample std 4.58, s.e. 4.58 / sqrt 3 = 2.6
    assert a["Seeds paired"] == "0-2 (n=3), 2 unpaired"  # seed 3 (alpha only), seed 4 (ref failed)
    assert a["Test acc"] == "0.610" and a["Reference test acc"] == "0.600"
    assert a["Difference, points (± s.e.)"] == "+1.0 ± 2.6"
    # 95 % t interval: 1.0 -+ t(0.975, 2) 4.303 x 2.646 = -10.4 .. +12.4; its lower end is below
    # -1, so the mean difference of +1.0 alone does not make a "yes"
    assert a["95% interval, points"] == "-10.4 to +12.4"
    assert a["Within 1 point or better"] == "no"
    b = md_cells(section, "alpha", "loss=b")
    assert b["Seeds paired"] == "0 (n=1)"
    assert b["Difference, points (± s.e.)"] == "-10.0"  # one seed: no standard error
    assert b["95% interval, points"] == "—"
    assert b["Within 1 point or better"] == "n/a"  # fewer than 3 paired seeds: no verdict
    assert "| ref |" not in section  # the reference is not compared with itself
    assert "| alpha | loss=a | 0-2 (n=3), 2 unpaired |" in printed
    html_text = (out / "report.html").read_text()
    assert "Paired by seed against ref" in html_text and "+1.0 ± 2.6" in html_text

    markdown, _, _ = run_report(tmp_path, "--versus", "ref", "--margin", "0.5")
    section = markdown.split("### Paired by seed against ref", 1)[1]
    assert md_cells(section, "alpha", "loss=a")["Within 0.5 points or better"] == "no"
    markdown, _, _ = run_report(tmp_path, "--versus", "ref", "--margin", "11")
    section = markdown.split("### Paired by seed against ref", 1)[1]
    assert md_cells(section, "alpha", "loss=a")["Within 11 points or better"] == "yes"  # -10.4 > -11
    markdown, _, _ = run_report(tmp_path, "--versus", "alpha")
    section = markdown.split("### Paired by seed against alpha", 1)[1]
    reversed_a = md_cells(section, "ref", "loss=a")
    assert reversed_a["Difference, points (± s.e.)"] == "-1.0 ± 2.6"
    assert "Within" not in " ".join(md_header(section))  # no margin, no verdict column


@pytest.mark.parametrize("diffs, verdict", [
    ((2, 3, 4), "yes"),  # mean 3, s.e. 0.58, interval 0.5 .. 5.5: above -1
    ((-2, 0, 1), "no"),  # mean -0.3 (above -1), interval -4.1 .. 3.5: the lower end is below -1
    ((1, 1), "n/a"),  # two seeds: too few for a verdict
])
def test_versus_verdict_uses_the_t_interval(tmp_path, diffs, verdict):
    recs = []
    for seed, diff in enumerate(diffs):
        recs.append(make_record("ref", seed, acc=0.5))
        recs.append(make_record("alpha", seed, acc=0.5 + diff / 100))
    write_all(tmp_path / "runs", recs)
    markdown, _, _ = run_report(tmp_path, "--versus", "ref", "--margin", "1")
    section = markdown.split("### Paired by seed against ref", 1)[1]
    assert md_cells(section, "alpha")["Within 1 point or better"] == verdict


def test_versus_a_single_reference_configuration_pairs_every_variant(tmp_path):
    recs = [make_record("ref", s, acc=0.5) for s in (0, 1)]
    for strength, accs in ((0.1, (0.6, 0.7)), (0.2, (0.4, 0.5))):
        hp = {"hidden": 16, "steps": 50, "batch_size": 16, "strength": strength}
        recs += [make_record("alpha", s, acc=a, version=f"a{strength}", hparams=hp)
                 for s, a in enumerate(accs)]
    write_all(tmp_path / "runs", recs)
    markdown, _, _ = run_report(tmp_path, "--versus", "ref")
    section = markdown.split("### Paired by seed against ref", 1)[1]
    assert md_cells(section, "alpha", "strength=0.1")["Difference, points (± s.e.)"] == "+15.0 ± 5.0"
    assert md_cells(section, "alpha", "strength=0.2")["Difference, points (± s.e.)"] == "-5.0 ± 5.0"


@pytest.mark.parametrize("extra, message", [
    (("--margin", "1"), "--margin needs --versus"),
    (("--versus", "nobody"), "--versus nobody: no runs of that method"),
    (("--versus", "ref", "--margin", "-1"), "--margin must be a non-negative"),
])
def test_versus_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    write_all(tmp_path / "runs", _paired_records())
    code = cli_main(["report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "o"),
                     *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "report.md").exists()


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
# HTML in a real browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                       "-qq chromium", shell=True, capture_output=True, timeout=900)
        return shutil.which("chromium")
    return None


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120)


def test_html_renders_in_headless_chromium(mixed):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed and could not be installed with apt-get "
                    "(apt-get install -y chromium)")
    write_all(mixed / "runs", _scale_records())
    _, _, out = run_report(mixed)
    page = out / "report.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: no external assets

    # The images are PNGs that decode, and the tables hold one row per result.
    from PIL import Image

    sources = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', text)
    assert len(sources) == 3  # learning curves, accuracy vs cost, scaling
    for source in sources:
        image = Image.open(io.BytesIO(base64.b64decode(source)))
        image.load()
        assert image.size[0] > 300 and image.size[1] > 200

    shot = mixed / "shot.png"
    result = _headless(browser, mixed / "profile-shot", f"--screenshot={shot}",
                       "--window-size=1200,2000", page.as_uri())
    assert shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("L")
    histogram = image.histogram()
    non_white = sum(histogram[:250]) / (image.size[0] * image.size[1])
    assert image.size == (1200, 2000)
    assert non_white > 0.02, f"screenshot looks blank ({non_white:.4f} non-white)"

    # The DOM after load, with a probe counting images the browser decoded.
    probe = page.with_name("probe.html")
    probe.write_text(text.replace("</body>", (
        "<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
        "document.body.setAttribute('data-decoded', imgs.filter(i => i.complete && "
        "i.naturalWidth > 0).length + '/' + imgs.length); });</script></body>")))
    dom = _headless(browser, mixed / "profile-dom", "--virtual-time-budget=10000", "--dump-dom",
                    probe.as_uri()).stdout
    assert 'data-decoded="3/3"' in dom, dom[:500]
    assert dom.count('<table class="results">') == 1 and dom.count('<table class="scale">') == 1
    results = dom.split('<table class="results">', 1)[1].split("</table>", 1)[0]
    assert results.count("<tr>") == 4  # header + alpha, beta, gamma
    assert "0.820 ± 0.020 (n=3)" in results and "2 ok, 1 failed, 1 diverged" in results
    scale = dom.split('<table class="scale">', 1)[1].split("</table>", 1)[0]
    assert scale.count("<tr>") == 7  # header + 2 methods x 3 lengths


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


def test_figures_latex_and_permissions(mixed, monkeypatch):
    """Every figure as its own SVG and PDF; accuracy axes from 0 with a chance line; per-seed
    marks; integer epoch ticks; no hash in titles; a LaTeX table; files made under the umask."""
    figures = []
    from bench.results import plots

    finish = plots.Plotter.finish

    def keep(self, fig, stem):
        figures.append((stem, [(ax.get_ylim(), ax.get_ylabel(), ax.get_xlabel(), ax) for ax in
                               fig.axes], fig._suptitle.get_text()))
        return finish(self, fig, stem)

    monkeypatch.setattr(plots.Plotter, "finish", keep)
    scale = _scale_records()
    for record in scale:
        record["dataset"] = "synthetic-scale64x16-0a1b2c3d"
    write_all(mixed / "runs", scale)
    old = os.umask(0o027)
    try:
        _, _, out = run_report(mixed)
    finally:
        os.umask(old)
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == sorted(f"{stem}.{fmt}" for fmt in ("svg", "pdf") for stem in (
        "synthetic-learning-curves", "synthetic-accuracy-vs-cost",
        "synthetic-scale64x16-0a1b2c3d-scaling"))
    for name in names:
        data = (out / "figures" / name).read_bytes()
        assert data.startswith(b"%PDF") if name.endswith(".pdf") else b"<svg" in data[:2000]
    for stem, axes, title in figures:
        assert "0a1b2c3d" not in title
        for (bottom, _), ylabel, xlabel, ax in axes:
            if "accuracy" in ylabel:
                assert bottom == 0.0
                chance = [line for line in ax.get_lines() if line.get_label() == "chance"]
                assert chance and chance[0].get_ydata()[0] == pytest.approx(0.05)  # 20 classes
            if xlabel == "epoch":
                ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
                assert all(float(t).is_integer() for t in ticks)
    curves = next(axes for stem, axes, _ in figures if stem.endswith("learning-curves"))
    # per seed: alpha 3 + beta 2 + the diverged beta seed is not ok (not drawn); plus one mean
    # line per method, the chance line and the target line
    assert len(curves[0][3].get_lines()) == 3 + 2 + 2 + 2
    tex = (out / "report.tex").read_text()
    assert "\\begin{table}" in tex and "\\toprule" in tex and "0.820 ± 0.020 (n=3)" in tex
    for path in [out / "report.md", out / "report.csv", out / "report.html", out / "report.tex",
                 out / "figures" / "synthetic-learning-curves.svg"]:
        assert oct(path.stat().st_mode & 0o777) == oct(0o640), path
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


# ---------------------------------------------------------------------------------------------
# The generated results page

PAGE_TOML = '''
page = "out/results.md"
title = "Results"
intro = "The intro."

[[table]]
heading = "Alpha and beta"
text = "What is compared."
commands = ["python -m bench suite --methods alpha,beta --seeds 0,1,2 --out runs"]
runs = ["runs"]
versus = "beta"
margin = 1
'''


def test_results_page_is_written_from_the_records_its_tables_name(mixed, monkeypatch, capsys):
    monkeypatch.chdir(mixed)
    (mixed / "results.toml").write_text(PAGE_TOML)
    assert cli_main(["report", "--page", "results.toml"]) == 0
    page = (mixed / "out" / "results.md").read_text()
    assert page.startswith("# Results\n")
    assert "Generated by `python -m bench report --page results.toml`" in page
    assert "## Alpha and beta" in page and "What is compared." in page
    assert "```\npython -m bench suite --methods alpha,beta --seeds 0,1,2 --out runs\n```" in page
    assert "*9 runs; device cpu; commit 0000000000; made 2025-01-01.*" in page
    assert md_cells(page, "alpha")["Test acc (mean ± std)"] == "0.820 ± 0.020 (n=3)"
    assert "Paired by seed against beta:" in page
    # Regenerating from the same records gives the same page.
    assert cli_main(["report", "--page", "results.toml"]) == 0
    assert (mixed / "out" / "results.md").read_text() == page


def test_results_page_refuses_a_table_without_records(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "results.toml").write_text(PAGE_TOML)
    assert cli_main(["report", "--page", "results.toml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: table 'Alpha and beta': no records in runs; run its commands (or --run)")
    assert not (tmp_path / "out" / "results.md").exists()
    (tmp_path / "bad.toml").write_text('page = "x.md"\n[[table]]\nheading = "h"\n')
    assert cli_main(["report", "--page", "bad.toml"]) == 2
    assert "table 1 needs heading, commands and runs" in capsys.readouterr().err
    assert cli_main(["report", "--run"]) == 2
    assert "--run needs --page" in capsys.readouterr().err
