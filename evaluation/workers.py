"""Independent evaluation tasks run in this process or in worker processes (one thread each)."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def run_tasks(tasks: list[tuple[Any, ...]], jobs: int) -> Iterator[Any]:
    """Each task's result, in order: `task[0](*task[1:])`, in this process or in `jobs` worker processes."""
    if jobs == 1:
        for fn, *task_args in tasks:
            yield fn(*task_args)
        return
    # Spawned, not forked: torch's thread pools do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=init_worker,
                             initargs=(logging.getLogger().level,)) as pool:
        futures = [pool.submit(*task) for task in tasks]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def init_worker(log_level: int) -> None:
    """One thread per worker (the workers share the cores), and the parent's log level."""
    import torch

    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # NumPy's BLAS then keeps its default threads
        pass
    logging.basicConfig(level=log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


__all__ = ["init_worker", "run_tasks"]
