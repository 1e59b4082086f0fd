"""``nudask label`` in a real headless browser: two annotators label by keyboard, then QA and export."""

from __future__ import annotations

import glob
import os
import sqlite3
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
from browser_fixture import chrome  # noqa: F401 - the fixture

import nudask
from nudask.label import Labelling
from nudask.label.agreement import cohen_kappa
from nudask.label.server import LabelServer
from nudask.readers.connie.simulate import simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory, client):
    out = str(tmp_path_factory.mktemp("label_browser"))
    simulate(out, files=1, events=8, seed=2, rows=120, cols=200, nsamp=1)
    files = sorted(glob.glob(os.path.join(out, "events", "*.fits")))
    ds = nudask.preprocess(files, os.path.join(out, "ds"), reader="connie", reader_options={"mode": "events"},
                           client=client, progress=False)  # fmt: skip
    app = Labelling(ds.path, k=2)
    srv = LabelServer(app, "127.0.0.1", 0)
    srv.start()
    yield app, srv.url
    srv.shutdown()
    srv.server_close()


def wait(driver, condition, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.05)
    status = driver.execute_script("return document.getElementById('status')?.textContent")
    raise AssertionError(f"timed out waiting for {what}; page status: {status!r}")


def current_event(driver):
    return driver.execute_script("return document.body.dataset.event")


def label_all(driver, plan):
    """Press the shortcut of ``plan[event]`` for every event shown until none is left; the order seen."""
    from selenium.webdriver.common.by import By

    seen = []
    while True:
        wait(driver, "return document.body.dataset.event !== undefined", "an event or the end")
        ev = current_event(driver)
        if ev == "":
            assert driver.find_element(By.ID, "done").is_displayed()
            return seen
        wait(driver, "const i = document.getElementById('image'); return i.complete && i.naturalWidth > 0",
             "the event image")  # fmt: skip
        seen.append(int(ev))
        driver.find_element(By.TAG_NAME, "body").send_keys(plan[int(ev)])
        wait(driver, f"return document.body.dataset.event !== '{ev}'", f"the event after {ev}")


def test_two_annotators_label_by_keyboard_then_qa_and_export(served, chrome):  # noqa: F811
    from selenium.webdriver.common.by import By

    app, url = served
    n, classes, keys = len(app.keys), app.classes, {c: k for k, c in app.keymap.items() if k.isdigit()}
    ann = {i: classes[i % 3] for i in range(n)}
    bob = {i: ann[i] if i < n // 2 else classes[(i % 3) + 3] for i in range(n)}
    driver = chrome

    # ann: asked her name once (a cookie keeps it), then digits; she zooms in with "+"
    driver.get(url)
    wait(driver, "return !document.getElementById('ask').hidden", "the name form")
    driver.find_element(By.ID, "annotator").send_keys("ann")
    driver.find_element(By.ID, "start").click()
    wait(driver, "return document.body.dataset.event !== undefined && document.body.dataset.event !== ''",
         "the first event")  # fmt: skip
    wait(driver, "return document.getElementById('image').naturalWidth > 0", "the image")
    width = driver.execute_script("return document.getElementById('image').naturalWidth")
    driver.find_element(By.TAG_NAME, "body").send_keys("+")
    wait(driver, f"return document.getElementById('image').naturalWidth > {width * 1.5}", "the zoomed image")
    assert "particle" not in driver.find_element(By.ID, "features").text  # the truth is not shown
    assert "charge" in driver.find_element(By.ID, "features").text
    seen_ann = label_all(driver, {i: keys[c] for i, c in ann.items()})
    driver.get(url)  # a reload remembers her and has nothing left for her
    wait(driver, "return document.body.dataset.event === ''", "nothing left for ann")
    assert driver.find_element(By.ID, "who").text == "ann"

    # bob: his name in the URL, letters for half of his labels
    letter = {c: k for k, c in app.keymap.items() if k.isalpha()}
    driver.delete_all_cookies()
    driver.get(url + "?annotator=bob")
    seen_bob = label_all(driver, {i: (keys if i % 2 else letter)[c] for i, c in bob.items()})
    assert sorted(seen_ann) == sorted(seen_bob) == list(range(n))

    db = sqlite3.connect(app.store.path)
    rows = db.execute("SELECT key, annotator, class FROM labels").fetchall()
    db.close()
    assert sorted(rows) == sorted(
        [(app.keys[i], "ann", c) for i, c in ann.items()] + [(app.keys[i], "bob", c) for i, c in bob.items()]
    )

    # QA: the figures the page shows are the ones computed by hand from the plan
    driver.get(url + "qa")
    wait(driver, "return document.body.dataset.loaded === '1'", "the QA figures")
    kappa = cohen_kappa([ann[i] for i in range(n)], [bob[i] for i in range(n)])
    assert float(driver.find_element(By.ID, "cohen").text) == pytest.approx(kappa, abs=5e-4)
    assert float(driver.find_element(By.ID, "raw").text) == pytest.approx((n // 2) / n, abs=5e-4)
    muon = driver.find_element(By.CSS_SELECTOR, f"#per-class td[data-class='{classes[0]}']").text
    agree = sum(ann[i] == bob[i] == classes[0] for i in range(n))
    pairs = sum((ann[i] == classes[0]) + (bob[i] == classes[0]) for i in range(n))
    assert float(muon) == pytest.approx(2 * agree / pairs, abs=5e-4)
    rows = driver.find_elements(By.CSS_SELECTOR, "#disagreements tr[data-event]")
    assert sorted(int(r.get_attribute("data-event")) for r in rows) == list(range(n // 2, n))

    # settle the first disagreement as ann had it
    first = rows[0]
    event = int(first.get_attribute("data-event"))
    from selenium.webdriver.support.ui import Select

    Select(first.find_element(By.TAG_NAME, "select")).select_by_visible_text(ann[event])
    first.find_element(By.CSS_SELECTOR, "button.settle").click()
    wait(driver, f"return document.querySelector(\"tr[data-event='{event}'] td.settled\")?.textContent "
         f"=== '{ann[event]}'", "the settled label")  # fmt: skip
    assert app.store.settled()[app.keys[event]][0] == ann[event]

    # export with the button: majority where they agree, the settled label, ties flagged
    driver.find_element(By.CSS_SELECTOR, "#export button").click()
    path = os.path.join(chrome.download_dir, "labels.parquet")
    end = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.1)
    time.sleep(0.3)  # the download is renamed into place when complete
    table = pq.read_table(path).to_pandas()
    table["key"] = [f"{r}/{s}/{e}" for r, s, e in zip(table.run, table.subrun, table.event)]
    got = table.set_index("key")
    assert len(got) == n
    for i in range(n):
        row = got.loc[app.keys[i]]
        if i < n // 2:
            assert (row.consensus, bool(row.tie)) == (ann[i], False)
        elif i == event:
            assert (row.consensus, row.source, row.settled_by) == (ann[i], "settled", "bob")
        else:
            assert bool(row.tie) and row.source == "tie" and pd.isna(row.consensus)


def test_a_save_refused_because_others_completed_the_event_is_shown_and_the_page_moves_on(served, chrome):  # noqa: F811
    """cyd has event E on screen; meanwhile ann and bob (another tab, another server) label it,
    so it has its k = 2 labels; cyd's key press gets the 409, the page says so and goes on."""
    import http.client
    import json

    from selenium.webdriver.common.by import By

    app, url = served
    db = sqlite3.connect(app.store.path)
    with db:  # a fresh start: no labels
        db.execute("DELETE FROM labels")
        db.execute("DELETE FROM settled")
    db.close()
    driver = chrome
    driver.delete_all_cookies()
    driver.get(url + "?annotator=cyd")
    wait(driver, "return document.body.dataset.event !== undefined && document.body.dataset.event !== ''",
         "cyd's first event")  # fmt: skip
    event = int(current_event(driver))
    host, port = url.split("//")[1].rstrip("/").split(":")
    for who in ("ann", "bob"):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps({"annotator": who, "event": event, "class": app.classes[0]})
        conn.request("POST", "/api/label", body=body, headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
    key = next(k for k, c in app.keymap.items() if k.isdigit() and c == app.classes[1])
    driver.find_element(By.TAG_NAME, "body").send_keys(key)
    status = wait(driver, "return document.getElementById('status').textContent", "the refusal")
    assert f"event {app.keys[event]} already has its 2 labels (by ann, bob)" in status
    wait(driver, f"return document.body.dataset.event !== '{event}'", "the next event")
    assert sorted(app.store.labels()) == [(app.keys[event], "ann", app.classes[0]),
                                          (app.keys[event], "bob", app.classes[0])]  # fmt: skip
