"""Scoring cases in worker processes, results in case order, and no hang when a worker dies.

`multiprocessing.Pool` waits forever for a task whose worker was killed (as by the out-of-memory killer on
a large 3D dataset). Here each spawned worker holds one task at a time and the parent waits on the
workers' result pipes and process sentinels together, so it knows which case a dead worker held and
stops the run at once: a one-line `ReportError` naming that case, every worker ended. At most
`IN_FLIGHT_PER_WORKER * workers` results are ahead of the one yielded next, and results are yielded in
task order, so the merge order, and thus the report, does not depend on the number of processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import TypeVar

from nnunet_surgery.report.errors import ReportError

__all__ = ["IN_FLIGHT_PER_WORKER", "ordered_map"]

IN_FLIGHT_PER_WORKER = 2

Task = TypeVar("Task")
Result = TypeVar("Result")


def _serve(connection: Connection, function: Callable) -> None:
    """Worker loop: receive (index, task), send (index, ok, result or exception), until None."""
    while (message := connection.recv()) is not None:
        index, task = message
        try:
            reply = (index, True, function(task))
        except Exception as error:  # sent to the parent, which raises it
            reply = (index, False, error)
        connection.send(reply)


def ordered_map(
    function: Callable[[Task], Result],
    tasks: Sequence[Task],
    num_processes: int,
    name: Callable[[Task], str],
) -> Iterator[Result]:
    """Yield `function(task)` for every task, in order, computed in up to `num_processes` spawned workers.

    Args:
        function: a picklable, module-level function.
        tasks: picklable tasks.
        num_processes: worker processes (>= 1).
        name: how a task is named in an error (its case).

    Raises:
        ReportError: a worker process died (killed or crashed) while it held a task; or whatever
            `function` raised for a task (the first in task order).
    """
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    held: dict[int, int] = {}  # worker -> index of the task it holds
    done: dict[int, Result] = {}
    next_task = next_result = 0
    try:
        for _ in range(min(num_processes, len(tasks))):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_serve, args=(child_end, function), daemon=True)
            process.start()
            child_end.close()
            workers.append((process, parent_end))

        def feed() -> None:
            nonlocal next_task
            for worker, (_, connection) in enumerate(workers):
                limit = next_result + IN_FLIGHT_PER_WORKER * len(workers)
                if worker not in held and next_task < len(tasks) and next_task < limit:
                    connection.send((next_task, tasks[next_task]))
                    held[worker] = next_task
                    next_task += 1

        feed()
        while next_result < len(tasks):
            if next_result in done:
                yield done.pop(next_result)
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
                    raise ReportError(
                        f"{case}: the worker process scoring this case died (exit code {process.exitcode}: "
                        "killed, e.g. by the out-of-memory killer, or crashed); nothing written. Try fewer "
                        "processes (-np)"
                    ) from None
                del held[worker]
                if not ok:
                    raise value
                done[index] = value
            feed()
    finally:
        for process, connection in workers:
            if process.is_alive():
                process.terminate()
            connection.close()
        for process, _ in workers:
            process.join(timeout=5)
