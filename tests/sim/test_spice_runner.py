"""The ngspice runner against circuit theory, and its isolation of failing, hung and crashing jobs."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sim.spice import (
    ConvergenceError,
    NetlistError,
    NgspiceMissingError,
    SimJob,
    SimResult,
    dask_executor,
    locate,
    ngspice_version,
    run_inline,
    run_jobs,
)
from sim.spice.worker import shared_ngspice

pytestmark = pytest.mark.ngspice

REPO = Path(__file__).resolve().parents[2]

V_IN, R1, R2 = 5.0, 1e3, 3e3
DIVIDER = SimJob("divider", f"* divider\nV1 in 0 DC {V_IN}\nR1 in out {R1}\nR2 out 0 {R2}\n.op\n.end\n")

R_RC, C_RC = 1e3, 1e-6  # tau = 1 ms
RC = SimJob(
    "rc_step",
    f"* rc step\nV1 in 0 DC 1\nR1 in out {R_RC}\nC1 out 0 {C_RC} IC=0\n.tran 1u 5m 0 10u uic\n.end\n",
)
DC_SWEEP = SimJob("dc_sweep", "* sweep\nV1 in 0 DC 0\nR1 in out 1k\nR2 out 0 1k\n.dc V1 0 2 0.1\n.end\n")

# Two ideal sources forcing one node to different voltages: no DC solution exists.
SOURCE_LOOP = SimJob("source_loop", "* impossible\nV1 a 0 DC 1\nV2 a 0 DC 2\nR1 a 0 1k\n.op\n.end\n")

# A picosecond maximum step over ten seconds: runs for hours.
ENDLESS = SimJob(
    "endless", "* endless\nV1 in 0 DC 1\nR1 in out 1k\nC1 out 0 1u\n.tran 1p 10 0 1p\n.end\n", timeout_s=2.0
)

# ngspice prints 'Checking parameters', 'Warning: Pd = 0 ...' for this BSIM3 device, and 'Note: Starting
# dynamic gmin stepping' for the floating capacitor node; both simulations succeed.
NOISY = [
    SimJob(
        "bsim3_notes",
        textwrap.dedent(
            """\
            * nmos with default geometry
            .model nch nmos level=8 version=3.3.0 tox=4e-9 vth0=0.4
            VDD vdd 0 DC 1.2
            VG g 0 DC 0.8
            M1 d g 0 0 nch W=1u L=0.1u
            RD vdd d 10k
            .op
            .end
            """
        ),
    ),
    SimJob("gmin_notes", "* floating node\nI1 0 a DC 1m\nC1 a 0 1p\n.op\n.end\n"),
]

# Kills the nearest ancestor that has libngspice mapped (the worker running ngspice's `shell`) with SIGSEGV.
_KILLER = """\
import os, signal
pid = os.getppid()
while pid > 1:
    with open(f"/proc/{pid}/maps") as maps:
        if "libngspice" in maps.read():
            os.kill(pid, signal.SIGSEGV)
            break
    with open(f"/proc/{pid}/stat") as stat:
        pid = int(stat.read().rsplit(")", 1)[1].split()[1])
"""


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a scratch directory: BSIM models write check logs (b3v33check.log) to the working directory."""
    monkeypatch.chdir(tmp_path)


def _crash_job(tmp_path: Path) -> SimJob:
    """A deck whose .control block makes its worker process die of SIGSEGV while ngspice runs."""
    script = tmp_path / "kill_ngspice_process.py"
    script.write_text(_KILLER)
    deck = f"* crash\nV1 a 0 DC 1\nR1 a 0 1k\n.op\n.control\nshell {sys.executable} {script}\n.endc\n.end\n"
    return SimJob("crash", deck)


def _assert_same(a: list[SimResult], b: list[SimResult]) -> None:
    """Same names, outcomes and bit-identical vectors."""
    assert [r.name for r in a] == [r.name for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.ok and y.ok, (x.error, y.error)
        assert x.vectors.keys() == y.vectors.keys()
        for key in x.vectors:
            np.testing.assert_array_equal(x.vectors[key], y.vectors[key])


def test_divider_op_matches_ohms_law() -> None:
    result = run_inline(DIVIDER).raise_for_error()
    assert result.vectors["out"][0] == pytest.approx(V_IN * R2 / (R1 + R2), abs=1e-9)
    assert result.vectors["v1#branch"][0] == pytest.approx(-V_IN / (R1 + R2), abs=1e-12)


def test_rc_step_matches_exponential() -> None:
    result = run_inline(RC).raise_for_error()
    t, out = result.vectors["time"], result.vectors["out"]
    assert t[-1] == pytest.approx(5e-3)
    np.testing.assert_allclose(out, 1.0 - np.exp(-t / (R_RC * C_RC)), atol=1e-3)


def test_dc_sweep_returns_sweep_and_output() -> None:
    result = run_inline(DC_SWEEP).raise_for_error()
    sweep, out = result.vectors["v-sweep"], result.vectors["out"]
    assert sweep.shape == out.shape == (21,)
    np.testing.assert_allclose(sweep, np.linspace(0.0, 2.0, 21), atol=1e-12)
    np.testing.assert_allclose(out, sweep / 2, atol=1e-9)


def test_ac_vectors_are_complex() -> None:
    job = SimJob("rc_ac", "* rc ac\nV1 in 0 DC 0 AC 1\nR1 in out 1k\nC1 out 0 1u\n.ac dec 5 10 10k\n.end\n")
    result = run_inline(job).raise_for_error()
    f, out = result.vectors["frequency"].real, result.vectors["out"]
    assert np.iscomplexobj(out)
    np.testing.assert_allclose(out, 1 / (1 + 2j * np.pi * f * 1e3 * 1e-6), rtol=1e-9)


@pytest.mark.parametrize("job", NOISY, ids=lambda job: job.name)
def test_informational_stderr_is_not_failure(job: SimJob) -> None:
    result = run_inline(job)
    assert result.ok, result.error
    assert "Checking parameters" in result.log or "Note:" in result.log


def test_netlist_errors_are_reported() -> None:
    bad_model = run_inline(SimJob("bad_model", "* q\nV1 a 0 1\nQ1 a a 0 nomodel\nR1 a 0 1k\n.op\n.end\n"))
    assert not bad_model.ok and bad_model.error_type == "NetlistError"
    assert "nomodel" in bad_model.error
    no_end = run_inline(SimJob("no_end", "* r\nV1 a 0 1\nR1 a 0 1k\n.op\n"))
    assert no_end.error_type == "NetlistError" and ".end" in no_end.error
    no_analysis = run_inline(SimJob("no_analysis", "* r\nV1 a 0 1\nR1 a 0 1k\n.end\n"))
    with pytest.raises(NetlistError, match="analysis card"):
        no_analysis.raise_for_error()
    assert run_inline(DIVIDER).ok  # the instance is still usable


def test_non_convergence_fails_only_its_job(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sim.spice.runner")
    results = run_jobs([DIVIDER, SOURCE_LOOP, RC], workers=2)
    assert [r.ok for r in results] == [True, False, True]
    assert [r.levelno for r in caplog.records if "source_loop" in r.getMessage()] == [logging.WARNING]
    caplog.clear()  # a caller that retries failed jobs reports them itself: the runner only logs at debug level
    assert [r.ok for r in run_jobs([SOURCE_LOOP], workers=1, retried=True)] == [False]
    assert [r.levelno for r in caplog.records if "source_loop" in r.getMessage()] == [logging.DEBUG]
    failed = results[1]
    assert failed.error_type == "ConvergenceError"
    assert "source_loop" in failed.error and "did not converge" in failed.error
    assert "simulation(s) aborted" in failed.error
    with pytest.raises(ConvergenceError, match="source_loop"):
        failed.raise_for_error()


def test_timeout_fails_only_its_job_in_bounded_time() -> None:
    start = time.monotonic()
    results = run_jobs([ENDLESS, DIVIDER, RC, DC_SWEEP], workers=2, progress=True)
    elapsed = time.monotonic() - start
    assert [r.ok for r in results] == [False, True, True, True]
    assert results[0].error_type == "SimulationTimeout"
    assert "timed out after 2 s" in results[0].error
    assert elapsed < 15.0


def test_crash_fails_only_its_job(tmp_path: Path) -> None:
    crash = _crash_job(tmp_path)
    results = run_jobs([crash, DIVIDER, RC], workers=1)
    assert [r.ok for r in results] == [False, True, True]
    assert results[0].error_type == "SimulatorCrash"
    assert "ngspice crashed" in results[0].error and "SIGSEGV" in results[0].error
    parallel = run_jobs([DIVIDER, crash, DC_SWEEP, RC], workers=2)
    assert [r.ok for r in parallel] == [True, False, True, True]


def test_workers_stay_warm_between_calls_from_the_same_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawning a worker costs ~0.3 s and a chip measurement calls run_jobs per configuration: the
    second call runs on the same processes, while another working directory gets fresh ones."""
    from sim.spice import runner

    def pids() -> set[int]:
        return {w.process.pid for pool in runner._WARM.values() for w in pool._workers}

    assert [r.ok for r in run_jobs([DIVIDER, RC], workers=2)] == [True, True]
    first = pids()
    assert len(first) == 2
    assert [r.ok for r in run_jobs([DC_SWEEP, DIVIDER], workers=2)] == [True, True]
    assert pids() == first
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a deck's relative .include would resolve elsewhere now
    assert run_jobs([DIVIDER], workers=2)[0].ok
    assert pids().isdisjoint(first)
    runner.close_warm_pools()
    assert not runner._WARM


def test_missing_library_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(locate.ENV_VAR, str(tmp_path / "libngspice.so"))
    with pytest.raises(NgspiceMissingError, match="libngspice0"):
        locate.library_path()
    for odd in ("{", "{}{}", "x{0}"):  # str.format raised ValueError/IndexError on these
        monkeypatch.setenv(locate.ENV_VAR, str(tmp_path / odd))
        with pytest.raises(NgspiceMissingError, match="is not a file"):
            locate.library_path()
    not_a_library = tmp_path / "libngspice.so"
    not_a_library.write_text("not an ELF file")
    with pytest.raises(NgspiceMissingError, match="apt-get install ngspice"):
        locate.check_loadable(str(not_a_library))


def test_missing_library_in_fresh_process(tmp_path: Path) -> None:
    """A process without ngspice raises NgspiceMissingError from run_inline and from run_jobs."""
    code = textwrap.dedent(
        """\
        from sim.spice import NgspiceMissingError, SimJob, run_inline, run_jobs
        job = SimJob("j", "* r\\nV1 a 0 1\\nR1 a 0 1k\\n.op\\n.end\\n")
        for call in (lambda: run_inline(job), lambda: run_jobs([job], workers=1)):
            try:
                call()
            except NgspiceMissingError as exc:
                print("MISSING:", exc)
        """
    )
    env = {**os.environ, locate.ENV_VAR: str(tmp_path / "nowhere" / "libngspice.so"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("MISSING:") == 2
    assert "libngspice0-dev" in done.stdout


def test_results_identical_across_parallel_backends() -> None:
    jobs = [DIVIDER, RC, DC_SWEEP]
    reference = run_jobs(jobs, workers=1)
    _assert_same(reference, [run_inline(job) for job in jobs])
    _assert_same(reference, run_jobs(jobs, workers=2))
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        _assert_same(reference, run_jobs(jobs, executor=pool))
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with dask_executor(cluster.scheduler_address) as executor:
            _assert_same(reference, run_jobs(jobs, executor=executor))


class _StuckExecutor(cf.Executor):
    """An executor whose jobs never finish, standing in for a hung remote worker."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:  # noqa: ANN001
        return cf.Future()


def test_executor_that_never_answers_times_out() -> None:
    start = time.monotonic()
    results = run_jobs([DIVIDER, RC], executor=_StuckExecutor(), timeout_s=0.5)
    assert time.monotonic() - start < 5.0
    assert all(not r.ok and r.error_type == "SimulationTimeout" for r in results)


def test_repeated_runs_do_not_grow_memory() -> None:
    job = SimJob("rc_10k", "* rc\nV1 in 0 DC 1\nR1 in out 1k\nC1 out 0 1u IC=0\n.tran 1u 10m 0 1u uic\n.end\n")
    assert len(run_inline(job).raise_for_error().vectors["time"]) > 10_000

    def rss_mb() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    for _ in range(5):
        run_inline(job)
    before = rss_mb()
    for _ in range(50):
        assert run_inline(job).ok
    # Without remcirc/destroy each run would keep ~0.3 MB of vectors: ~16 MB over 50 runs.
    assert rss_mb() - before < 5.0
    assert shared_ngspice().plot_names() == ["const"]


def test_version_for_provenance() -> None:
    assert ngspice_version().isdigit()
