"""User-defined tasks: a CSV file of samples, or a Python callable ``module:function``.

CSV format (docs/training.md): a header row, then one sample per row.
- input columns are named by port, e.g. ``14:y``: the force in N along that DOF;
- either one ``label`` column (classification: class j is output j of the io set; labels are
  integers 0..n_out-1 or names, numbered in order of first appearance), or target columns
  named ``u:PORT``, e.g. ``u:13:y``: the displacement target in m (regression, MSE).
The io set is the one whose inputs are exactly the force columns (and, for regression, whose
outputs are exactly the target columns); ``io=`` picks one when several match.

A callable is called as ``fn(network, seed)`` and returns a ``Task`` (use ``split`` and the
losses in insitu.tasks.base to build one).
"""

from __future__ import annotations

import csv
import importlib
import inspect
import os
import sys
from pathlib import Path

import numpy as np

from insitu.network.schema import AXES, Network, Port
from insitu.tasks.base import MSE, AbsCrossEntropy, Task, TaskError, split


def _port(text: str, net: Network) -> Port | None:
    node_s, sep, axis = text.strip().partition(":")
    if not sep or axis not in AXES[: net.dim]:
        return None
    try:
        return Port(int(node_s), AXES.index(axis))
    except ValueError:
        return None


def from_csv(
    path: str | Path, net: Network, seed: int = 0, io: str | None = None, train_fraction=0.7
) -> Task:
    """Read a task from a CSV file; every problem raises TaskError naming the file."""
    path = Path(path)
    where = str(path)

    def fail(why: str) -> TaskError:
        return TaskError(f"{where}: {why}")

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise fail("no such file")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read ({exc.__class__.__name__})")
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise fail("empty file (expected a header row and samples)")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if len(body) < 2:
        raise fail(f"{len(body)} sample rows; need at least 2 (one to train, one to test)")

    in_cols: list[tuple[int, Port]] = []
    out_cols: list[tuple[int, Port]] = []
    label_col = None
    for c, name in enumerate(header):
        if name == "label":
            if label_col is not None:
                raise fail("two 'label' columns")
            label_col = c
        elif name.startswith("u:"):
            p = _port(name[2:], net)
            if p is None:
                raise fail(f"column {c + 1} {name!r}: expected u:NODE:AXIS, e.g. u:13:y")
            out_cols.append((c, p))
        else:
            p = _port(name, net)
            if p is None:
                raise fail(
                    f"column {c + 1} {name!r}: expected an input port NODE:AXIS (e.g. 14:y), "
                    "'label' or a target u:NODE:AXIS"
                )
            in_cols.append((c, p))
    if not in_cols:
        raise fail("no input columns (name them by port, e.g. 14:y)")
    if (label_col is None) == (not out_cols):
        raise fail("need either one 'label' column or target columns u:NODE:AXIS, not both")

    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise fail(f"row {r}: {len(row)} fields, header has {len(header)}")

    def numbers(cols: list[tuple[int, Port]]) -> np.ndarray:
        out = np.empty((len(body), len(cols)))
        for r, row in enumerate(body):
            for j, (c, _) in enumerate(cols):
                try:
                    v = float(row[c])
                except ValueError:
                    raise fail(f"row {r + 2}, column {header[c]!r}: {row[c]!r} is not a number")
                if not np.isfinite(v):
                    raise fail(f"row {r + 2}, column {header[c]!r}: {row[c]!r} is not finite")
                out[r, j] = v
        return out

    X = numbers(in_cols)
    in_ports = {p for _, p in in_cols}
    out_ports = [p for _, p in out_cols]
    candidates = [
        name
        for name, s in net.io.items()
        if set(s.inputs) == in_ports and (not out_ports or list(s.outputs) == out_ports)
    ]
    if io is not None:
        if io not in candidates:
            raise fail(f"io set {io!r} of {net.source} does not have these columns' ports")
        candidates = [io]
    if not candidates:
        want = ", ".join(str(p) for _, p in in_cols)
        raise fail(f"no io set of {net.source} has exactly the inputs {want} (and outputs)")
    if len(candidates) > 1:
        raise fail(f"several io sets match ({', '.join(candidates)}); choose one with --io")
    s = net.io_set(candidates[0])
    # reorder the columns into the io set's input order
    order = [[p for _, p in in_cols].index(q) for q in s.inputs]
    X = X[:, order]
    n_out = len(s.outputs)

    if label_col is not None:
        raw = [row[label_col].strip() for row in body]
        if all(v.lstrip("-").isdigit() for v in raw):
            y = np.array([int(v) for v in raw])
            classes = tuple(str(i) for i in range(n_out))
        else:
            names = list(dict.fromkeys(raw))
            y = np.array([names.index(v) for v in raw])
            classes = tuple(names)
        if y.min() < 0 or y.max() >= n_out or len(classes) > n_out:
            raise fail(f"labels must name at most {n_out} classes (io.{s.name} has {n_out})")
        train, test = split(len(y), seed, train_fraction, labels=y)
        return Task(
            name=path.stem,
            io=s.name,
            inputs=X,
            targets=y,
            train=train,
            test=test,
            loss=AbsCrossEntropy(),
            classes=classes,
            description=f"classification from {where}",
        )
    T = numbers(out_cols)
    train, test = split(len(body), seed, train_fraction)
    return Task(
        name=path.stem,
        io=s.name,
        inputs=X,
        targets=T,
        train=train,
        test=test,
        loss=MSE(),
        description=f"regression from {where}",
    )


def from_callable(spec: str, net: Network, seed: int = 0) -> Task:
    """``module:function`` -> function(net, seed), which must return a Task."""
    modname, sep, fname = spec.partition(":")
    if not sep or not modname or not fname:
        raise TaskError(f"{spec}: expected module:function, e.g. mytasks:xor")
    if os.getcwd() not in sys.path:  # `insitu` is a console script: let it see ./mytasks.py
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(modname)
    except ImportError as exc:
        raise TaskError(f"{spec}: cannot import {modname} ({exc})")
    fn = getattr(mod, fname, None)
    if not callable(fn):
        raise TaskError(f"{spec}: {modname} has no function {fname}")
    try:
        inspect.signature(fn).bind(net, seed)
    except TypeError:
        raise TaskError(f"{spec}: {fname} must take (network, seed) and return a Task") from None
    except ValueError:
        pass  # a builtin without a signature: call it and see
    task = fn(net, seed)
    if not isinstance(task, Task):
        raise TaskError(f"{spec}: returned {type(task).__name__}, expected insitu.tasks.Task")
    check(task, net, source=spec)
    return task


def check(task: Task, net: Network, source: str) -> None:
    """Shapes and index sets of a task against its io set."""
    s = net.io_set(task.io)
    n = task.inputs.shape[0] if task.inputs.ndim == 2 else -1
    if task.inputs.ndim != 2 or task.inputs.shape[1] != len(s.inputs):
        raise TaskError(f"{source}: inputs must be (samples, {len(s.inputs)}) for io.{s.name}")
    if task.targets.shape[0] != n:
        raise TaskError(f"{source}: {task.targets.shape[0]} targets for {n} samples")
    for name, idx in (("train", task.train), ("test", task.test)):
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
            raise TaskError(f"{source}: {name} indices must be non-empty and within 0..{n - 1}")
