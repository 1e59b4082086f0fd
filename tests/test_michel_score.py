"""The Find-Michels scorer (F1 by hand on crafted solutions), the DBSCAN baseline and solve."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from nudask.errors import InputError
from nudask.michel.__main__ import main
from nudask.michel.score import score_files
from nudask.readers.inss.simulate import write_files, write_vlen


@pytest.fixture
def labelled(tmp_path):
    labels = [np.array([2, 2, 0, 1, 2], np.int32), np.array([0, 1], np.int32), np.array([2, 3], np.int32)]
    path = str(tmp_path / "x_label_3.h5")
    write_vlen(path, "labels", labels, np.int32)
    return path


def _solution(tmp_path, rows, name="solution"):
    path = str(tmp_path / "sol.h5")
    write_vlen(path, name, [np.array(r, np.int32) for r in rows], np.int32)
    return path


def test_f1_by_hand(tmp_path, labelled, capsys):
    # image 0: true {0, 1, 4}, predicted {0, 3}: tp 1; image 1: predicted {1}: fp 1; image 2: {0} tp 1
    sol = _solution(tmp_path, [[0, 3, 3], [1], [0]])  # a row given twice counts once
    total, per_image = score_files(sol, labelled)
    assert (total.tp, total.predicted, total.true) == (2, 4, 4)
    assert total.precision == 2 / 4 and total.recall == 2 / 4 and total.f1 == pytest.approx(2 * 2 / (4 + 4))
    np.testing.assert_array_equal(per_image, [[1, 2, 3], [0, 1, 0], [1, 1, 1]])
    assert main(["score", sol, labelled]) == 0
    out = capsys.readouterr().out
    assert "F1 0.5000  precision 0.5000  recall 0.5000  (tp 2, predicted 4, true 4)" in out
    assert "mean F1 0.4667" in out  # per image: 2 * 1 / (2 + 3), 0 (one predicted, none true), 1
    perfect = _solution(tmp_path, [[0, 1, 4], [], [0]], name="whatever")
    assert score_files(perfect, labelled)[0].f1 == 1.0
    empty = _solution(tmp_path, [[], [], []])
    total, _ = score_files(empty, labelled)
    assert total.f1 == 0.0 and total.recall == 0.0 and np.isnan(total.precision)


def test_bad_solutions_are_input_errors(tmp_path, labelled, capsys):
    with pytest.raises(InputError, match=r"image 0.*rows 0..9 outside 0..4"):
        score_files(_solution(tmp_path, [[0, 9], [], []]), labelled)
    with pytest.raises(InputError, match="has 2 images but .* has 3"):
        score_files(_solution(tmp_path, [[0], []]), labelled)
    sol = _solution(tmp_path, [[0], [], []])
    with h5py.File(sol, "a") as f:
        f["extra"] = np.zeros(3)
    assert main(["score", sol, labelled]) == 2
    assert "name the solution's with --dataset NAME" in capsys.readouterr().err
    assert score_files(sol, labelled, dataset="solution")[0].tp == 1


def test_baseline_solve_is_resumable_and_scores_what_the_scorer_says(tmp_path, capsys):
    xyze, labels, truth = write_files(str(tmp_path), images=12, seed=11)
    out = str(tmp_path / "baseline.h5")
    assert main(["solve", "baseline", xyze, "--out", out, "--images-per-chunk", "4", "--workers", "1"]) == 0
    assert not os.path.exists(out + ".parts")
    with h5py.File(out) as f:
        sol = f["solution"][:]
    assert len(sol) == 12 and all(r.dtype == np.int32 for r in sol)
    total, _ = score_files(out, labels)
    assert 0.4 < total.f1 < 0.95  # a real but imperfect baseline
    assert score_files(truth, labels)[0].f1 == 1.0  # the simulator's example solution is the truth
    # resume: a part already there is not redone (plant a wrong one and see it used)
    os.makedirs(out + ".parts")
    planted = os.path.join(out + ".parts", "images-000000000-000000004.npz")
    np.savez(planted, rows=np.array([0, 1, 2, 3], np.int32), lengths=np.array([1, 1, 1, 1]))
    assert main(["solve", "baseline", xyze, "--out", out, "--images-per-chunk", "4", "--workers", "1"]) == 0
    assert "(8 solved now)" in capsys.readouterr().out
    with h5py.File(out) as f:
        again = f["solution"][:]
    assert [r.tolist() for r in again[:4]] == [[0], [1], [2], [3]]
    assert all(np.array_equal(a, b) for a, b in zip(again[4:], sol[4:]))
