"""Refits as Ray tasks on an existing cluster (``--ray ADDRESS``): the only module that imports Ray.

Each task runs the same ``fit_refit`` as a local worker, with the same seed and one intra-op
thread, so a cluster gives the numbers a laptop gives, sooner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trader_ml.backtest.refit import RefitJob, fit_refit
from trader_ml.errors import TraderMLError


def run_on_ray(address: str, jobs: Sequence[RefitJob], done: Callable[[RefitJob, bytes, dict], None]) -> None:
    """Run ``jobs`` on the Ray cluster at ``address``, calling ``done`` as each one finishes."""
    try:
        import ray
    except ImportError:
        raise TraderMLError("--ray needs Ray: pip install 'trader-ml[cluster]'") from None
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise TraderMLError(f"cannot connect to the Ray cluster at {address}: {e}") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=2)(fit_refit)
        pending = {remote.remote(job): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                data, metrics = ray.get(ref)
                done(pending.pop(ref), data, metrics)
    finally:
        ray.shutdown()
