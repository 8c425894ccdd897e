import json

import pytest

from bench import records


def _record(run_id="m-d-s0-x", status="ok", acc=0.5):
    record = records.new_record(run_id=run_id, method="m", method_version="v1", dataset="d",
                                dataset_hash="h", seed=0, hparams={"hidden": 8},
                                env=records.environment(1, "cpu", None, {}), tags={})
    record["status"] = status
    record["metrics"]["test_acc"] = acc
    record["curve"] = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.2, "valid_acc": 0.3,
                        "seconds": 0.1}]
    return record


def test_round_trip_and_dataframe(tmp_path):
    path = records.write(_record(), tmp_path)
    assert records.read(path)["metrics"]["test_acc"] == 0.5
    records.write(_record(run_id="m-d-s1-y", status="diverged", acc=None), tmp_path)
    frame = records.load(tmp_path)
    assert len(frame) == 2
    assert set(frame["status"]) == {"ok", "diverged"}
    assert "metrics.test_acc" in frame.columns and "env.commit" in frame.columns
    assert frame.loc[frame.status == "ok", "hparams.hidden"].item() == 8
    assert frame["curve"].iloc[0][0]["valid_acc"] == 0.3


def test_never_overwrites_and_leaves_no_temp_file(tmp_path):
    records.write(_record(), tmp_path)
    with pytest.raises(FileExistsError):
        records.write(_record(acc=0.9), tmp_path)
    assert records.read(tmp_path / "m-d-s0-x.json")["metrics"]["test_acc"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["m-d-s0-x.json"]


def test_rejects_unknown_status_and_schema(tmp_path):
    with pytest.raises(ValueError):
        records.write(_record(status="great"), tmp_path)
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(ValueError, match="schema_version"):
        records.read(path)


def test_environment_names_the_code_and_machine():
    env = records.environment(2, "cpu", None, {"OMP_NUM_THREADS": "2"})
    assert env["threads"] == 2 and env["python"].startswith("3.")
    assert "torch" in env["packages"]
    assert env["commit"] is None or len(env["commit"]) == 40
