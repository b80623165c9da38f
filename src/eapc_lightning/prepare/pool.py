"""Preparing items in worker processes that end with the prepare process, even after a SIGKILL.

Workers fork from a forkserver that has warmed up once (eapc_lightning.prepare.warmup). An item whose
worker dies is retried once in a fresh pool; when it kills its worker again it is recorded as failed.
Each worker runs single-threaded and watches a lifeline pipe held open only by the prepare process,
plus Linux's parent-death signal (``_end_with_parent``), so no worker outlives the run.
"""

import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool

from eapc_lightning.prepare.item import new_record
from eapc_lightning.prepare.sources import SourceItem

PARENT_POLL_SECONDS = 0.5  # how often a worker checks that the prepare process is still there
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
WARMUP_MODULE = "eapc_lightning.prepare.warmup"


def _exit_when_parent_gone(lifeline, parent: int) -> None:
    """Watchdog loop: exit this process once ``lifeline`` reaches end of file or its parent changes."""
    while True:
        try:
            gone = lifeline.poll(PARENT_POLL_SECONDS)  # nobody writes: readable means end of file
        except (OSError, EOFError):
            gone = True
        if gone or os.getppid() != parent:
            os._exit(1)


def _end_with_parent(lifeline) -> None:
    """Make this worker process exit as soon as the prepare process is gone, however that ended.

    Workers are forked from the forkserver, not from the prepare process, and hold the other ends of
    the pool's queues and of the forkserver's liveness pipe: after a SIGKILL of the prepare process
    nothing would ever tell them to stop, and the forkserver and the resource tracker, which wait for
    those pipes to close, would stay too. Two guards: on Linux the kernel kills the worker when its
    parent (the forkserver) dies (parent-death signal), and a watchdog thread ends the worker when
    ``lifeline``, the reading end of a pipe whose only writer is the prepare process, reaches end of
    file, or when the worker's parent changes (checked every PARENT_POLL_SECONDS). With the workers
    gone, the forkserver and the resource tracker see their pipes close and exit on their own.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    threading.Thread(
        target=_exit_when_parent_gone,
        args=(lifeline, os.getppid()),
        name="prepare-parent-watchdog",
        daemon=True,
    ).start()


def _init_worker(lifeline) -> None:
    _end_with_parent(lifeline)
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


@contextlib.contextmanager
def _main_script_not_rerun():
    """Keep worker processes from running the parent's main script.

    multiprocessing starts each non-forked worker by re-running the parent's ``__main__`` file unless
    it was started with ``python -m``; a console script without a ``__main__`` guard would then start
    prepare again inside every worker. The workers need only the prepare modules, so while the pool runs
    the main module is presented to multiprocessing without its file.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(main, "__file__", None)
    hide = main is not None and spec is None and path is not None
    if hide:
        del main.__file__
    try:
        yield
    finally:
        if hide:
            main.__file__ = path


def run_pool(
    items: list[SourceItem],
    workers: int,
    prepare: Callable[[SourceItem], dict],
    on_result: Callable[[dict], None],
) -> None:
    """Run ``prepare`` (picklable: it is sent to the workers) on ``items`` in ``workers`` processes,
    handing each item's record to ``on_result`` as it comes; an item whose worker dies twice is
    recorded as failed."""
    # Workers fork from a forkserver: a fresh process (forking this one could copy the state of its
    # threads, e.g. torch's OpenMP pool, and hang) that has imported the libraries and compiled
    # librosa's JIT code once (the warm-up module).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WARMUP_MODULE])
    # the workers watch the reading end; this process holds the only writing end until the pool is done
    lifeline, keep_alive = context.Pipe(duplex=False)
    try:
        with _main_script_not_rerun():
            _pool_loop(list(items), workers, context, lifeline, prepare, on_result)
    finally:
        keep_alive.close()
        lifeline.close()


def _pool_loop(queue: list[SourceItem], workers: int, context, lifeline, prepare, on_result) -> None:
    attempts: dict[str, int] = {}
    while queue:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(lifeline,)
        ) as pool:
            running: dict[concurrent.futures.Future, SourceItem] = {}
            broken = False
            while (queue or running) and not broken:
                while queue and len(running) < 2 * workers:
                    item = queue.pop(0)
                    running[pool.submit(prepare, item)] = item
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    item = running.pop(future)
                    try:
                        on_result(future.result())
                    except BrokenProcessPool:
                        broken = True
                        attempts[item.clip_id] = attempts.get(item.clip_id, 0) + 1
                        if attempts[item.clip_id] >= 2:
                            reason = f"{item.video}: the worker process died while preparing this item"
                            on_result(new_record(item, "failed", reason))
                        else:
                            queue.insert(0, item)
            if broken:  # items still in flight go back to the queue for a fresh pool
                queue[:0] = [item for item in running.values() if item not in queue]
