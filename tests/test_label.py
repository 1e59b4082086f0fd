"""``nudask label``: agreement figures, the SQLite store under concurrent saves, the HTTP API's
answers to bad requests, the queue of k annotators, the consensus export and ``task.labels``."""

from __future__ import annotations

import glob
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import nudask
from nudask.cli import main
from nudask.errors import InputError
from nudask.label import DB_NAME, Labelling
from nudask.label.agreement import class_agreement, cohen_kappa, fleiss_kappa, majority
from nudask.label.server import LabelServer
from nudask.readers.connie.simulate import simulate
from nudask.train.config import make_config
from nudask.train.data import load_data

# Fleiss (1971) as worked in the literature: 10 subjects, 14 raters, 5 categories; kappa 0.210
FLEISS_TABLE = np.array(
    [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
     [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
)  # fmt: skip


@pytest.fixture(scope="module")
def events_ds(tmp_path_factory, client):
    """24 cropped CONNIE events (a dense view ``event`` in electrons), with the particle label role."""
    out = str(tmp_path_factory.mktemp("label"))
    simulate(out, files=1, events=24, seed=5, rows=120, cols=200, nsamp=1)
    files = sorted(glob.glob(os.path.join(out, "events", "*.fits")))
    opts = {"mode": "events"}
    return nudask.preprocess(files, os.path.join(out, "ds"), reader="connie", reader_options=opts,
                             events_per_chunk=12, client=client, progress=False)  # fmt: skip


@pytest.fixture
def labelling(events_ds):
    db = os.path.join(events_ds.path, DB_NAME)
    for f in (db, db + "-wal", db + "-shm"):
        if os.path.exists(f):
            os.remove(f)
    return Labelling(events_ds.path, k=2)


@pytest.fixture
def server(labelling):
    srv = LabelServer(labelling, "127.0.0.1", 0)
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    kind = r.getheader("Content-Type", "")
    return r.status, json.loads(payload) if kind.startswith("application/json") else payload


# -- agreement, against values worked by hand ---------------------------------------------
def test_cohen_kappa_by_hand_and_against_scikit_learn():
    # 50 events: both yes 20, a yes b no 5, a no b yes 10, both no 15: po 0.7, pe 0.5*0.6+0.5*0.4 = 0.5
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    x = rng.choice(["m", "e", "b"], 200)
    y = np.where(rng.random(200) < 0.6, x, rng.choice(["m", "e", "b"], 200))
    assert cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y), abs=1e-12)
    assert np.isnan(cohen_kappa(["a", "a"], ["a", "a"]))  # one class only: undefined


def test_fleiss_kappa_and_per_class_agreement_by_hand():
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.20993, abs=1e-5)
    # two annotators: per class 2a / (2a + b + c); a=20 yes-yes, b+c=15 -> 40/55; no: 30/45
    counts = np.array([[2, 0]] * 20 + [[1, 1]] * 15 + [[0, 2]] * 15)
    np.testing.assert_allclose(class_agreement(counts), [40 / 55, 30 / 45])
    # Fleiss for two annotators: pe from the pooled shares (0.55, 0.45), po 0.7
    pe = 0.55**2 + 0.45**2
    assert fleiss_kappa(counts) == pytest.approx((0.7 - pe) / (1 - pe))
    best, tie = majority(np.array([[3, 1, 0], [1, 1, 1], [0, 0, 2], [0, 0, 0]]))
    assert best.tolist() == [0, -1, 2, -1] and tie.tolist() == [False, True, False, False]


# -- the store and the server ----------------------------------------------------------------
def test_the_database_is_wal_and_concurrent_saves_lose_nothing(server, labelling):
    labelling.k = 6  # room for everyone: every save must land
    n, people = len(labelling.keys), [f"annotator{k}" for k in range(6)]
    jobs = [(who, i) for who in people for i in range(n)]

    def save(job):
        who, i = job
        return request(server, "POST", "/api/label", {"annotator": who, "event": i, "class": "muon"})[0]

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(save, jobs))
    assert statuses == [200] * len(jobs)
    db = sqlite3.connect(labelling.store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT annotator) FROM labels").fetchone() == (len(jobs), 6)
    db.close()


@pytest.fixture
def second_server(labelling):
    """``nudask label`` in its own process on the same dataset and database file, k = 2."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(nudask.__file__)))
    err = tempfile.TemporaryFile()
    cmd = [sys.executable, "-m", "nudask", "label", labelling.path, "--k", "2", "--port", "0"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()  # its first line says where it listens
        found = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
        if not found:
            err.seek(0)
            raise AssertionError(f"the second server did not start: {line!r} {err.read()[-2000:]!r}")
        yield ("127.0.0.1", int(found.group(1)))
    finally:
        proc.terminate()
        proc.wait(30)
        err.close()


def post_to(address, body):
    conn = http.client.HTTPConnection(*address, timeout=60)
    conn.request(
        "POST", "/api/label", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    r = conn.getresponse()
    answer = json.loads(r.read())
    conn.close()
    return r.status, answer


def test_simultaneous_saves_through_two_server_processes_keep_k(server, second_server, labelling):
    """12 annotators press save on the same event at the same moment (a barrier), half through
    this process's server and half through another process's, event after event: exactly k of
    them are saved, the others get a 409 and leave no row; saving again updates, never adds."""
    k, classes, events = labelling.k, labelling.classes, range(6)
    people = [f"p{j:02d}" for j in range(12)]
    servers = [server.server_address[:2], second_server]
    barrier = threading.Barrier(len(people), timeout=60)

    def annotate(j, rounds):
        out = []
        for i in rounds:
            barrier.wait()
            body = {"annotator": people[j], "event": i, "class": classes[j % len(classes)]}
            out.append((i, people[j], *post_to(servers[j % 2], body)))
        return out

    def all_at_once(rounds):
        with ThreadPoolExecutor(len(people)) as pool:
            return [r for rs in pool.map(lambda j: annotate(j, rounds), range(len(people))) for r in rs]

    first = all_at_once(events)
    saved = {i: {who for i_, who, status, _ in first if i_ == i and status == 200} for i in events}
    assert {i: len(s) for i, s in saved.items()} == {i: k for i in events}  # k per event, never more
    for i, who, status, answer in first:
        if who in saved[i]:
            assert answer == {"saved": True, "updated": False, "event": i, "annotator": who,
                              "class": classes[int(who[1:]) % len(classes)]}  # fmt: skip
        else:  # a clean refusal, one line, naming the event and what to do
            assert status == 409 and answer["status"] == 409, answer
            assert f"event {labelling.keys[i]} already has its {k} labels" in answer["error"]
            assert "next event" in answer["error"] and "\n" not in answer["error"]
    rows = labelling.store.labels()
    want = {
        (labelling.keys[i], who, classes[int(who[1:]) % len(classes)]) for i in events for who in saved[i]
    }
    assert sorted(rows) == sorted(want)  # every accepted save is there, no refused one

    # everyone saves again, at once: the k who have a label change it (an update), the rest are refused
    second = [(i, who, status) for i, who, status, _ in all_at_once(events)]
    assert sorted((i, who) for i, who, status in second if status == 200) == sorted(
        (i, who) for i in events for who in saved[i]
    )
    assert {status for _, _, status in second} == {200, 409}
    assert sorted(labelling.store.labels()) == sorted(want)

    # one annotator's saves of one event racing each other: one row, the last class
    i, who = 10, "quick"

    def mine_again(c):
        return post_to(servers[c % 2], {"annotator": who, "event": i, "class": classes[c % 3]})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(mine_again, range(8)))
    assert [s for s, _ in answers] == [200] * 8
    assert sorted(a["updated"] for _, a in answers) == [False] + [True] * 7
    mine = [r for r in labelling.store.labels() if r[1] == who]
    assert len(mine) == 1 and mine[0][0] == labelling.keys[i] and mine[0][2] in classes[:3]
    assert labelling.store.counts()[labelling.keys[i]] == 1


def test_bad_requests_get_clean_4xx_answers(server, labelling):
    n = len(labelling.keys)
    ok = {"annotator": "ann", "event": 0, "class": "muon"}
    cases = [
        ("POST", "/api/label", {**ok, "event": n}, 404, "no event"),
        ("POST", "/api/label", {**ok, "event": "x"}, 400, "row number"),
        ("POST", "/api/label", {**ok, "class": "pion"}, 400, "unknown class 'pion'"),
        ("POST", "/api/label", {"event": 0, "class": "muon"}, 400, "missing annotator"),
        ("POST", "/api/label", {**ok, "annotator": "  "}, 400, "missing annotator"),
        ("POST", "/api/label", b"{not json", 400, "malformed JSON"),
        ("POST", "/api/label", b"[1, 2]", 400, "must be an object"),
        ("POST", "/api/settle", {**ok, "class": 3}, 400, "unknown class"),
        ("GET", "/api/next", None, 400, "missing annotator"),
        ("GET", f"/api/event/{n + 5}", None, 404, "no event"),
        ("GET", "/image/1x.png", None, 400, "row number"),
        ("GET", "/image/0.png?zoom=100", None, 400, "zoom must be between"),
        ("GET", "/image/0.png?zoom=big", None, 400, "zoom must be a number"),
        ("GET", "/nowhere", None, 404, "no GET /nowhere"),
        ("DELETE", "/api/label", None, 405, "no DELETE"),
    ]
    for method, path, body, status, message in cases:
        got, answer = request(server, method, path, body)
        assert (got, message in answer["error"]) == (status, True), (method, path, body, answer)
        assert "Traceback" not in json.dumps(answer)
    assert labelling.store.labels() == []  # none of them wrote anything
    status, png = request(server, "GET", "/image/0.png?zoom=2")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_event_goes_to_k_annotators_never_twice_to_one(server, labelling):
    n = len(labelling.keys)
    seen = {"ann": [], "bob": [], "cyd": []}
    for who in ("ann", "bob", "cyd"):
        while True:
            status, ev = request(server, "GET", "/api/next", headers={"Cookie": f"annotator={who}"})
            assert status == 200
            if ev["done"]:
                break
            assert ev["event"] not in seen[who]
            assert "label" not in ev["features"] and "charge" in ev["features"]  # the truth is hidden
            seen[who].append(ev["event"])
            request(server, "POST", "/api/label", {"annotator": who, "event": ev["event"], "class": "blob"})
    assert sorted(seen["ann"]) == sorted(seen["bob"]) == list(range(n)) and seen["cyd"] == []
    assert labelling.progress("cyd") == {"events": n, "complete": n, "labels": 2 * n, "mine": 0}
    status, ev = request(server, "GET", "/api/next?annotator=ann")
    assert ev["done"] and ev["progress"]["mine"] == n


def test_qa_settle_and_export(server, labelling, tmp_path):
    labelling.k = 3  # cyd's label of event 0 is a third one
    classes = labelling.classes
    ann = {i: classes[i % 3] for i in range(10)}
    bob = {i: classes[i % 3] if i < 6 else classes[3] for i in range(10)}
    for who, labels in (("ann", ann), ("bob", bob)):
        for i, c in labels.items():
            assert request(server, "POST", "/api/label", {"annotator": who, "event": i, "class": c})[0] == 200
    request(server, "POST", "/api/label", {"annotator": "cyd", "event": 0, "class": classes[0]})
    status, qa = request(server, "GET", "/api/qa")
    assert status == 200 and qa["annotators"] == {"ann": 10, "bob": 10, "cyd": 1}
    pair = next(p for p in qa["pairs"] if p["annotators"] == ["ann", "bob"])
    assert pair["events"] == 10
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa([ann[i] for i in ann], [bob[i] for i in ann]))
    assert qa["raw_agreement"] == pytest.approx(0.6)
    assert sorted(d["event"] for d in qa["disagreements"]) == [6, 7, 8, 9]
    # settle event 6 (muon against diffusion_hit): the settled label wins; 7, 8, 9 stay ties
    body = {"annotator": "lead", "event": 6, "class": classes[3]}
    assert request(server, "POST", "/api/settle", body)[0] == 200
    status, qa = request(server, "GET", "/api/qa")
    assert next(d for d in qa["disagreements"] if d["event"] == 6)["settled"] == classes[3]
    # a settled event takes no more labels, nor changes to the ones it has (a page shown before)
    for who in ("bob", "dee"):
        status, answer = request(
            server, "POST", "/api/label", {"annotator": who, "event": 6, "class": classes[0]}
        )
        assert status == 409 and f"was settled as {classes[3]} by lead" in answer["error"], answer
    rows = labelling.store.labels()
    assert "dee" not in {who for _, who, _ in rows} and (labelling.keys[6], "bob", classes[3]) in rows

    assert main(["label", labelling.path, "--export", str(tmp_path / "labels.parquet")]) == 0
    table = pq.read_table(tmp_path / "labels.parquet")
    assert json.loads(table.schema.metadata[b"nudask.labels"])["role"] == "particle"
    t = table.to_pandas().set_index(["run", "subrun", "event"])
    meta = labelling.meta.set_index(["run", "subrun", "event"])
    assert len(t) == 10
    for i in range(10):
        row = t.loc[meta.index[i]]
        if i < 6:
            assert (row.consensus, row.tie, row.source) == (ann[i], False, "majority")
        elif i == 6:
            assert (row.consensus, row.tie, row.source, row.settled_by) == (
                classes[3],
                False,
                "settled",
                "lead",
            )
        else:
            assert row.tie and pd.isna(row.consensus) and row.source == "tie"
    assert t.loc[meta.index[0]].n_labels == 3 and t.loc[meta.index[0]].votes == 3
    status, blob = request(server, "GET", "/export.parquet")
    assert status == 200 and blob[:4] == b"PAR1"


def test_training_takes_its_target_from_a_labels_table(labelling, tmp_path):
    classes = labelling.classes
    n = len(labelling.keys)
    for i in range(n - 2):  # the last two events: unlabelled; event 0: a tie
        labelling.save(i, "ann", classes[(i * 5) % 6])
        labelling.save(i, "bob", classes[(i * 5) % 6] if i else classes[1])
    out = str(tmp_path / "labels.parquet")
    labelling.export(out)
    cfg = make_config({"data": labelling.path, "task": {"target": "particle", "labels": out},
                       "split": {"test": 0.3, "validation": 0.0},
                       "input": {"crop": "centre", "crop_size": [64, 64]}})  # fmt: skip
    data = load_data(cfg)
    want = np.array([-1] + [(i * 5) % 6 for i in range(1, n - 2)] + [-1, -1])
    np.testing.assert_array_equal(data.y, want)  # the hand labels, not the simulated truth
    assert data.keep.tolist() == (want >= 0).tolist()
    truth = labelling.meta["label"].to_numpy()
    assert (truth[1 : n - 2] != want[1 : n - 2]).any()

    cfg = make_config({"data": labelling.path, "task": {"target": "particle", "labels": out + ".missing"},
                       "input": {"crop": "centre", "crop_size": [64, 64]}})  # fmt: skip
    with pytest.raises(InputError, match="no such labels table"):
        load_data(cfg)


def test_cli_says_where_it_listens(events_ds, monkeypatch, capsys):
    import nudask.label as label

    monkeypatch.setattr(label, "serve", lambda app, host, port: print(f"serve {host}:{port} k={app.k}"))
    assert main(["label", events_ds.path, "--k", "3", "--port", "0"]) == 0
    assert "serve 127.0.0.1:0 k=3" in capsys.readouterr().out
    assert main(["label", events_ds.path, "--role", "nope"]) == 2
    assert "label role 'nope'" in capsys.readouterr().err


def test_binding_elsewhere_warns(labelling, capsys, monkeypatch):
    from nudask.label import server as server_module

    class Stop(server_module.LabelServer):
        def serve_forever(self, poll_interval=0.5):
            raise KeyboardInterrupt

    monkeypatch.setattr(server_module, "LabelServer", Stop)
    nudask.label.serve(labelling, "0.0.0.0", 0)
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and len(err.strip().splitlines()) == 1
