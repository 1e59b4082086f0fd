"""Real infrastructure for the tests: a single-node SLURM (deploy/slurm-up.sh).

Tests that need what cannot be had here (not root, no apt to install SLURM,
bring-up fails) are skipped with the reason; with ``CI`` set in the
environment the same condition fails the test instead, so CI cannot go green
without running them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SLURM_BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "munged")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; under ``CI`` fail instead (CI must run real-infrastructure tests)."""
    if os.environ.get("CI"):
        pytest.fail(
            f"{reason} [CI={os.environ['CI']}: this test must run in CI, not be skipped]", pytrace=False
        )
    print(f"\nSKIPPED: {reason}", file=sys.stderr, flush=True)
    pytest.skip(reason)


def root_on_debian_reason() -> str | None:
    """Why the real-infrastructure scripts cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (deploy/slurm-up.sh and apptainer-up.sh install packages and start daemons)"
    if not shutil.which("apt-get") or not os.path.exists("/etc/debian_version"):
        return "needs Debian with apt-get (the deploy scripts install from apt)"
    return None


def slurm_running() -> bool:
    if not shutil.which("scontrol"):
        return False
    r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return "is UP" in r.stdout


def squeue(*fields: str) -> list[list[str]]:
    """Rows of ``squeue`` for all jobs, one list of ``fields`` (e.g. %i, %j, %T) per job."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "|".join(fields)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="session", name="slurm")
def slurm_session() -> Iterator[str]:
    """A running single-node SLURM; started by deploy/slurm-up.sh (and stopped) if needed."""
    was_up = slurm_running()
    if not was_up:
        reason = root_on_debian_reason()
        if reason and not all(shutil.which(b) for b in SLURM_BINARIES):
            skip_or_fail(f"no SLURM: {reason}")
        try:
            r = subprocess.run([str(DEPLOY / "slurm-up.sh")], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            skip_or_fail("deploy/slurm-up.sh did not finish in 600 s")
        if r.returncode != 0:
            skip_or_fail(f"deploy/slurm-up.sh failed (exit {r.returncode}): {r.stderr[-2000:]}")
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    yield host
    if not was_up:  # leave the machine as we found it
        subprocess.run([str(DEPLOY / "slurm-down.sh")], capture_output=True, timeout=300)
