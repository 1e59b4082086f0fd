"""Training configuration: files, overrides, clear refusals; importing nudask stays light."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest
from test_train_data import QUICK_JOB

from nudask.train.__main__ import main
from nudask.train.config import ConfigError, dump, load, make_config, parse_override, reference


def test_defaults_file_and_overrides(tmp_path):
    cfg = load(
        QUICK_JOB,
        [
            parse_override("train.epochs=7"),
            parse_override("input.crop_size=[32, 40]"),
            parse_override("train.learning_rate=1e-4"),
            parse_override("input.downsample=2"),
        ],
    )
    assert cfg.train.epochs == 7 and cfg.input.crop_size == [32, 40] and cfg.train.learning_rate == 1e-4
    assert cfg.input.downsample == [2, 2] and cfg.input.crop == "vertex"  # from the job file
    assert cfg.model.kernel_size == 3  # a default
    again = make_config(__import__("yaml").safe_load(dump(cfg)))
    assert again == cfg  # the resolved config round-trips


def test_json_job_file(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"task": {"target": "energy"}, "model": {"name": "resnet"}}))
    cfg = load(path)
    assert cfg.task.target == "energy" and cfg.model.name == "resnet"


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"inputs": {}},
            r"unknown config key 'inputs' \(did you mean 'input'\?\); known keys here: data, task",
        ),
        (
            {"input": {"crop_sise": [1, 1]}},
            r"unknown config key 'input.crop_sise' \(did you mean 'crop_size'\?\).*"
            r"known keys here: views, crop, crop_size",
        ),
        ({"train": {"epochs": "many"}}, r"train.epochs: expected int, got 'many'"),
        ({"train": {"epochs": 2.5}}, r"train.epochs: expected int, got 2.5"),
        ({"input": {"crop": "square"}}, r"input.crop: 'square' is not one of none, fixed, vertex, centroid"),
        ({"input": {"crop": "vertex"}}, r"input.crop: vertex needs input.crop_size"),
        ({"split": {"test": 1.5}}, r"split: test must be in \(0, 1\)"),
        ({"input": {"batch_size": 0}}, r"input.batch_size must be >= 1"),
        ({"input": {"views": "u"}}, r"input.views: expected a list"),
        ({"train": {"mixed_precision": "yes"}}, r"train.mixed_precision: expected true or false"),
        ({"model": {"filters": [8, 16, 32]}}, r"model.pool needs one size per conv block"),
        ({"train": {"checkpoint_every_steps": -1}}, r"train.checkpoint_every_steps must be >= 0"),
    ],
)
def test_bad_configs_are_refused_clearly(values, message):
    with pytest.raises(ConfigError, match=message):
        make_config(values)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_override("train.epochs")


def test_cli_reports_config_errors_without_a_traceback(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--config", QUICK_JOB, "--set", "train.epoch=3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "nudask.train: error: unknown config key 'train.epoch' (did you mean 'epochs'?)" in err
    assert "Traceback" not in err


def test_cli_prints_config_and_keys(capsys):
    assert (
        main(["--config", QUICK_JOB, "--data", "x.parquet", "--set", "train.epochs=4", "--print-config"]) == 0
    )
    out = capsys.readouterr().out
    assert "data: x.parquet" in out and "epochs: 4" in out
    assert main(["--keys"]) == 0
    assert "| `input.crop_size` |" in capsys.readouterr().out
    assert reference().count("\n") > 40


def test_no_dataset_is_a_clear_error(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--config", QUICK_JOB, "--set", f"output.runs={tmp_path}"])
    assert "no dataset: pass --data PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", QUICK_JOB, "--data", str(tmp_path / "nowhere")])
    assert "no dataset at" in capsys.readouterr().err


def test_importing_nudask_does_not_import_keras():
    code = (
        "import sys, nudask, nudask.train, nudask.train.split, nudask.train.config, nudask.train.data\n"
        "import nudask.train.stream, nudask.train.prepare, nudask.train.metrics, nudask.train.targets\n"
        "import nudask.evaluate\n"
        "nudask.open_dataset, nudask.preprocess\n"
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("job", sorted(glob.glob(os.path.join(os.path.dirname(QUICK_JOB), "train_*.yaml"))))
def test_job_configs_are_valid(job):
    cfg = load(job)
    assert cfg.task.target and cfg.model.name


PAYLOAD = "@pd.io.common.os.system('id > pwned.txt') == 1"


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("nudask.train: error: ") and "Traceback" not in captured.err
    return lines[0]


def main_error(argv, capsys) -> str:
    """The one error line of ``main(argv)``, which must exit with status 2."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return _one_error_line(capsys)


def test_selection_is_checked_with_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^task.select: '@' at position 1 is not allowed"):
        make_config({"task": {"select": PAYLOAD}})
    with pytest.raises(ConfigError, match=r"^task.select: '__import__\(' at position 1 is not allowed"):
        make_config({"task": {"select": "__import__('os').system('touch pwned')"}})
    with pytest.raises(ConfigError, match=r"task.select: expected 'and', 'or' or the end"):
        make_config({}, [parse_override("task.select=nu_energy > 1 is_cc")])
    assert make_config({"task": {"select": "nu_energy > 0.5 and is_cc == 1"}}).task.select
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_payload_in_a_job_file(tmp_path, monkeypatch, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"task": {"select": PAYLOAD}}))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    line = main_error(["--config", str(job), "--data", str(tmp_path / "data.parquet")], capsys)
    assert "task.select: '@' at position 1 is not allowed" in line and str(job) in line
    assert list(work.iterdir()) == []


def test_cli_config_file_errors_are_one_line_with_the_file(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("task:\n  target: nue_cc\ntrain:\n  epochs: [1\n  verbose: 0\n")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"task": {"target": "cc",}\n}')
    cases = [
        (["--config", str(tmp_path)], f"config file '{tmp_path}' is a folder"),
        (["--config", str(tmp_path / "none.yaml")], f"config file '{tmp_path / 'none.yaml'}' does not exist"),
        (["--config", str(bad_yaml)], f"config file '{bad_yaml}', line 5, column 10: "),
        (["--config", str(bad_json)], f"config file '{bad_json}', line 1: "),
    ]
    for argv, expected in cases:
        line = main_error(argv, capsys)
        assert expected in line, line
    assert "invalid YAML" in main_error(["--config", str(bad_yaml)], capsys)


def test_cli_override_errors_are_one_line(capsys):
    line = main_error(["--set", "task.select=@x"], capsys)
    assert "--set task.select=@x: the value is not valid YAML (found character '@'" in line
    line = main_error(["--set", "train.epochs=[1"], capsys)
    assert "--set train.epochs=[1: the value is not valid YAML" in line
    line = main_error(["--set", "task.select='@x'"], capsys)  # valid YAML, then refused by the grammar
    assert "task.select: '@' at position 1 is not allowed" in line
    line = main_error(["--set", "task.select=nu_energy.real > 1"], capsys)
    assert "task.select: '.' at position 10 is not allowed: attribute access" in line
