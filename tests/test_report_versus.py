"""``bench report --versus``: runs paired by seed against a reference method, the mean difference
with its standard error and t interval, the verdict against a margin, and bad input."""

from __future__ import annotations

import pytest

from bench.cli import main as cli_main
from test_report import make_record, md_cells, md_header, run_report, write_all


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


def test_a_variant_the_reference_did_not_run_is_shown_unpaired(tmp_path):
    """The reference ran two variants, alpha a third: alpha's row is listed with nothing paired
    (and no verdict), not silently left out of the comparison."""
    recs = _paired_records()
    hp = {"hidden": 16, "steps": 50, "batch_size": 16, "loss": "c"}
    recs += [make_record("alpha", seed, acc=0.5, version="ac", hparams=hp) for seed in range(3)]
    write_all(tmp_path / "runs", recs)
    markdown, _, _ = run_report(tmp_path, "--versus", "ref", "--margin", "1")
    section = markdown.split("### Paired by seed against ref", 1)[1]
    c = md_cells(section, "alpha", "loss=c")
    assert c["Seeds paired"] == "none (3 unpaired)"
    assert c["Difference, points (± s.e.)"] == "—" and c["Within 1 point or better"] == "n/a"
    assert md_cells(section, "alpha", "loss=a")["Seeds paired"] == "0-2 (n=3), 2 unpaired"


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
