"""What a burst of requests with huge headers leaves in a worker's memory.

    python benchmarks/memory_burst.py [--requests 300] [--size 1048576] [--http httptools|h11]
    python benchmarks/memory_burst.py --quick

uvicorn (one worker; httptools accepts 1 MB headers, h11 refuses those over 16 KB) serves the
page of ``hot_path.py`` behind ``ConsentMiddleware``. For each shape of hostile request, a fresh
server answers 20 ordinary requests, then ``--requests`` requests each carrying different
headers of ``--size`` bytes, then 20 ordinary requests again; the table gives the server
process's resident memory (``VmRSS``) after the first 20 and after the burst. Before the
caches were bounded by size, each burst stayed in memory (about 300 MB for 300 requests).

Shapes: ``long-name`` (one undeclared cookie name of the whole size), ``consent-value`` (a
forged consent cookie of that size), ``many-names`` (distinct undeclared names of 250
characters) and ``query+language`` (a query string of 60 KB, the rest in ``Accept-Language``, on
the page of a first visit, which carries the no-JavaScript form with the page's address).
(httptools refuses request lines of 64 KB and more; tests/test_bounded_memory.py sends longer
queries and paths to the middleware directly.)
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from _common import free_port, load, machine, stop, table, wait_for_port

HERE = Path(__file__).resolve().parent
Request = tuple[str, dict[str, str]]  # (path and query, headers)
QUERY_MAX = 60_000  # httptools answers 400 to a request line of 64 KB and more


def unique(i: int, size: int) -> str:
    """``size`` characters that differ for each ``i``."""
    return (f"{i:08d}" * (size // 8 + 1))[:size]


SHAPES: dict[str, Callable[[int, int], Request]] = {
    "long-name": lambda i, size: ("/", {"cookie": "x" + unique(i, size) + "=1"}),
    "consent-value": lambda i, size: ("/", {"cookie": "consent=" + unique(i, size)}),
    "many-names": lambda i, size: (
        "/",
        {
            "cookie": "; ".join(
                f"n{i:05d}{j:06d}" + "_" * 238 + "=1" for j in range(max(1, size // 254))
            )
        },
    ),
    "query+language": lambda i, size: (
        "/?q=" + unique(i, min(size // 2, QUERY_MAX)),
        {"accept-language": unique(i, size - min(size // 2, QUERY_MAX))},
    ),
}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Client:
    """HTTP/1.1 over one kept-alive connection, for requests of any size (client libraries
    refuse URLs of more than 64 KB)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = b""

    def get(self, path: str, headers: dict[str, str]) -> int:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self.buffer += self._read()
        self.buffer = self.buffer[length:]
        return status

    def _read(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def serve(port: int, http: str) -> None:
    import logging

    import uvicorn
    from hot_path import build

    logging.getLogger("consent").setLevel(logging.ERROR)  # (thousands of undeclared names)

    uvicorn.run(
        build("consent"),
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        http=http,  # type: ignore[arg-type]
        lifespan="off",
        h11_max_incomplete_event_size=64 << 20,
    )


def burst(shape: str, requests: int, size: int, http: str) -> tuple[int, int, int]:
    """RSS (KiB) of a fresh server after 20 ordinary requests, after the burst, and the number
    of burst requests answered 200."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--http", http],
        cwd=HERE,
    )
    try:
        wait_for_port(port, proc)
        client = Client(port)
        try:
            for _ in range(20):
                client.get("/", {"cookie": "sessionid=1"})
            before = rss_kib(proc.pid)
            ok = 0
            for i in range(requests):
                path, headers = SHAPES[shape](i, size)
                try:
                    ok += client.get(path, headers) == 200
                except OSError:  # refused by the server, which closed the connection
                    client.close()
                    client = Client(port)
            for _ in range(20):
                client.get("/", {"cookie": "sessionid=1"})
            after = rss_kib(proc.pid)
        finally:
            client.close()
        return before, after, ok
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes of hostile header")
    parser.add_argument("--http", default="auto", help="uvicorn --http (auto, httptools, h11)")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    http = args.http
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if args.serve:
        serve(args.serve, http)
        return
    if args.quick:
        args.requests, args.size = 20, 64 << 10
    print(f"machine: {machine()}; load average before: {load()}")
    print(
        f"## {args.requests} requests with {args.size:,}-byte headers, each different "
        f"(uvicorn --http {http}, one worker)"
    )
    rows = []
    for shape in SHAPES:
        before, after, ok = burst(shape, args.requests, args.size, http)
        rows.append(
            [
                shape,
                f"{ok}/{args.requests}",
                f"{before / 1024:.1f}",
                f"{after / 1024:.1f}",
                f"{(after - before) / 1024:+.1f}",
            ]
        )
    print(table(["shape", "answered 200", "RSS before MB", "RSS after MB", "growth MB"], rows))
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
