"""The desk app under a real HTTP server, in its own process, for the export's memory.

``python -m bench.desk_server`` reads the database URL and keys from the environment
(``BENCH_DESK_URL``, ``BENCH_DESK_KEYS``, ``BENCH_DESK_HASH_KEY``, ``BENCH_DESK_INSTANCE``),
serves on 127.0.0.1 on a free port (printed as the first line of stdout) with one thread per
request, and runs until killed. The parent measures this process's resident memory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from werkzeug.serving import make_server


def settings_from_env() -> object:
    """Settings for the benchmark database, from the variables the parent sets."""
    from bot.settings import Settings

    instance = Path(os.environ["BENCH_DESK_INSTANCE"])
    return Settings(
        database_url=os.environ["BENCH_DESK_URL"],
        secret_key="bench-desk-secret",
        encryption_keys=tuple(os.environ["BENCH_DESK_KEYS"].split(",")),
        hash_key=os.environ["BENCH_DESK_HASH_KEY"],
        instance_dir=instance,
        storage_dir=instance / "attachments",
    )


def main() -> int:
    """Serve until killed."""
    from bot.app import create_app

    app = create_app(settings_from_env())  # type: ignore[arg-type]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
