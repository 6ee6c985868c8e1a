"""Ceilings for the inbound load benchmark: the least a webhook endpoint can cost.

Served by the same gunicorn set-up as the real app (``gunicorn bench.inbound_ceiling_app:app``),
driven by the same load generator with the same request bodies:

- ``POST /ok``: bare Flask, answers 200 and does nothing else (the body is drained by gunicorn);
- ``POST /store``: stores the raw request body durably, one INSERT and one COMMIT, in the same
  database as the real app (``DATABASE_URL``), through ``storage.db.make_engine`` so SQLite gets
  the same WAL / ``synchronous=NORMAL`` / ``BEGIN IMMEDIATE`` set-up and PostgreSQL the same
  default ``synchronous_commit=on``.

The table (``CEILING_TABLE``) is created by the benchmark before gunicorn starts.
"""

from __future__ import annotations

import os
from functools import cache

from flask import Flask, Response, request
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
)

from storage.db import make_engine

CEILING_TABLE = "bench_inbound_raw"

metadata = MetaData()
raw_requests = Table(
    CEILING_TABLE,
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

app = Flask(__name__)
_insert = raw_requests.insert()


@cache
def _engine() -> Engine:
    """The database of ``DATABASE_URL``, opened on first use in each worker."""
    return make_engine(os.environ["DATABASE_URL"])


@app.post("/ok")
def ok() -> Response:
    """Only 200."""
    return Response(b"", status=200)


@app.post("/store")
def store() -> Response:
    """One INSERT of the raw body and one COMMIT, then 200."""
    body = request.get_data(cache=False)
    with _engine().begin() as conn:
        conn.execute(_insert, {"path": request.path, "body": body})
    return Response(b"", status=200)


@app.get("/healthz")
def healthz() -> Response:
    """Ready."""
    return Response(b"ok", status=200)
