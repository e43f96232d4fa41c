"""A lab notebook's view of insitu: open a rig, calibrate, train any method, read the record.

    import insitu
    lab = insitu.Session("li-mao-2024", profile="realistic", store="runs/notebook.sqlite")
    run = lab.train("iris", method="superposed", epochs=20, batch=105, calm=10000)
    run.epochs()       # pandas DataFrame: scores per epoch, loadings, rig seconds
    run.stiffness()    # one row per snapshot, one column per bond "k 3-7 (N/m)"
    run.plot()         # learning curves (a matplotlib Figure: shown inline)

Every call goes through the command line's own code (``insitu.cli``): a run started here is
validated, recorded, resumable (``insitu train --resume N``) and viewable (``insitu view N``)
exactly as one started with ``insitu train``; a refused call raises the one-line error the
command would print, and writes nothing. The record is read back from the run store
(docs/run-store.md), the one source: ``insitu.open_run(N)`` reads a run trained anywhere.

pandas is imported only by the methods that return DataFrames (``pip install insitu[notebook]``).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Run", "Session", "open_run"]


def _flags(options: dict[str, Any]) -> list[str]:
    """Keyword options as the command line spells them: lr=3 -> --lr 3, signed_pairs=True ->
    --signed-pairs, a False or None value -> nothing."""
    out: list[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return out


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    from insitu.cli.main import _resolve_auto_ports, build_parser

    args = build_parser().parse_args(list(argv))  # UsageError: the one line insitu prints
    _resolve_auto_ports(args)
    return args


class Session:
    """A rig for a notebook: emulated boards of a profile, or boards on serial ports.

    ``network``: a bundled network name (``li-mao-2024``) or a network file. ``ports``: the
    boards' serial ports (``["auto"]``: those a running ``insitu emulate`` published); without
    them every ``train`` runs on emulated boards of ``profile`` running the real firmware.
    ``bus``: the boards share one RS-485 line (the one port is its adapter; emulated boards go
    on one emulated bus): quiet phases, docs/protocol.md "Bus"; ``bus_listen`` seconds of
    silence mean consent (default: what the deployed boards need).
    ``store``: the run store (default ``$INSITU_STORE`` or ``runs/insitu.sqlite``).
    """

    def __init__(
        self,
        network: str | Path,
        *,
        profile: str = "realistic",
        element: str | None = None,
        ports: Sequence[str] | None = None,
        family: str | None = None,
        pins: str | Path | None = None,
        bus: bool = False,
        bus_listen: float | None = None,
        store: str | Path | None = None,
    ) -> None:
        from insitu.network.schema import load_network

        self.network = load_network(str(network))  # a bad file fails here, naming it
        self.network_file = str(network)
        self.profile = profile
        self.element = element
        self.ports = list(ports or [])
        self.family = family
        self.pins = None if pins is None else str(pins)
        self.bus = bus
        self.bus_listen = bus_listen
        self.store = None if store is None else Path(store)

    def __repr__(self) -> str:
        where = f"ports {', '.join(self.ports)}" if self.ports else f"emulated {self.profile}"
        return f"Session({self.network.name!r}, {where}{', one bus' if self.bus else ''})"

    def _rig_flags(self) -> list[str]:
        out = ["--profile", self.profile] + (["--element", self.element] if self.element else [])
        for p in self.ports:
            out += ["--port", p]
        return out + _flags({"family": self.family, "pins": self.pins, "bus": self.bus,
                             "bus_listen": self.bus_listen})  # fmt: skip

    def train(
        self,
        task: str,
        method: str = "insitu",
        *,
        seed: int = 0,
        epochs: int | None = None,
        calibrate: bool = False,
        progress: bool = False,
        record: bool = True,
        **options: Any,
    ) -> Run:
        """Train ``task`` (a reference task: iris, behaviour, regression, ...) with
        ``method`` (insilico, insitu, superposed, coupled, spsa, fd, pat, insilico-write).
        ``options`` are `insitu train`'s, as keywords: ``batch=105, lr=3, calm=10000,
        signed_pairs=True, eta=0.1, ...``. ``calibrate``: emulated boards are calibrated (on
        the nodes) first; boards on ports use the calibration they hold (``calibrate()``).
        ``record=False``: nothing is written (the Run then has no record to read back)."""
        from insitu.cli import train as cli_train

        argv = ["train", self.network_file, "--task", task, "--method", method,
                "--seed", str(seed), *self._rig_flags()]  # fmt: skip
        argv += _flags({"epochs": epochs, "calibrate": calibrate, **options})
        argv += [] if progress else ["--quiet"]
        argv += ["--store", str(self.store)] if self.store and record else []
        argv += [] if record else ["--no-store"]
        args = _parse(argv)
        net, results, jobs, store = cli_train.train_runs(args)
        try:
            path = None if store is None else Path(store.path)
            return Run(path, jobs[0].run_id, results[0])
        finally:
            if store is not None:
                store.close()

    def calibrate(self, **options: Any) -> dict[str, Any]:
        """Boards on ports: `insitu calibrate` (gauge gains, element maps, force scale, held
        on the nodes). Emulated boards are new for every run: ``train(..., calibrate=True)``."""
        if not self.ports:
            raise ValueError("emulated boards start fresh in every run: calibrate them with "
                             "train(..., calibrate=True)")  # fmt: skip
        from insitu.cli.calibrate import calibrate_boards

        argv = ["calibrate", self.network_file, *self._rig_flags(), *_flags(options)]
        return calibrate_boards(_parse(argv)).as_json()


def open_run(run: int | str, store: str | Path | None = None) -> Run:
    """A recorded run (its id, or its uid), from ``store`` (default as `insitu runs`)."""
    from insitu.store import RunStore, StoreError
    from insitu.store.db import default_path

    path = Path(store) if store is not None else default_path()
    if not path.is_file():  # reading never creates a store
        raise StoreError(f"{path}: no run store there")
    with RunStore(path) as s:
        row = s.run(run)
        return Run(path, int(row["id"]), None)


class Run:
    """One recorded run: its result (when trained in this session) and its record as
    DataFrames. Units are in the column names; bonds are named by their node pairs."""

    def __init__(self, store: Path | None, run_id: int | None, result: Any) -> None:
        self.store = store
        self.id = run_id
        self.result = result  # trainers' MethodResult / TrainResult, or None if opened

    def __repr__(self) -> str:
        if self.id is None:
            return "Run(not recorded)"
        return f"Run({self.id}, store={str(self.store)!r})"

    # ---- the record ------------------------------------------------------------------------
    def _read(self, what: str) -> Any:
        if self.id is None or self.store is None:
            raise ValueError("this run was not recorded (record=False): nothing to read back")
        from insitu.store import RunStore

        with RunStore(self.store) as s:
            return getattr(s, what)(self.id) if what != "run" else s.run(self.id)

    @property
    def info(self) -> dict[str, Any]:
        """The run's row: method, task, seed, profile, status, config, firmware, network."""
        return self._read("run")

    def bonds(self) -> list[str]:
        """Bond names in network order: "3-7" for the bond between nodes 3 and 7."""
        return list(self._bond_names)

    @functools.cached_property
    def _bond_names(self) -> tuple[str, ...]:
        # a run's network never changes: parsed once, not on every table read
        from insitu.network.schema import parse_network

        net = parse_network(self.info["network_text"], f"run {self.id}")
        return tuple(f"{i}-{j}" for i, j in net.bond_ids())

    def epochs(self) -> Any:
        """Scores per scored epoch (0 = before training): loss, accuracy, loadings so far,
        and the host's wall time since the run started (s)."""
        import pandas as pd

        df = pd.DataFrame(self._read("epochs"))
        if df.empty:
            return df
        t0 = df["time"].iloc[0]
        df["time"] = df["time"] - t0
        return df.drop(columns=["run"]).rename(
            columns={"measurements": "loadings", "time": "host time (s)"}
        ).set_index("epoch")

    def steps(self) -> Any:
        """Per optimiser step: batch loss before it, largest stiffness change (N/m), bonds at a
        bound, loadings and host lines so far."""
        import pandas as pd

        df = pd.DataFrame(self._read("steps"))
        if df.empty:
            return df
        df["time"] = df["time"] - df["time"].iloc[0]
        return df.drop(columns=["run"]).rename(
            columns={"max_dk": "max |dk| (N/m)", "measurements": "loadings",
                     "messages": "host lines", "time": "host time (s)"}  # fmt: skip
        ).set_index("step")

    def stiffness(self) -> Any:
        """Snapshots of every bond's stiffness: one row per snapshot (step, epoch), one
        column per bond, "k 3-7 (N/m)"."""
        import pandas as pd

        snaps = self._read("snapshots")
        cols = [f"k {b} (N/m)" for b in self.bonds()]
        df = pd.DataFrame([s["k"] for s in snaps], columns=cols)
        df.insert(0, "epoch", [s["epoch"] for s in snaps])
        df.index = pd.Index([s["step"] for s in snaps], name="step")
        return df

    def events(self) -> Any:
        """Events in order: connect, faults, resume, end, ... with their details (dicts)."""
        import pandas as pd

        df = pd.DataFrame(self._read("events"))
        return df if df.empty else df.drop(columns=["run"])

    def gradients(self) -> Any:
        """Gradient checks: per bond, the boards' in-situ gradient beside the exact one."""
        import pandas as pd

        df = pd.DataFrame(self._read("gradients"))
        if df.empty:
            return df
        names = self.bonds()
        df["bond"] = [names[b] for b in df["bond"]]
        return df.drop(columns=["run"])

    # ---- pictures --------------------------------------------------------------------------
    def plot(self) -> Any:
        """Learning curves: test and train accuracy (or loss) against epochs, and against
        physical loadings. A matplotlib Figure (a notebook shows it inline)."""
        import matplotlib.pyplot as plt

        df = self.epochs()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
        metric = "accuracy" if df["test_accuracy"].notna().any() else "loss"
        for split, style in (("train", "--"), ("test", "-")):
            col = f"{split}_{metric}"
            ax1.plot(df.index, df[col], style, marker="o", ms=3, label=split)
            ax2.plot(df["loadings"], df[col], style, marker="o", ms=3, label=split)
        ax1.set_xlabel("epoch")
        ax2.set_xlabel("physical loadings")
        for ax in (ax1, ax2):
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            ax.legend()
        row = self.info
        fig.suptitle(f"run {self.id}: {row['method']} on {row['task']}, seed {row['seed']}")
        fig.tight_layout()
        plt.close(fig)  # returned, not drawn twice by pyplot's own display
        return fig

    def plot_files(self, out: str | Path | None = None) -> list[Path]:
        """`insitu plot`'s PNGs (curves, the network's stiffness, gradient scatter)."""
        from insitu.cli.plot import plot_run
        from insitu.store import RunStore

        if self.id is None or self.store is None:
            raise ValueError("this run was not recorded (record=False): nothing to plot")
        with RunStore(self.store) as s:
            return plot_run(s, self.id, Path(out) if out else s.run_dir(self.id))
