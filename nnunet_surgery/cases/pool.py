"""Scoring cases in worker processes, results in case order, and no hang when a worker dies.

`multiprocessing.Pool` waits forever for a task whose worker was killed (as by the out-of-memory killer on
a large 3D dataset). Here each spawned worker holds one task at a time and the parent waits on the
workers' result pipes and process sentinels together, so it knows which case a dead worker held and
stops the run at once: a one-line `InputError` naming that case, every worker ended. At most
`IN_FLIGHT_PER_WORKER * workers` results are ahead of the one yielded next, and results are yielded in
task order, so the merge order, and thus the report, does not depend on the number of processes.

`WorkerPool` keeps its workers for several maps (the recalibration fit passes over the cases many times);
`ordered_map` is one map in a pool of its own. `read_ahead` is the in-process alternative: one background
thread prepares the next task while the caller finishes this one. `iterate_cases` picks one of them for a
command and shows a progress bar.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from typing import Generic, TypeVar

from nnunet_surgery.cases.errors import InputError, check_count

__all__ = [
    "IN_FLIGHT_PER_WORKER",
    "WorkerPool",
    "check_processes",
    "iterate_cases",
    "ordered_map",
    "read_ahead",
]

IN_FLIGHT_PER_WORKER = 2

Task = TypeVar("Task")
Prepared = TypeVar("Prepared")
Result = TypeVar("Result")


def check_processes(num_processes: object) -> int:
    """`-np`: the number of worker processes, an integer >= 1 (1: in this process).

    Raises:
        InputError: anything else, naming `-np`.
    """
    return check_count("-np", num_processes, 1, "the number of processes")


def _serve(connection: Connection) -> None:
    """Worker loop: receive (function, index, task), send (index, ok, result or exception), until None."""
    while (message := connection.recv()) is not None:
        function, index, task = message
        try:
            reply = (index, True, function(task))
        except Exception as error:  # sent to the parent, which raises it
            reply = (index, False, error)
        connection.send(reply)


class WorkerPool(Generic[Task, Result]):
    """Spawned worker processes that map functions over tasks, one task per worker at a time.

    Use as a context manager; the workers start on the first `map`. A map that does not run to its end
    (an error, a dead worker, a caller that stops early) ends the workers, and the pool cannot map again.
    """

    def __init__(self, num_processes: int) -> None:
        self.num_processes = max(1, int(num_processes))
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self._broken = False

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        while len(self._workers) < count:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_serve, args=(child_end,), daemon=True)
            process.start()
            child_end.close()
            self._workers.append((process, parent_end))

    def map(
        self, function: Callable[[Task], Result], tasks: Sequence[Task], name: Callable[[Task], str]
    ) -> Iterator[Result]:
        """Yield `function(task)` for every task, in order.

        Args:
            function: a picklable, module-level function.
            tasks: picklable tasks.
            name: how a task is named in an error (its case).

        Raises:
            InputError: a worker process died (killed or crashed) while it held a task; or whatever
                `function` raised for a task (the first in task order).
        """
        if self._broken:
            raise RuntimeError("this WorkerPool was stopped by an earlier failed or abandoned map")
        self._start(min(self.num_processes, len(tasks)))
        workers = self._workers
        held: dict[int, int] = {}  # worker -> index of the task it holds
        done: dict[int, tuple[bool, Result | Exception]] = {}
        next_task = next_result = 0

        def feed() -> None:
            nonlocal next_task
            for worker, (_, connection) in enumerate(workers):
                limit = next_result + IN_FLIGHT_PER_WORKER * len(workers)
                if worker not in held and next_task < len(tasks) and next_task < limit:
                    connection.send((function, next_task, tasks[next_task]))
                    held[worker] = next_task
                    next_task += 1

        finished = False
        try:
            feed()
            while next_result < len(tasks):
                if next_result in done:
                    ok, value = done.pop(next_result)
                    if not ok:  # raised in task order, whichever worker failed first
                        raise value
                    yield value
                    next_result += 1
                    feed()
                    continue
                ready = wait(
                    [connection for _, connection in workers] + [process.sentinel for process, _ in workers]
                )
                for worker, (process, connection) in enumerate(workers):
                    if connection not in ready and process.sentinel not in ready:
                        continue
                    try:
                        index, ok, value = connection.recv()
                    except (EOFError, OSError):
                        process.join(timeout=5)
                        case = name(tasks[held[worker]]) if worker in held else "a case"
                        raise InputError(
                            f"{case}: the worker process handling this case died (exit code {process.exitcode}: "
                            "killed, e.g. by the out-of-memory killer, or crashed); nothing written. Try fewer "
                            "processes (-np)"
                        ) from None
                    del held[worker]
                    done[index] = (ok, value)
                feed()
            finished = True
        finally:
            if not finished:
                self.close()
                self._broken = True

    def close(self) -> None:
        """Stop every worker (those busy are terminated)."""
        for process, connection in self._workers:
            if process.is_alive() and not self._broken:
                try:
                    connection.send(None)
                except OSError:
                    pass
        for process, connection in self._workers:
            process.join(timeout=0.5)
            if process.is_alive():
                process.terminate()
            connection.close()
        for process, _ in self._workers:
            process.join(timeout=5)
        self._workers = []


def ordered_map(
    function: Callable[[Task], Result],
    tasks: Sequence[Task],
    num_processes: int,
    name: Callable[[Task], str],
) -> Iterator[Result]:
    """Yield `function(task)` for every task, in order, computed in up to `num_processes` spawned workers
    (`WorkerPool.map` in a pool of its own, ended when the map ends)."""
    with WorkerPool(num_processes) as pool:
        yield from pool.map(function, tasks, name)


def iterate_cases(
    function: Callable[[Task], Result],
    tasks: Sequence[Task],
    num_processes: int,
    name: Callable[[Task], str],
    *,
    desc: str,
    progress: bool,
    split: tuple[Callable[[Task], Prepared], Callable[[Task, Prepared], Result]] | None = None,
) -> Iterator[Result]:
    """Yield `function(task)` for every task, in task order, with a progress bar on stderr: in this process
    (`num_processes` 1), else in spawned workers (`ordered_map`).

    Args:
        function: a picklable, module-level function.
        tasks: picklable tasks.
        num_processes: worker processes (1: in this process).
        name: how a task is named in an error (its case).
        desc: the progress bar's label.
        progress: show the progress bar (on a terminal).
        split: `(prepare, finish)` with `finish(task, prepare(task)) == function(task)`: in this process, the
            next task is then prepared in a background thread while this one finishes (`read_ahead`).

    Raises:
        InputError: as `WorkerPool.map`, or whatever `function` raised (the first in task order).
    """
    import sys

    from tqdm import tqdm

    if num_processes > 1:
        results = ordered_map(function, tasks, num_processes, name)
    elif split is not None:
        results = read_ahead(*split, tasks)
    else:
        results = map(function, tasks)
    bar = tqdm(total=len(tasks), desc=desc, unit="case", file=sys.stderr, disable=None if progress else True)
    try:
        for result in results:
            yield result
            bar.update()
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:  # a consumer that stops early stops the workers now, not when collected
            close()


def read_ahead(
    prepare: Callable[[Task], Prepared],
    finish: Callable[[Task, Prepared], Result],
    tasks: Sequence[Task],
) -> Iterator[Result]:
    """`finish(task, prepare(task))` for every task in this process, reading ahead: while task i is
    finished, one background thread runs `prepare` for task i + 1.

    zlib and nnU-Net's label readers release the GIL, so reading overlaps the work on the previous case;
    memory holds one prepared task more, whatever the number of tasks. Every `prepare` runs in the same
    single thread, so a reader whose stdout is redirected while it reads never runs in two threads at once.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
        upcoming = reader.submit(prepare, tasks[0]) if tasks else None
        for index, task in enumerate(tasks):
            # `finish` gets the only reference, so it can free the prepared data as it goes
            prepared = [upcoming.result()]
            upcoming = reader.submit(prepare, tasks[index + 1]) if index + 1 < len(tasks) else None
            yield finish(task, prepared.pop())
        # an error leaves the next task's preparation running: `with` waits for it (one task at most)
