"""The load generator of the inbound load benchmark: many people, each a sequential conversation.

``python -m bench.inbound_loadgen CONFIG.json`` runs ``people`` simulated people in one asyncio
event loop. Each person sends the messages of a script one by one, waiting for the answer (the
200) before the next; when the report is sent, the slot starts over as a new person (a new
sender). ``think_s`` > 0 adds a pause after every answer (``MIN_PAUSE_S`` plus an exponential
wait, ``think_s`` on average), which turns the closed loop into a paced load of about
``people / think_s`` messages per second.

Every request is timed with ``time.monotonic()`` (one clock for all processes on Linux, so the
benchmark can compare it with the arrival times at the fake APIs). The results go to the
``out`` file as JSON. The loop is bounded in time (``start + warmup_s + duration_s``) and in
count (``max_requests``), and only talks to ``base_url`` (127.0.0.1).

Two HTTP clients: ``raw`` (default), a minimal HTTP/1.1 keep-alive client on asyncio streams
that costs little CPU, so more of the two cores is left to the server; and ``httpx``
(``httpx.AsyncClient``), for comparison.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bench.inbound_people import LOAD_SCRIPTS, Request, Secrets, conversation

MIN_PAUSE_S = 1.0  # nobody reads a reply and answers it in less than a second
IDLE_RECONNECT_S = 8.0  # gunicorn is started with --keep-alive 10: never reuse a stale socket


@dataclass(frozen=True)
class Config:
    """What one generator process does."""

    base_url: str
    mode: str  # "full": the real endpoints; "ok" or "store": the ceiling endpoints
    people: int
    first_person: int  # person numbers of this process start here (unique across runs)
    start: float  # time.monotonic() at which every process starts sending
    warmup_s: float
    duration_s: float
    think_s: float
    secrets: Secrets
    out: str
    client: str = "raw"
    channels: str = "all"  # "all", or only the scripts of one channel: "sms" or "telegram"
    max_requests: int = 400_000
    seed: int = 1

    @classmethod
    def load(cls, path: Path) -> Config:
        """Read a config written by the benchmark."""
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        data["secrets"] = Secrets(**data["secrets"])
        return cls(**data)


class Client(Protocol):
    """One person's HTTP connection."""

    async def post(self, path: str, headers: tuple[tuple[str, str], ...], body: bytes) -> int:
        """Send one request and return the status code once the whole answer is read."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...


class RawClient:
    """A minimal HTTP/1.1 client: one keep-alive connection, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"Host: {host}:{port}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0
        self.connects = 0

    async def _connect(self) -> None:
        await self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.connects += 1

    async def post(self, path: str, headers: tuple[tuple[str, str], ...], body: bytes) -> int:
        """Send; reconnect when the server closed the connection before answering."""
        head = b"".join(
            (
                f"POST {path} HTTP/1.1\r\n".encode(),
                self.host_header,
                *(f"{k}: {v}\r\n".encode() for k, v in headers),
                f"Content-Length: {len(body)}\r\n\r\n".encode(),
            )
        )
        fresh = self.writer is None or time.monotonic() - self.last_used > IDLE_RECONNECT_S
        for attempt in range(2):
            if fresh or attempt:
                await self._connect()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(head + body)
                raw = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                # Closed by the server while idle (nothing of an answer arrived): send again.
                partial = getattr(exc, "partial", b"")
                if attempt or partial or fresh:
                    raise
                continue
            status = int(raw[9:12])
            lower = raw.lower()
            length = 0
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                end = lower.index(b"\r\n", at + 2)
                length = int(lower[at + 17 : end])
            if length:
                await self.reader.readexactly(length)
            if b"\r\nconnection: close" in lower:
                await self.close()
            self.last_used = time.monotonic()
            return status
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the socket, if open."""
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


class HttpxClient:
    """One ``httpx.AsyncClient`` per person (one pool shared by hundreds of concurrent
    requests is far slower still: encode/httpx#3215)."""

    def __init__(self, base_url: str, tls: ssl.SSLContext) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60.0,
            verify=tls,  # one shared context: building one per client takes ~20 ms each
        )

    async def post(self, path: str, headers: tuple[tuple[str, str], ...], body: bytes) -> int:
        """Send one request on this person's connection."""
        response = await self.client.post(path, content=body, headers=headers)
        return int(response.status_code)

    async def close(self) -> None:
        """Close the person's client."""
        await self.client.aclose()


@dataclass
class Results:
    """Every request one process sent: [channel, sender, message id, t0, t1, status]."""

    requests: list[list[Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    people_started: int = 0
    connects: int = 0


def _path_for(mode: str, request: Request) -> str:
    if mode == "full":
        return request.path
    return f"/{mode}"


async def _person(
    slot: int,
    config: Config,
    client: Client,
    results: Results,
    stop_at: float,
    rng: random.Random,
    budget: list[int],
) -> None:
    """One slot: people one after the other, each sending a whole script."""
    person_no = 0
    clock = time.monotonic
    scripts = [s for s in LOAD_SCRIPTS if config.channels in ("all", s.channel)]
    while clock() < stop_at:
        person = config.first_person + slot * 1_000 + person_no
        # Slots take the scripts in turn, so every moment has the same mix of scripts.
        script = scripts[(slot + person_no) % len(scripts)]
        person_no += 1
        results.people_started += 1
        for request in conversation(person, script, config.secrets):
            if clock() >= stop_at or budget[0] <= 0:
                return
            budget[0] -= 1
            path = _path_for(config.mode, request)
            t0 = clock()
            try:
                status = await client.post(path, request.headers, request.body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                status = 0
                if len(results.errors) < 20:
                    results.errors.append(f"{type(exc).__name__}: {exc}")
                await client.close()
            t1 = clock()
            results.requests.append(
                [request.channel, request.sender, request.message_id, t0, t1, status]
            )
            if status != 200:
                break  # this person gives up; the slot goes on with a new one
            if config.think_s > 0:
                extra = max(config.think_s - MIN_PAUSE_S, 0.01)
                await asyncio.sleep(MIN_PAUSE_S + rng.expovariate(1.0 / extra))


async def generate(config: Config) -> Results:
    """Run every person of this process until the end of the measured window."""
    results = Results()
    parts = urlsplit(config.base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop_at = config.start + config.warmup_s + config.duration_s
    budget = [config.max_requests]
    clients: list[Client]
    if config.client == "httpx":
        tls = ssl.create_default_context()
        clients = [HttpxClient(config.base_url, tls) for _ in range(config.people)]
    else:
        clients = [RawClient(host, port) for _ in range(config.people)]
    delay = config.start - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    rng = random.Random(config.seed)
    tasks = []
    for slot, client in enumerate(clients):
        # People do not all start at once. Pausing people start at random over one pause, as
        # they would arrive in a steady state; otherwise everyone's first message (the language
        # menu, the welcome) lands in the same second, a burst beyond Telegram's 30 a second.
        # The closed loop staggers its first messages over 100 ms only.
        if config.think_s > 0:
            delay = rng.uniform(0.0, config.think_s)
        else:
            delay = slot * 0.1 / config.people
        tasks.append(
            asyncio.create_task(
                _start_later(delay, slot, config, client, results, stop_at, rng, budget)
            )
        )
    # Requests sent before the end are waited for (their latency counts), but not forever.
    _done, pending = await asyncio.wait(tasks, timeout=max(0.0, stop_at - time.monotonic()) + 60)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for client in clients:
        if isinstance(client, RawClient):
            results.connects += client.connects
        await client.close()
    return results


async def _start_later(
    delay: float,
    slot: int,
    config: Config,
    client: Client,
    results: Results,
    stop_at: float,
    rng: random.Random,
    budget: list[int],
) -> None:
    await asyncio.sleep(delay)
    await _person(slot, config, client, results, stop_at, rng, budget)


def main(argv: list[str]) -> int:
    """Read the config, generate the load, write the results."""
    config = Config.load(Path(argv[0]))
    started_cpu = time.process_time()
    results = asyncio.run(generate(config))
    out = {
        "requests": results.requests,
        "errors": results.errors,
        "people_started": results.people_started,
        "connects": results.connects,
        "cpu_s": time.process_time() - started_cpu,
    }
    Path(config.out).write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
