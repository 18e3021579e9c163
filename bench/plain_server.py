"""The benchmark's peer: the same task code behind a plain FastAPI + uvicorn server.

One process, no batching, no limits: ``POST /predict`` reads the multipart form (or JSON),
then ``check_request`` -> ``parse_request`` -> ``forward`` -> ``postprocess`` -> ``combine``
in FastAPI's thread pool, exactly what a user would write in an afternoon.

    python bench/plain_server.py BUNDLE_DIR --port 8000
"""

import argparse
import base64
import sys
from pathlib import Path

from starlette.requests import Request  # at module level: FastAPI resolves the handler's annotation here

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(bundle: Path):
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    from tasks_lib.core.bundle import load_bundle
    from tasks_lib.core.errors import InvalidInput
    from tasks_lib.core.task import FILE_FIELDS

    loaded = load_bundle(bundle)
    task = loaded.task
    app = FastAPI()

    def answer(request: dict) -> dict:
        task.check_request(request)
        items = task.parse_request(loaded, request)
        rows = [task.postprocess(loaded, out) for out in task.forward(loaded, task.collate(items))]
        return task.combine(request, rows)

    @app.post("/predict")
    async def predict(req: Request):
        if req.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await req.form()
            request = {k: (await v.read()) if k in FILE_FIELDS else v for k, v in form.items()}
        else:
            request = await req.json()
        try:
            out = await run_in_threadpool(answer, request)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in out.items()}

    @app.get("/readyz")
    def readyz():
        return "ok"

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(build(args.bundle), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
