"""The ``nudask`` command line: one-line errors for NudaskError only, train/evaluate subcommands."""

from __future__ import annotations

import os
import pickle

import pytest

from nudask import cli
from nudask import evaluate as evaluate_cli
from nudask.errors import (
    ConfigError,
    DataError,
    DatasetError,
    DatasetNotFoundError,
    EventIndexError,
    NotFoundError,
    NudaskError,
    OutputError,
    OutputExistsError,
    TrainingError,
)
from nudask.train import __main__ as train_cli

QUICK_JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "train_quick.yaml")


def _fails(argv, capsys) -> str:
    """The stderr of ``nudask ARGV``, which must exit 2."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own refusal of an argument
        code = stop.code
    assert code == 2
    return capsys.readouterr().err


def test_train_subcommand_prints_the_same_config_as_python_m_nudask_train(capsys):
    args = ["--config", QUICK_JOB, "--data", "x.parquet", "--set", "train.epochs=4", "--print-config"]
    assert train_cli.main(args) == 0
    expected = capsys.readouterr().out
    assert cli.main(["train", *args]) == 0
    assert capsys.readouterr().out == expected
    assert "data: x.parquet" in expected and "epochs: 4" in expected


def test_train_subcommand_reports_config_errors_in_one_line(capsys):
    err = _fails(["train", "--config", QUICK_JOB, "--set", "train.epoch=3"], capsys)
    assert err == "nudask train: error: unknown config key 'train.epoch' (did you mean 'epochs'?); " + (
        "known keys here: " + err.split("known keys here: ")[1]
    )
    assert err.count("\n") == 1 and "Traceback" not in err
    err = _fails(["train", "--set", "input.views=[u, v"], capsys)
    assert err.startswith("nudask train: error: --set input.views=[u, v: the value is not valid YAML (")
    err = _fails(["train", "--config", "nowhere.yaml"], capsys)
    assert err == "nudask train: error: config file 'nowhere.yaml' does not exist\n"


def test_python_m_nudask_train_reports_yaml_errors_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(["--set", "train.epochs"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "nudask.train: error: --set: expected section.key=value, got 'train.epochs'\n"
    )


def test_evaluate_subcommand_takes_the_arguments_of_python_m_nudask_evaluate():
    argv = ["runs/x/1", "--model", "last", "--data", "d.parquet", "--quiet"]
    mine = vars(cli._parser().parse_args(["evaluate", *argv]))
    assert mine.pop("command") == "evaluate"
    assert mine == vars(evaluate_cli.parser().parse_args(argv))
    train = vars(cli._parser().parse_args(["train", "--resume", "r", "--set", "a.b=1", "--no-evaluate"]))
    assert train.pop("command") == "train"
    assert train == vars(train_cli.parser().parse_args(["--resume", "r", "--set", "a.b=1", "--no-evaluate"]))


def test_misspelt_reader_option_is_one_line_with_a_suggestion(capsys, tmp_path):
    out = str(tmp_path / "ds")
    argv = ["preprocess", "x.h5", "--out", out, "--reader", "microboone", "-O", "geomtry=small"]
    assert _fails(argv, capsys) == (
        "nudask preprocess: error: reader 'microboone' has no option 'geomtry' (did you mean "
        "'geometry'?); its options: geometry, factor, cutoff, saturation, fast_inflate, kernel\n"
    )
    assert not os.path.exists(out)
    err = _fails(["preprocess", "x.h5", "--out", out, "-O", "geometry=[small"], capsys)
    assert "argument -O/--reader-option: 'geometry=[small': the value is not valid YAML (" in err
    err = _fails(["preprocess", "x.h5", "--out", out, "--reader", "larcv"], capsys)
    assert err.startswith(
        "nudask preprocess: error: unknown reader 'larcv'; installed readers: microboone, nova"
    )


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(capsys, tmp_path, monkeypatch):
    assert _fails(["describe", str(tmp_path / "nowhere")], capsys) == (
        f"nudask describe: error: no dataset at '{tmp_path / 'nowhere'}'\n"
    )
    err = _fails(
        ["preprocess", "x.h5", "--out", str(tmp_path / "d"), "--dry-run", "--cluster", "nope"], capsys
    )
    assert err.startswith("nudask preprocess: error: unknown cluster profile 'nope'; profiles: ")
    err = _fails(["preprocess", "x.h5", "--out", "d", "--dry-run", "--profiles", "nowhere.yaml"], capsys)
    assert err == "nudask preprocess: error: no cluster profiles file at 'nowhere.yaml'\n"

    def broken(a):
        raise ValueError("a bug: not a NudaskError")

    monkeypatch.setitem(cli.COMMANDS, "readers", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["readers"])

    def multiline(a):
        raise DataError("first line\n  second line")

    monkeypatch.setitem(cli.COMMANDS, "readers", multiline)
    assert _fails(["readers"], capsys) == "nudask readers: error: first line second line\n"


@pytest.mark.parametrize(
    ("error", "builtin", "kind"),
    [
        (DatasetNotFoundError("no dataset at 'x'"), FileNotFoundError, DatasetError),
        (NotFoundError("'r' is not a run folder"), FileNotFoundError, NudaskError),
        (OutputExistsError("output 'o' was written with other settings"), FileExistsError, OutputError),
        (EventIndexError("event 9 out of range"), IndexError, DataError),
        (TrainingError("the training loss became nan"), FloatingPointError, NudaskError),
        (ConfigError("bad"), ValueError, NudaskError),
    ],
)
def test_refined_errors_keep_their_builtin(error, builtin, kind):
    assert isinstance(error, builtin) and isinstance(error, kind) and isinstance(error, NudaskError)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)


def test_every_error_survives_the_workers_pickling():
    """Errors raised on Dask workers come back through tblib's pickling: every kind must."""
    import subprocess
    import sys

    code = """
import inspect, pickle
import nudask.errors as E
from tblib import pickling_support
pickling_support.install()
for name, cls in inspect.getmembers(E, inspect.isclass):
    if issubclass(cls, E.NudaskError) and cls is not E.InputError:
        again = pickle.loads(pickle.dumps(cls("why")))
        assert type(again) is cls and str(again) == "why", name
again = pickle.loads(pickle.dumps(E.InputError("f.h5", "bad", "fix it")))
assert str(again) == "file 'f.h5': bad; fix it"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr
