"""Runners of calibration grids: units of work, one interface, in-process, local processes or Dask.

A grid (:mod:`doseesc.grid`) is cut into *units*: (grid point, scenario, block of trials). A unit simulates
trials ``start..stop-1`` of its point's design under its scenario with :func:`~doseesc.engines.montecarlo.
plain_batch`, whose random numbers come from the root :class:`~numpy.random.SeedSequence` and the trial index
(:mod:`doseesc.rng`): a unit's result does not depend on which runner ran it, on how many workers there were
or on the order in which units finished. It returns the per-trial arrays the operating characteristics need
(:data:`UNIT_KEYS`), not the per-patient records (the one per-patient metric, ``p_two_dlt_cohort``, is
reduced to a per-trial flag in the unit).

:func:`run_units` runs units with one of three runners, retries a unit that raised (``retries`` more times)
and hands each finished unit to ``on_done`` in the calling process, in whatever order they finish.
:class:`Checkpoint` writes finished units to a directory (atomically: a temporary file renamed into place)
and reads them back, so a run killed half way resumes where it stopped.

Dask (``distributed``) is optional: it is imported only when a Dask runner is asked for.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import io
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..designs.base import Design
from ..errors import DoseescError
from ..files import atomic_write
from ..scenario import Scenario
from .montecarlo import plain_batch
from .run import monte_carlo_result

#: Per-trial arrays a unit returns (``e`` only for scenarios with response); ``two_dlt`` is the per-trial
#: flag behind ``p_two_dlt_cohort`` (some cohort had 2 or more DLTs).
UNIT_KEYS = ("n", "y", "e", "selected", "reason", "fired", "two_dlt")


class GridRunError(DoseescError):
    """A unit of a grid failed on every try."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """Trials ``start..stop-1`` of grid point ``point`` under scenario ``scenario`` (indices into the grid's
    designs and scenarios); ``block`` numbers the unit within its (point, scenario)."""

    point: int
    scenario: int
    block: int
    start: int
    stop: int

    @property
    def key(self) -> str:
        return f"{self.point:05d}-{self.scenario:03d}-{self.block:06d}"


@dataclasses.dataclass(frozen=True, eq=False)
class Context:
    """What every unit of a grid needs: the designs of its points, its scenarios and the root seed. Sent once
    to each worker (a process pool's initializer, Dask's scatter), not with every unit."""

    designs: tuple[Design, ...]
    scenarios: tuple[Scenario, ...]
    seq: np.random.SeedSequence


def make_units(n_points: int, n_scenarios: int, n_trials: int, unit_trials: int) -> list[Unit]:
    """Every unit of a grid, point by point, scenario by scenario, block by block (the order the runners submit
    them in, so that each (point, scenario) completes early and its blocks can be combined and freed)."""
    out = []
    for p in range(n_points):
        for s in range(n_scenarios):
            for b, start in enumerate(range(0, n_trials, unit_trials)):
                out.append(Unit(p, s, b, start, min(start + unit_trials, n_trials)))
    return out


def run_unit(ctx: Context, unit: Unit) -> dict:
    """Simulate one unit; its per-trial arrays (:data:`UNIT_KEYS`)."""
    design, scenario = ctx.designs[unit.point], ctx.scenarios[unit.scenario]
    out = plain_batch(design, scenario, ctx.seq, unit.start, unit.stop)
    patients = {key: out[key] for key in ("tier", "tox", "new_cohort")}
    block = monte_carlo_result(design, scenario, None, None, None, out, patients, {}, {})
    flag = block._per_trial("p_two_dlt_cohort")
    res = {key: out[key] for key in ("n", "y", "selected", "reason", "fired")}
    if scenario.true_eff is not None:
        res["e"] = out["e"]
    res["two_dlt"] = flag.astype(bool)
    return res


# -- checkpoint ------------------------------------------------------------------------------------------
class Checkpoint:
    """A directory of finished units: ``manifest.json`` (the grid's fingerprint) and one ``<key>.npz`` per unit.

    A directory written by another grid (another fingerprint) is refused rather than mixed in.
    """

    def __init__(self, directory, fingerprint: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            got = json.loads(manifest.read_text()).get("fingerprint")
            if got != fingerprint:
                raise DoseescError(f"checkpoint {str(self.dir)!r} belongs to another grid (fingerprint {got}, "
                                   f"this grid {fingerprint}); give a new directory or delete it")
        else:
            atomic_write(manifest, json.dumps({"fingerprint": fingerprint}).encode())
        self.fingerprint = fingerprint

    def path(self, unit: Unit) -> Path:
        return self.dir / f"{unit.key}.npz"

    def done(self, units) -> list[Unit]:
        return [u for u in units if self.path(u).exists()]

    def load(self, unit: Unit) -> dict:
        with np.load(self.path(unit)) as z:
            return {key: z[key] for key in z.files}

    def save(self, unit: Unit, arrays: dict) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(self.path(unit), buf.getvalue())


# -- runners ----------------------------------------------------------------------------------------------
def runner_name(workers=None, scheduler=None, dask_local=None) -> str:
    """Check the runner options (at most one) and name the runner."""
    given = [name for name, v in (("workers", workers), ("scheduler", scheduler), ("dask_local", dask_local))
             if v is not None]
    if len(given) > 1:
        raise DoseescError(f"give at most one of workers, scheduler and dask_local (got {', '.join(given)})")
    for name, v in (("workers", workers), ("dask_local", dask_local)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise DoseescError(f"{name} = {v!r} must be a positive integer")
    if scheduler is not None and not isinstance(scheduler, str):
        raise DoseescError(f"scheduler = {scheduler!r} must be an address such as 'tcp://host:8786'")
    if workers is not None:
        return f"processes ({int(workers)} workers)"
    if scheduler is not None:
        return f"dask ({scheduler})"
    if dask_local is not None:
        return f"dask local cluster ({int(dask_local)} workers)"
    return "in-process"


def run_units(ctx: Context, units: list[Unit], on_done: Callable[[Unit, dict], None], *, workers=None,
              scheduler=None, dask_local=None, retries: int = 2) -> int:
    """Run ``units``, calling ``on_done(unit, arrays)`` in this process as each finishes; returns the number
    of retries made. A unit that raises is run again, up to ``retries`` more times, then
    :class:`GridRunError` names it and its last error."""
    runner_name(workers, scheduler, dask_local)
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 0:
        raise DoseescError(f"retries = {retries!r} must be a non-negative integer")
    if not units:
        return 0
    if workers is not None:
        return _processes(ctx, units, on_done, int(workers), retries)
    if scheduler is not None or dask_local is not None:
        return _dask(ctx, units, on_done, scheduler, dask_local, retries)
    return _in_process(ctx, units, on_done, retries)


def _give_up(unit: Unit, attempts: int, exc: BaseException):
    return GridRunError(f"grid unit {unit.key} (point {unit.point}, scenario {unit.scenario}, trials "
                        f"{unit.start}..{unit.stop - 1}) failed {attempts} times; last error: "
                        f"{type(exc).__name__}: {exc}")


def _in_process(ctx, units, on_done, retries) -> int:
    tried = 0
    for unit in units:
        for attempt in range(retries + 1):
            try:
                arrays = run_unit(ctx, unit)
            except Exception as exc:  # noqa: BLE001 - any failure of a unit is retried, then reported
                if attempt == retries:
                    raise _give_up(unit, attempt + 1, exc) from exc
                tried += 1
                continue
            on_done(unit, arrays)
            break
    return tried


_WORKER_CONTEXT: Context | None = None


def _init_worker(ctx: Context) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = ctx


def _pool_unit(unit: Unit) -> dict:
    return run_unit(_WORKER_CONTEXT, unit)


def _processes(ctx, units, on_done, n_workers, retries) -> int:
    """A pool of ``n_workers`` processes (:func:`_new_pool`). At most
    4 units per worker are in flight; a unit that raised, or whose worker died, is submitted again."""
    todo = list(reversed(units))
    attempts: dict[Unit, int] = {}
    tried = 0
    pool = _new_pool(ctx, n_workers)
    try:
        running: dict[cf.Future, Unit] = {}
        while todo or running:
            while todo and len(running) < 4 * n_workers:
                unit = todo.pop()
                attempts[unit] = attempts.get(unit, 0) + 1
                running[pool.submit(_pool_unit, unit)] = unit
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            broken = False
            for fut in done:
                unit = running.pop(fut)
                exc = fut.exception()
                if exc is None:
                    on_done(unit, fut.result())
                    continue
                if attempts[unit] > retries:
                    raise _give_up(unit, attempts[unit], exc) from exc
                broken |= isinstance(exc, cf.process.BrokenProcessPool)
                tried += 1
                todo.append(unit)
            if broken:   # a worker died: every unit in flight is lost with the pool; start a new pool
                for fut, unit in running.items():
                    todo.append(unit)
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _new_pool(ctx, n_workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return tried


def _new_pool(ctx, n_workers) -> cf.ProcessPoolExecutor:
    """Workers forked from a clean server process that has imported doseesc once (``forkserver``: no fork of
    a process that may hold threads, and no fresh import of numpy, scipy and pandas per worker), where the
    platform has it; spawned elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        mp = multiprocessing.get_context("forkserver")
        mp.set_forkserver_preload(["doseesc"])
    else:  # pragma: no cover - Windows
        mp = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=mp, initializer=_init_worker, initargs=(ctx,))


def _import_distributed():
    """The ``distributed`` module, or a clear error when the optional extra is not installed."""
    try:
        import distributed  # noqa: PLC0415 - optional dependency, loaded only for the Dask runners
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DoseescError("the Dask runners need dask.distributed: pip install 'doseesc[dask]' "
                           "(or pip install 'dask[distributed]')") from exc
    return distributed


def _dask(ctx, units, on_done, scheduler, dask_local, retries) -> int:
    distributed = _import_distributed()
    cluster = None
    if dask_local is not None:
        cluster = distributed.LocalCluster(n_workers=int(dask_local), threads_per_worker=1, processes=True,
                                           dashboard_address=":0")
        client = distributed.Client(cluster)
    else:
        client = distributed.Client(scheduler)
    try:
        return _dask_run(distributed, client, ctx, units, on_done, retries)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dask_run(distributed, client, ctx, units, on_done, retries) -> int:
    # enough units in flight to hide the scheduler's round trip (a few ms per unit), few enough to bound memory
    window = max(64, 8 * sum(client.nthreads().values()))
    ctx_future = client.scatter(ctx, broadcast=True)
    todo = list(reversed(units))
    attempts: dict[Unit, int] = {}
    tried = 0
    stamp = f"{os.getpid()}-{time.time_ns()}"
    running = {}
    pending = distributed.as_completed()

    def submit(unit):
        attempts[unit] = attempts.get(unit, 0) + 1
        fut = client.submit(run_unit, ctx_future, unit, key=f"doseesc-grid-{stamp}-{unit.key}-{attempts[unit]}",
                            pure=False)
        running[fut.key] = unit
        pending.add(fut)

    while todo and len(running) < window:
        submit(todo.pop())
    for fut in pending:
        unit = running.pop(fut.key)
        if fut.status == "finished":
            on_done(unit, fut.result())
        else:
            exc = fut.exception()
            if attempts[unit] > retries:
                raise _give_up(unit, attempts[unit], exc) from exc
            tried += 1
            todo.append(unit)
        fut.release()
        while todo and len(running) < window:
            submit(todo.pop())
    return tried
