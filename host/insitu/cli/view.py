"""`insitu view`: the run store in the browser, live while a run trains."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "serve a local page of a run (network, stiffness, curves, gradient check, boards' health)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--live", action="store_true", help="follow the newest run as it is written")
    p.add_argument(
        "--store", metavar="PATH", help="run store (default $INSITU_STORE or runs/insitu.sqlite)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (8765; 0 picks a free one)")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.store import default_path
    from insitu.view.server import ViewServer

    path = Path(args.store) if args.store else default_path()
    if not path.is_file():
        raise UserError(f"no run store at {path} (train something first, or give --store)")
    if args.run is not None and args.live:
        raise UserError("give a RUN or --live, not both")
    rid = None
    if args.run is not None:
        from insitu.cli.runs import _open, _row

        with _open(args) as store:
            rid = int(_row(store, args.run)["id"])
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: not a port number")
    try:
        server = ViewServer(path, args.host, args.port, run=rid, live=args.live or rid is None)
    except OSError as exc:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")
    print(f"insitu view: {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.httpd.server_close()
    return 0
