"""The Apptainer image: static checks with apptainer's own rules, and a real build + %test."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest
from slurm_fixture import DEPLOY, REPO, root_on_debian_reason, skip_or_fail

DEF = REPO / "Singularity.def"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, DEPLOY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deflint = _load("deflint")
localize_def = _load("localize_def")


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"(?m)^%(\w+)[^\n]*\n", text)
    return {name: body for name, body in zip(parts[1::2], parts[2::2])}


def test_def_file_passes_apptainer_rules():
    pytest.importorskip("spython")  # the parse-and-convert half of deflint
    errors, warnings = deflint.lint(str(DEF))
    assert errors == [] and warnings == [], (errors, warnings)


@pytest.mark.parametrize(
    "broken, message",
    [
        (
            "From: python:3.11-slim\n\n%post\n    echo hi\n%runscript\n    exec nudask\n",
            "no 'Bootstrap:' header",
        ),
        ("Bootstrap: docker\nFrom: python:3.11-slim\n\n%psot\n    echo hi\n", "invalid section %psot"),
        ("Bootstrap: dokcer\nFrom: python:3.11-slim\n\n%post\n    echo hi\n", "unknown bootstrap agent"),
        ("Bootstrap: docker\n\n%post\n    echo hi\n", "needs a 'From:' line"),
        ("Bootstrap docker\nFrom: python:3.11-slim\n%post\n    echo hi\n", "no 'Bootstrap:' header"),
    ],
)
def test_deflint_rejects_what_apptainer_rejects(tmp_path, broken, message):
    path = tmp_path / "bad.def"
    path.write_text(broken)
    errors, _ = deflint.lint(str(path))
    assert any(message in e for e in errors), errors
    r = subprocess.run(
        ["python3", str(DEPLOY / "deflint.py"), str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "FAIL" in r.stdout


def test_def_file_content():
    text = DEF.read_text()
    header = text[: re.search(r"(?m)^%", text).start()]
    assert re.search(r"(?m)^Bootstrap: docker$", header)
    version = re.search(r"(?m)^From: python:3\.(\d+)", header)
    assert version and int(version.group(1)) >= 11
    s = sections(text)
    assert {"arguments", "labels", "help", "files", "post", "environment", "runscript", "test"} <= set(s)
    for line in s["files"].strip().splitlines():  # %files sources exist, relative to the repo
        source = line.split()[0]
        assert (REPO / source).exists(), source
    copied = {line.split()[0] for line in s["files"].strip().splitlines()}
    assert {"pyproject.toml", "README.md", "nudask", "deploy/jobqueue.yaml"} <= copied
    for package in ("{{ TF }}", "keras", "dask-jobqueue", "/opt/nudask"):
        assert package in s["post"], package
    assert "TF=tensorflow-cpu" in s["arguments"]
    assert 'exec nudask "$@"' in s["runscript"]
    for step in ("nudask simulate", "nudask preprocess", "open_dataset", "import tensorflow", "import keras"):
        assert step in s["test"], step


def test_localized_def_builds_from_a_local_image():
    local = localize_def.localize(DEF.read_text(), "/var/cache/base.sif")
    assert local.startswith("Bootstrap: localimage\nFrom: /var/cache/base.sif\n")
    assert "python:3.11-slim" not in local.split("%", 1)[0]
    post = sections(local)["post"]
    assert post.splitlines()[0].strip().startswith("export PIP_CERT=/etc/ssl/certs/ca-certificates.crt")
    assert sections(local)["test"] == sections(DEF.read_text())["test"]


@pytest.mark.container
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_image_builds_and_passes_its_test(tmp_path):
    """Really build Singularity.def (Apptainer in a Debian trixie root), run %test and exec."""
    reason = root_on_debian_reason()
    if reason:
        skip_or_fail(f"no Apptainer build: {reason}")
    try:
        up = subprocess.run([str(DEPLOY / "apptainer-up.sh")], capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        skip_or_fail("deploy/apptainer-up.sh did not finish in 1200 s")
    if up.returncode != 0:
        skip_or_fail(f"deploy/apptainer-up.sh failed (exit {up.returncode}): {up.stderr[-2000:]}")
    probe = (
        "python -c 'import h5py, keras, pyarrow, tensorflow, nudask, nudask.cluster as c; "
        'c.import_jobqueue(); print("image-ok", nudask.__version__, tensorflow.__version__)\''
    )
    t0 = time.monotonic()
    r = subprocess.run(
        [str(DEPLOY / "apptainer-build-test.sh"), str(DEF), probe],
        cwd=REPO,
        env={**os.environ, "APPTAINER_OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=2300,
    )
    elapsed = time.monotonic() - t0
    log = tmp_path / "Singularity.ci.build.log"
    tail = log.read_text()[-3000:] if log.exists() else ""
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n{tail}"
    assert "smoke test OK: 2 events" in r.stdout, r.stdout[-3000:]
    assert "image-ok 0." in r.stdout
    print(f"\napptainer build + %test + exec: {elapsed:.0f} s\n{r.stderr}")
    (tmp_path / "Singularity.ci.sif").unlink()  # about 1 GB
    assert not list(REPO.glob("*.ci.sif")) and not list(REPO.glob(".*.ci.def"))


SCRIPTS = sorted([*DEPLOY.glob("*.sh"), *DEPLOY.glob("sbatch/*.sbatch")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_deploy_scripts_parse(script):
    assert os.access(script, os.X_OK) or script.suffix == ".sbatch", f"{script.name} not executable"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_train_gpu_template_uses_the_image_on_a_gpu():
    text = (DEPLOY / "sbatch" / "train-gpu.sbatch").read_text()
    assert "#SBATCH --gres=gpu:1" in text.splitlines()
    from nudask.train.__main__ import parser as train_parser

    line = re.search(r'apptainer exec --nv "\$SIF" python -m nudask\.train (.*)', text)
    assert line, "the template runs nudask.train from the image"
    # the arguments it passes are ones nudask.train takes (a positional dataset is not)
    argv = shlex.split(line.group(1).replace('"$DATA"', "ds.parquet").replace('"$@"', "--no-evaluate"))
    args = train_parser().parse_args(argv)
    assert args.data == "ds.parquet" and args.no_evaluate


def test_missing_infrastructure_skips_but_fails_under_ci(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = root_on_debian_reason()
    assert reason and "root" in reason
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        skip_or_fail(reason)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        skip_or_fail(reason)
