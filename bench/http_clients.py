"""Which HTTP client for the delivery hot path: a bare send loop of each candidate
against nginx on loopback, same requests (1 KiB POST, GLPI signature), 64 in flight.

    .venv/bin/python bench/http_clients.py [--seconds 10]

Needs nginx (see bench/delivery.py). Prints requests/s per client and the ratio to aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delivery import SECRET, body_for, free_ports, need_tools, nginx

from hookstream.policy import signature_headers

IN_FLIGHT = 64
Send = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


async def measure(send: Send, url: str, seconds: float) -> float:
    body, done, measuring = body_for(0), [0], [False]

    async def worker(i: int) -> None:
        n = 0
        while True:
            n += 1
            headers = {"Content-Type": "application/json",
                       **signature_headers("glpi", SECRET, f"{i}-{n}", body, int(time.time()))}
            if await send(url, body, headers) == 200 and measuring[0]:
                done[0] += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(IN_FLIGHT)]
    await asyncio.sleep(1.0)  # warm up: connections opened
    measuring[0], started = True, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = done[0] / (time.perf_counter() - started)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate


async def with_aiohttp(url: str, seconds: float) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def send(u: str, body: bytes, headers: dict[str, str]) -> int:
            async with session.post(u, data=body, headers=headers, allow_redirects=False) as r:
                await r.read()
                return r.status

        return await measure(send, url, seconds)


async def with_httpx(url: str, seconds: float) -> float:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(limits=limits) as client:
        async def send(u: str, body: bytes, headers: dict[str, str]) -> int:
            return (await client.post(u, content=body, headers=headers)).status_code

        return await measure(send, url, seconds)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    need_tools()
    with tempfile.TemporaryDirectory() as work:
        port, status = free_ports(2)
        with nginx(Path(work), [port], status):
            url = f"http://127.0.0.1:{port}/"
            rates = {
                "aiohttp (uvloop)": uvloop.run(with_aiohttp(url, args.seconds)),
                "aiohttp (asyncio)": asyncio.run(with_aiohttp(url, args.seconds)),
                "httpx.AsyncClient (asyncio)": asyncio.run(with_httpx(url, args.seconds)),
            }
    base = rates["aiohttp (uvloop)"]
    for name, rate in rates.items():
        print(f"{name:<30} {rate:>8.0f} requests/s   {rate / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
