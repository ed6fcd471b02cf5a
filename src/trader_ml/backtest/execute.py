"""Running refits: in this process, in parallel worker processes, or on a Ray cluster; with progress.

Results reach the caller one by one as they finish, so each can be cached at once and a killed
backtest loses only the refits still running.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from trader_ml.backtest.refit import RefitJob, fit_refit

Done = Callable[[RefitJob, bytes, dict], None]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class Progress:
    """A bar with ETA on a terminal; otherwise one line per finished refit (for logs)."""

    def __init__(self, total: int, log: Callable[[str], None], enabled: bool = True) -> None:
        from tqdm.auto import tqdm

        self.total, self.log, self.count, self.began = total, log, 0, time.monotonic()
        self.bar = tqdm(total=total, desc="refits", unit="refit", disable=None if enabled else True)
        self.lines = enabled and (self.bar.disable or not sys.stderr.isatty())

    def step(self, job: RefitJob, seconds: float) -> None:
        self.count += 1
        self.bar.update(1)
        if self.lines:
            elapsed = time.monotonic() - self.began
            left = elapsed / self.count * (self.total - self.count)
            self.log(
                f"  refit {self.count}/{self.total} done: {job.spec.kind} {job.spec.model_type} seed {job.spec.seed} "
                f"as of {job.spec.refit_date} ({seconds:.0f} s to fit); about {left / 60:.1f} min left"
            )

    def close(self) -> None:
        self.bar.close()


def run_local(jobs: Sequence[RefitJob], workers: int, done: Done) -> None:
    """``workers`` processes (spawned: no thread pool is inherited half-initialised); one
    worker runs in this process."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            data, metrics = fit_refit(job)
            done(job, data, metrics)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        pending = {pool.submit(fit_refit, job): job for job in jobs}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    data, metrics = future.result()
                    done(pending.pop(future), data, metrics)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def run_jobs(jobs: Sequence[RefitJob], workers: int, ray_address: str | None, done: Done) -> None:
    if ray_address:
        from trader_ml.backtest.cluster import run_on_ray

        run_on_ray(ray_address, jobs, done)
    else:
        run_local(jobs, workers, done)
