"""How many processes ``scrawn serve`` runs (server/workers.py ``count``): ``--workers``, else one per CPU the
process may use (its affinity, capped by a cgroup v2 quota); one with pyvoy, which says so."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from scrawn.server.config import Settings
from scrawn.server.workers import count, cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        (None, AFFINITY),  # no cgroup v2 file
        ("max 100000\n", AFFINITY),  # no quota
        ("50000 100000\n", 1),  # half a CPU: one process, never none
        ("150000 100000\n", min(AFFINITY, 2)),  # rounded up, never above the CPUs it may run on
        ("100000000 100000\n", AFFINITY),
        ("garbage\n", AFFINITY),
    ],
)
def test_cpus_is_the_affinity_capped_by_the_cgroup_quota(
    tmp_path: Path, cpu_max: str | None, expected: int
) -> None:
    cgroup = tmp_path / "cpu.max"
    if cpu_max is not None:
        cgroup.write_text(cpu_max)
    assert cpus(cgroup) == expected


def test_the_default_is_one_process_per_cpu_and_a_choice_is_kept() -> None:
    assert count(Settings()) == cpus()
    assert count(Settings(workers=3)) == 3
    assert count(Settings(workers=1)) == 1


def test_pyvoy_runs_one_process_by_default_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="scrawn.serve"):
        assert count(Settings(server="pyvoy")) == 1
    assert "1 server process with SCRAWN_SERVER=pyvoy: Envoy's own worker threads use the CPUs" in caplog.text
