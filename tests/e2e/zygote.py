"""A warm parent for many short `mlzoo` processes: it imports the platform once, then forks
one child per command. Each child is a real, separate process running the real CLI end to
end (and a fault kills it with ``os._exit`` like any other); only the ~15 s of imports are
shared, which is what lets a test kill a run at every step boundary within the suite's time.

Protocol, one JSON object per line on stdin, one answer per line on stdout:
``{"run": [ARGS], "env": {...}, "log": PATH}`` -> ``{"pid": N}`` (started);
``{"wait": N}`` -> ``{"rc": CODE}``. The parent starts no thread, so forking it is safe.
"""

from __future__ import annotations

import json
import os
import sys


def warm() -> None:
    import bentoml.bentos  # noqa: F401
    import great_expectations  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import mlflow.data  # noqa: F401
    import mlflow.pyfunc  # noqa: F401
    import prefect.blocks.system  # noqa: F401
    import prefect.concurrency.sync  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    import flows.cli  # noqa: F401
    import flows.pipeline  # noqa: F401
    from tasks_lib.core.registry import get_task

    get_task("image_classification")


def child(args: list[str], env: dict[str, str], log: str) -> None:
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        from flows.cli import main

        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001  what an uncaught exception does to a process
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    warm()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if "run" in cmd:
            pid = os.fork()
            if pid == 0:
                child(cmd["run"], cmd["env"], cmd["log"])
            print(json.dumps({"pid": pid}), flush=True)
        else:
            _, status = os.waitpid(cmd["wait"], 0)
            print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
