"""Atomic writes: a killed writer's temporary file is swept by the next write, a live one's is not."""

from __future__ import annotations

import os
import subprocess
import sys

from circuits.files import write_bytes


def test_next_write_sweeps_a_dead_writers_temp_file_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)  # exited: no process has this pid now (unless reused, vanishingly rare)
    killed = tmp_path / f".y.npy.{pid}.abc123.tmp"  # what SIGKILL mid-write leaves
    live = tmp_path / f".y.npy.{os.getppid()}.def456.tmp"  # a running writer's (our parent runs)
    other = tmp_path / f".z.npy.{pid}.abc123.tmp"  # another output's: not ours to judge now
    for f in (killed, live, other):
        f.write_bytes(b"half")
    write_bytes(tmp_path / "y.npy", b"whole")
    assert (tmp_path / "y.npy").read_bytes() == b"whole"
    assert not killed.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["y.npy", live.name, other.name])
