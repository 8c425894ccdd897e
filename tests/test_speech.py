"""`bench data convert` end to end on tiny clips: schema round trip, splits by speaker or manifest,
determinism, resume after an interruption, one-line errors for bad audio."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import soundfile

from bench.cli import main as bench_main
from datasets.h5 import read_split
from datasets.speech.convert import convert_collection

FILE_RATE = 22050
KW = dict(rate=8000, channels=32, progress=False)


def _write_tone(path, freq, seconds=0.1, rate=FILE_RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), 0.5 * np.sin(2 * np.pi * freq * t), rate)


@pytest.fixture
def audio(tmp_path):
    root = tmp_path / "audio"
    for label, freq in (("high", 3000.0), ("low", 400.0)):
        for speaker in ("alice", "bob", "carol"):
            _write_tone(root / label / f"{speaker}_1.wav", freq * (1 + 0.05 * len(speaker)))
    return root


def test_folder_converts_to_the_shd_schema_with_held_out_speakers(audio, tmp_path):
    files = convert_collection(audio, tmp_path / "out" / "tones", seed=1, **KW)
    assert set(files) == {"train", "test"}
    train, test = read_split(files["train"], n_in=32), read_split(files["test"], n_in=32)
    assert train.keys == test.keys == ("high", "low")
    assert train.n_samples == 4 and test.n_samples == 2  # carol, the last fifth, is held out
    assert sorted(train.labels) == [0, 0, 1, 1] and train.n_spikes > 0
    assert train.times.max() < 0.1 and train.units.max() < 32
    with h5py.File(files["test"]) as f:
        meta = {k: json.loads(v) for k, v in f["extra/meta_info"].attrs.items()}
        assert [c.decode() for c in f["extra/meta_info/clips"][()]] == ["high/carol_1.wav",
                                                                        "low/carol_1.wav"]
    assert meta["test_speakers"] == ["carol"] and meta["converter"]["rate_hz"] == 8000
    assert meta["speaker_names"][int(test.speakers[0])] == "carol"
    # tones: the high class drives channels nearer the base (lower indices) than the low class
    mean_unit = [train.units[train.offsets[i]:train.offsets[i + 1]].mean() for i in range(4)]
    high = [m for m, y in zip(mean_unit, train.labels) if y == 0]
    low = [m for m, y in zip(mean_unit, train.labels) if y == 1]
    assert max(high) < min(low)
    assert not (tmp_path / "out" / "tones.parts").exists()


def test_manifest_splits_and_worker_count_do_not_change_the_spikes(audio, tmp_path):
    rows = ["path,label,speaker,split"]
    for label in ("high", "low"):
        for speaker, split in (("alice", "train"), ("bob", "valid"), ("carol", "test")):
            rows.append(f"audio/{label}/{speaker}_1.wav,{label},{speaker},{split}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    one = convert_collection(manifest, tmp_path / "a" / "x", seed=3, jobs=1, **KW)
    two = convert_collection(manifest, tmp_path / "b" / "x", seed=3, jobs=2, **KW)
    assert set(one) == {"train", "valid", "test"}
    for split in one:
        a, b = read_split(one[split], n_in=32), read_split(two[split], n_in=32)
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.units, b.units)


def test_an_interrupted_conversion_resumes_where_it_stopped(audio, tmp_path):
    from datasets.speech import convert as module

    done = []

    def flaky(path, out, *args):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(path.name)
        return module.convert_clip(path, out, *args)

    with pytest.raises(KeyboardInterrupt):
        convert_collection(audio, tmp_path / "r" / "x", seed=2, convert=flaky, **KW)
    assert len(list((tmp_path / "r" / "x.parts").glob("*.npz"))) == 2
    calls = []

    def counting(path, out, *args):
        calls.append(path.name)
        return module.convert_clip(path, out, *args)

    resumed = convert_collection(audio, tmp_path / "r" / "x", seed=2, convert=counting, **KW)
    assert len(calls) == 4  # 6 clips, 2 already done
    fresh = convert_collection(audio, tmp_path / "f" / "x", seed=2, **KW)
    for split in fresh:
        np.testing.assert_array_equal(read_split(resumed[split], n_in=32).times,
                                      read_split(fresh[split], n_in=32).times)


def _convert_cli(capsys, *args) -> tuple[int, str]:
    code = bench_main(["data", "convert", *map(str, args), "--no-progress"])
    return code, capsys.readouterr().err.strip()


def test_bad_inputs_are_one_line_errors(audio, tmp_path, capsys):
    out = tmp_path / "o" / "x"
    (tmp_path / "empty").mkdir()
    code, err = _convert_cli(capsys, tmp_path / "empty", "--out", out)
    assert code == 2 and "empty folder" in err and "\n" not in err
    code, err = _convert_cli(capsys, audio, "--out", out, "--rate", 12345)
    assert code == 2 and "unknown rate 12345" in err
    _write_tone(audio / "low" / "dave_1.wav", 400.0, seconds=3.0)
    code, err = _convert_cli(capsys, audio, "--out", out, "--rate", 8000)
    assert code == 2 and "dave_1.wav: clip too long (3.00 s > 2 s" in err
    (audio / "low" / "dave_1.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    code, err = _convert_cli(capsys, audio, "--out", out, "--rate", 8000)
    assert code == 2 and "dave_1.wav: unreadable audio" in err and "\n" not in err
    (audio / "low" / "dave_1.wav").unlink()
    soundfile.write(str(audio / "low" / "dave_1.wav"), np.zeros(800), 8000)
    code, err = _convert_cli(capsys, audio, "--out", out, "--rate", 8000, "--channels", 8)
    assert code == 2 and "dave_1.wav: silent" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,speaker,split\naudio/low/alice_1.wav,low,alice,holdout\n")
    code, err = _convert_cli(capsys, bad, "--out", out)
    assert code == 2 and "unknown split 'holdout'" in err
    code, err = _convert_cli(capsys, tmp_path / "nothing", "--out", out)
    assert code == 2 and "no such folder or .csv manifest" in err
    assert not list(out.parent.glob("*.h5")) if out.parent.exists() else True
