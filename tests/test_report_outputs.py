"""``bench report`` output files: the HTML page rendered by headless Chromium (screenshot not
blank, tables and decodable images present), the figures as SVG and PDF, the LaTeX table, file
permissions, and the results page generated from its TOML description."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from test_report import _scale_records, md_cells, run_report, write_all

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
# Figures, the LaTeX table, file permissions


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
