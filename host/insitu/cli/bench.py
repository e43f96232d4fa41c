"""`insitu bench NAME [--quick] [--json] [--out DIR]`: run benchmarks (registry: insitu.bench)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from insitu.bench import BENCHMARKS

HELP = "run a benchmark: print its figures, or JSON; --out DIR writes NAME.json and a plot"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", metavar="DIR", help="write NAME.json, a PNG and a Markdown table")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", metavar="NAME")
    sub.required = True
    for name, modname in BENCHMARKS.items():
        mod = importlib.import_module(modname)
        b = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        _common(b)
        mod.add_arguments(b)
    a = sub.add_parser("all", help="every benchmark, one after another")
    _common(a)


def _run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    mod = importlib.import_module(BENCHMARKS[name])
    if args.bench == "all":  # the benchmark's own flags at their defaults
        own = argparse.ArgumentParser()
        mod.add_arguments(own)
        ns = own.parse_args([])
        for key in ("quick", "json", "out"):
            setattr(ns, key, getattr(args, key))
        args = ns
    return mod.run(args)


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    names = list(BENCHMARKS) if args.bench == "all" else [args.bench]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if args.bench == "all" and not args.json:
            print(f"== {name}", file=sys.stderr)
        result = _run_one(name, args)
        results[name] = result
        mod = importlib.import_module(BENCHMARKS[name])
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            stem = result.get("files", name)  # a variant's own files (bench host --bus)
            (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
            md = out / f"{stem}.md"
            md.write_text(mod.markdown(result))
            written = [out / f"{stem}.json", mod.plot(result, out / f"{stem}.png"), md]
            print("wrote " + ", ".join(str(w) for w in written), file=sys.stderr)
        if not args.json:
            print(mod.summary(result))
            from insitu.bench import float_line

            if line := float_line(result.get("machine", {})):
                print(line)
    if args.json:
        print(json.dumps(results[args.bench] if args.bench != "all" else results))
    return 0
