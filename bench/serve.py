"""`faceverify serve` under load: requests per second and p50/p95 latency of POST /verify on two real LFW photos
with 1, 4 and 16 concurrent clients on localhost, beside `faceverify compare A B` run as a process in a loop."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import timing
from bench.evaluate_cli import run_cli
from bench.report import Section, num
from export.metadata import REPO

CLIENTS = (1, 4, 16)
REQUESTS = 48  # per concurrency level, at most
BUDGET_S = 60.0  # per concurrency level, at most: the load is bounded in count and in time


def _load(url: str, files: dict, clients: int, requests: int, budget_s: float) -> tuple[list[float], float]:
    """Latencies of up to `requests` POST /verify from `clients` threads (each its own connection), and the wall
    time they took; no request starts after `budget_s`."""
    import httpx

    deadline = time.perf_counter() + budget_s
    per_client = max(1, requests // clients)

    def client(_: int) -> list[float]:
        out = []
        with httpx.Client(timeout=60) as http:
            for _ in range(per_client):
                if time.perf_counter() > deadline:
                    break
                start = time.perf_counter()
                answer = http.post(f"{url}/verify", files=files)
                answer.raise_for_status()
                out.append(time.perf_counter() - start)
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [s for chunk in pool.map(client, range(clients)) for s in chunk]
    return latencies, time.perf_counter() - start


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(*args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`faceverify serve` as a real process on a free localhost port, once /health answers (20 s at most)."""
    import httpx

    port = free_port()
    script = Path(sys.executable).with_name("faceverify")
    server = subprocess.Popen([str(script), "serve", "--port", str(port), "--provider", "cpu", *args], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "FACEVERIFY_API_KEY": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, server
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def run(image_a: Path, image_b: Path, repeats: int, warmup: int, quick: bool) -> Section:
    """A real server loaded at 1, 4 and 16 concurrent clients in turn, then `faceverify compare` processes."""
    files = {name: (path.name, path.read_bytes(), "image/jpeg") for name, path in (("a", image_a), ("b", image_b))}
    requests, budget = (8, 15.0) if quick else (REQUESTS, BUDGET_S)
    section = Section(
        title="`faceverify serve`: POST /verify under load",
        intro=(f"A real `faceverify serve --provider cpu` on a free localhost port (the bundled model, `--precision "
               f"auto`); each level sends up to {requests} POST /verify of the same two real LFW photos ({image_a.name}, "
               f"{image_b.name}), from N client threads with their own connections, at most {budget:g} s; after "
               f"{warmup} warm-up request(s). Beside it, `faceverify compare A B --provider cpu` as a whole "
               f"process, median of {repeats}."),
        header=["clients", "requests", "requests/s", "p50 latency (ms)", "p95 latency (ms)"],
    )
    with running_server() as (url, _):
        _load(url, files, 1, max(1, warmup), budget)
        for clients in CLIENTS:
            latencies, wall = _load(url, files, clients, requests, budget)
            ordered = sorted(latencies)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            section.rows.append([str(clients), str(len(latencies)), num(len(latencies) / wall),
                                 num(statistics.median(latencies) * 1e3), num(p95 * 1e3)])
    compare = timing.interleave({"compare": lambda: run_cli(["compare", str(image_a), str(image_b), "--provider",
                                                               "cpu"], (0, 1))[0]}, repeats, warmup)["compare"]
    section.rows.append(["`faceverify compare` in a loop", str(repeats), num(1 / compare.median),
                         num(compare.median * 1e3), ""])
    section.notes.append("The server keeps the model and face detector loaded; each `compare` process starts "
                         "Python, loads both and decides once. Threads beyond the cores queue: latency grows with "
                         "clients while requests/s stays near what the cores allow.")
    return section
