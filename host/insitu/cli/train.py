"""`insitu train`: train a network on a task (docs/training.md)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from insitu.cli.args import SEED_MAX, integer, number, seed
from insitu.cli.element import PROFILE_NAMES, add_element, element_profile

HELP = "train a network on a task (behaviour, regression, iris, or your own)"

PERIOD_MS = 10  # emulated boards' control period
# flags whose values a resumed run takes from the run itself
RECOVER = 3  # in-place recoveries of a run on boards (--recover)
_RUN_FLAGS = ("network", "task", "task_csv", "task_fn", "epochs", "batch", "lr", "sharpness")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from insitu.tasks import TASKS
    from insitu.trainers import METHODS
    from insitu.trainers.optim import OPTIMISERS

    p.add_argument("network", nargs="?", help="network file (TOML); not with --resume")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--task", choices=list(TASKS), help="a reference task")
    which.add_argument("--task-csv", metavar="FILE", help="samples from a CSV file")
    which.add_argument("--task-fn", metavar="MODULE:FUNCTION", help="fn(network, seed) -> Task")
    p.add_argument("--io", help="io set of the network for --task-csv when several match")
    p.add_argument(
        "--method",
        choices=list(METHODS),
        default="insilico",
        help="training method (default %(default)s; its options: the groups below)",
    )
    p.add_argument("--epochs", type=integer(0, 10**6), help="passes over the training set "
                   "(task default)")  # fmt: skip
    p.add_argument("--batch", type=integer(1, 10**6), help="samples per step (task default)")
    p.add_argument("--lr", type=number(0.0, 1e4), help="learning rate, N/m per step (task default)")
    p.add_argument("--optimiser", choices=OPTIMISERS, default="adam")
    p.add_argument("--seed", type=seed, default=0, help="split, samples and shuffling")
    p.add_argument(
        "--repeat", type=integer(1, 1000), default=1, metavar="N",
        help="run seeds S..S+N-1; report each+mean",
    )  # fmt: skip
    p.add_argument(
        "--sharpness",
        type=number(0.0, 100.0),
        help="iris: exponent g of p_j ~ |u_j|^g in the loss (1 = the paper's; default 5)",
    )
    p.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default="realistic",
        help="emulated boards for a rig-based method (default %(default)s)",
    )
    add_element(p)
    p.add_argument(
        "--port",
        action="append",
        metavar="PORT",
        help="train the boards on these serial ports (repeat; matched to the network's boards "
        "by identify, never by order); --profile then only sets the phase timing",
    )
    p.add_argument(
        "--family",
        choices=("pico", "pico2", "esp32", "emu"),
        help="--port: the boards' family if not the network file's (emu: emulated boards)",
    )
    p.add_argument("--pins", metavar="FILE", help="--port: pin map the boards were flashed with")
    p.add_argument(
        "--bus",
        action="store_true",
        help="the boards share one RS-485 line: --port is its adapter (emulated boards: one "
        "emulated bus); phases go quiet, O(1) frames whatever the boards (docs/protocol.md)",
    )
    p.add_argument(
        "--bus-listen", type=number(0.001, 60.0), metavar="S",
        help="--bus: seconds of silence after a quiet request that mean consent (default: "
        "20 ms + the boards' reply slots; longer for emulated MicroPython boards, which share "
        "the host's cores)",
    )  # fmt: skip
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="emulated boards: calibrate them (loaded on the nodes) before training "
        "(insitu calibrate; hardware/README.md)",
    )
    p.add_argument(
        "--uncalibrated",
        action="store_true",
        help="--port: train boards that hold no calibration (refused otherwise)",
    )
    p.add_argument(
        "--check-elements",
        action="store_true",
        help="boards: self-test every stiffness element before training (and on resume); "
        "a stuck one is reported, logged and its bond frozen (insitu check)",
    )
    p.add_argument(
        "--recover",
        type=integer(0, 1000),
        metavar="N",
        help="boards: when a board restarts or stops answering mid-run, go back to the last "
        "checkpoint in place and go on, up to N times from one checkpoint (default 3; 0 = "
        "stop, resume by hand; with --resume: instead of the run's own setting)",
    )
    p.add_argument(
        "--calm", type=integer(0, 1 << 24), default=0, metavar="COUNTS",
        help="rig-based: settle until still: each node starts sampling once its gauges' 200 ms "
        "means move by at most COUNTS (HX711 counts), 10 tau being the cap (default 0: always "
        "wait 10 tau; 10000 saves ~20 %% of the rig time, docs/benchmarks.md)",
    )  # fmt: skip
    p.add_argument(
        "--eval-every", type=integer(1, 10**6), default=1, metavar="N",
        help="rig-based: score every N epochs",
    )
    p.add_argument(
        "--snapshot-every",
        type=integer(0, 10**9),
        default=0,
        metavar="N",
        help="snapshot (checkpoint) every N steps; always at step 0 and every epoch's end",
    )
    p.add_argument(
        "--gradient-epochs",
        default="0,-1",
        metavar="E,..",
        help="emulated in-situ runs: record one batch's in-situ vs exact gradient after these "
        "epochs (-1 = last; '' = never; default %(default)s)",
    )
    p.add_argument(
        "--store", metavar="PATH", help="run store (default $INSITU_STORE or runs/insitu.sqlite)"
    )
    p.add_argument("--no-store", action="store_true", help="do not record the run")
    p.add_argument(
        "--resume", metavar="RUN", help="continue an unfinished run from its last checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_method_options(p)


def _dest(flag: str) -> str:
    return "method_" + flag.lstrip("-").replace("-", "_")


def _method_flags() -> dict[str, list[tuple[str, Any]]]:
    """Every method option on the command line: flag -> [(method, OptionSpec)], in the
    order of METHODS (a flag two methods declare is one flag for both)."""
    from insitu.trainers import METHODS, method

    flags: dict[str, list[tuple[str, Any]]] = {}
    for name in METHODS:
        for spec in method(name).options.specs():
            if spec.flag is not None:
                flags.setdefault(spec.flag, []).append((name, spec))
    return flags


def _add_method_options(p: argparse.ArgumentParser) -> None:
    """One argument group per method, its flags built from the method's Options dataclass
    (insitu.trainers.protocol): default and help from the field, bounds checked by it."""
    from insitu.trainers import method

    groups: dict[str, Any] = {}
    for flag, owners in _method_flags().items():
        name, spec = owners[0]
        if name not in groups:
            groups[name] = p.add_argument_group(f"--method {name}", method(name).about)
        others = [m for m, _ in owners[1:]]
        notes = [f"{op} {b:g}" for op, b in ((">", spec.gt), (">=", spec.ge), ("<=", spec.le))
                 if b is not None]  # fmt: skip
        if spec.kind is bool:
            notes.append("default " + ("on" if spec.default else "off"))
        elif spec.default is not None:
            notes.append(f"default {spec.default}")
        if others:
            notes.append(f"also --method {', '.join(others)}")
        text = spec.help + (f" ({'; '.join(notes)})" if notes else "")
        kw: dict[str, Any] = {"dest": _dest(flag), "default": None, "help": text.replace("%", "%%")}
        if spec.kind is bool:
            kw["action"] = "store_true" if spec.default is False else argparse.BooleanOptionalAction
        else:  # a float option is finite (argparse's float takes "nan" and "inf")
            kw["type"] = str if spec.parse is not None else spec.kind
            if kw["type"] is float:
                from insitu.cli.args import plain_float

                kw["type"] = plain_float
            if spec.choices:
                kw["choices"] = list(spec.choices)
            kw["metavar"] = None if spec.choices else spec.metavar or spec.name.upper()
        groups[name].add_argument(flag, **kw)


def _given_method_flags(args: argparse.Namespace) -> list[str]:
    return [f for f in _method_flags() if getattr(args, _dest(f), None) is not None]


def _options(args: argparse.Namespace, name: str) -> Any:
    """The method's Options from its flags; a flag of another method, or a value out of its
    bounds, is a user error naming the flag."""
    from insitu.cli.main import UserError
    from insitu.trainers import method
    from insitu.trainers.protocol import OptionError

    m = method(name)
    values: dict[str, Any] = {}
    for flag, owners in _method_flags().items():
        v = getattr(args, _dest(flag), None)
        if v is None:
            continue
        spec = next((sp for o, sp in owners if o == name), None)
        if spec is None:
            which = ", ".join(o for o, _ in owners)
            raise UserError(f"{flag} goes with --method {which}, not --method {name}")
        values[spec.name] = spec.parse(v) if spec.parse is not None else v
    try:
        return m.options(**values)
    except OptionError as exc:
        raise UserError(exc.flag_message)


def _stored_options(name: str, record: dict[str, Any]) -> Any:
    """A recorded run's Options (Options.record) back as values."""
    from insitu.cli.main import UserError
    from insitu.trainers import method

    m = method(name)
    specs = {s.name: s for s in m.options.specs()}
    values: dict[str, Any] = {}
    for key, v in record.items():
        spec = specs.get(key)
        if spec is None:
            raise UserError(f"the run used option {key!r} of method {name}, unknown here")
        values[key] = spec.parse(v) if spec.parse is not None and isinstance(v, str) else v
    try:
        return m.options(**values)
    except ValueError as exc:
        raise UserError(f"the run's options: {exc}")


def _task(args: argparse.Namespace, net: Any, seed: int) -> Any:
    from insitu.cli.main import UserError
    from insitu.tasks import TaskError, from_callable, from_csv, make_task

    try:
        if args.task_csv:
            return from_csv(args.task_csv, net, seed, io=args.io)
        if args.task_fn:
            return from_callable(args.task_fn, net, seed)
        options = {}
        if args.sharpness is not None:
            if args.task != "iris":
                raise UserError("--sharpness applies to --task iris only")
            if not args.sharpness > 0:
                raise UserError(f"--sharpness must be > 0, got {args.sharpness}")
            options["sharpness"] = args.sharpness
        return make_task(args.task, net, seed, **options)
    except TaskError as exc:
        raise UserError(str(exc))


def _config(args: argparse.Namespace, task: Any, seed: int) -> Any:
    from insitu.cli.main import UserError
    from insitu.trainers.common import TrainConfig

    d = task.defaults
    try:
        return TrainConfig(
            epochs=args.epochs if args.epochs is not None else d.get("epochs", 100),
            batch=args.batch if args.batch is not None else d.get("batch", 16),
            lr=args.lr if args.lr is not None else d.get("lr", 1.0),
            seed=seed,
            optimiser=args.optimiser,
        )
    except ValueError as exc:
        raise UserError(str(exc))


def _task_spec(args: argparse.Namespace) -> dict[str, Any]:
    """What _task needs, as stored in the run's config (a resumed run rebuilds its task)."""
    return {k: getattr(args, k, None) for k in ("task", "task_csv", "task_fn", "io", "sharpness")}


def _open_store(args: argparse.Namespace) -> Any:
    import sqlite3

    from insitu.cli.main import UserError
    from insitu.store import RunStore, StoreError

    if args.store and Path(args.store).is_dir():
        raise UserError(f"--store {args.store}: is a directory: give a file, e.g. "
                        f"{Path(args.store) / 'insitu.sqlite'}")  # fmt: skip
    try:
        return RunStore(args.store)
    except (StoreError, OSError, sqlite3.Error) as exc:
        raise UserError(f"--store {args.store or 'runs/insitu.sqlite'}: {exc}")


def _gradient_epochs(text: str) -> tuple[int, ...]:
    from insitu.cli.main import UserError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--gradient-epochs takes epoch numbers like 0,-1, not {text!r}")


class _Recovering:
    """Says on stderr when the training loop went back to a checkpoint in place."""

    def __init__(self, run_id: int | None) -> None:
        self.run_id = run_id

    def on_recover(self, step: int, error: str, rebooted: Any) -> None:
        run = f"run {self.run_id}" if self.run_id is not None else "the run"
        print(f"insitu train: {error}; {run} continues from its last checkpoint (step {step})",
              file=sys.stderr, flush=True)  # fmt: skip


class _Job:
    """One run of one seed: the method, its rig (if it trains on boards) and its record."""

    def __init__(
        self, method_name: str, net: Any, task: Any, cfg: Any, settings: dict, options: Any
    ) -> None:
        from insitu.trainers import method

        self.method_name = method_name
        self.method = method(method_name)
        self.on_rig = self.method.on_rig
        self.options = options
        self.net, self.task, self.cfg, self.settings = net, task, cfg, settings
        self.profile = settings["profile"] if self.on_rig else None
        self.lab: Any = None
        self.rig: Any = None
        self.run_id: int | None = None
        self.recorder: Any = None
        self.calibration: dict[str, Any] | None = None  # --calibrate: its rig s, loadings

    def config(self) -> dict[str, Any]:
        from insitu.deploy.flash import firmware_sha256

        # the firmware by content, not only its version number (a run names what it ran on)
        return {"train": asdict(self.cfg), "method": self.method_name,
                "options": self.options.record(), **self.settings,
                "firmware_sha256": firmware_sha256()}  # fmt: skip

    def port_configs(self) -> dict[int, dict]:
        """What each board on a port must be running (what `insitu flash` wrote)."""
        from insitu.cli.main import UserError
        from insitu.deploy.flash import FlashError
        from insitu.rig.lab import board_configs

        try:
            return board_configs(
                self.net, family=self.settings.get("family"), pins=self.settings.get("pins"),
                profile=self.profile,
            )  # fmt: skip
        except (FlashError, ValueError) as exc:
            raise UserError(str(exc))

    def connect(self, flash_dir: Path | None, fresh: bool = False) -> None:
        """Open the boards; a ``fresh`` run puts them at the stiffness it declares (the
        file's k_init), whatever an earlier run left on them."""
        self._open(flash_dir)
        if fresh and self.rig is not None:
            k0 = np.clip(self.net.k_init, self.net.k_min, self.net.k_max)
            if not np.array_equal(self.rig.stiffness(), k0):
                self.rig.set_stiffness(k0)

    def _open(self, flash_dir: Path | None) -> None:
        from insitu.rig.lab import open_rig

        if self.on_rig and self.settings.get("ports"):
            from insitu.cli.main import UserError
            from insitu.deploy.flash import FlashError
            from insitu.links import LinkError
            from insitu.rig import RigError

            try:  # refuses a missing board, other firmware, other config
                _, self.rig = open_rig(
                    self.net, self.settings["ports"], family=self.settings.get("family"),
                    pins=self.settings.get("pins"), profile=self.profile,
                    bus=bool(self.settings.get("bus")),
                    listen_s=self.settings.get("bus_listen"),
                )  # fmt: skip
            except (FlashError, ValueError, LinkError, RigError) as exc:
                raise UserError(str(exc))
            bare = self.rig.uncalibrated()
            if bare and not self.settings.get("uncalibrated"):
                self.rig.close()
                raise UserError(f"{', '.join(bare)} hold(s) no calibration: run insitu calibrate "
                                "--port ... first, or train with --uncalibrated")  # fmt: skip
            return
        if self.on_rig:
            self.lab, self.rig = open_rig(
                self.net, profile=self.profile, seed=self.cfg.seed,
                period_ms=int(self.settings.get("period_ms", PERIOD_MS)),
                flash_dir=flash_dir, bus=bool(self.settings.get("bus")),
            )  # fmt: skip
            # a resumed run's boards booted from flash with the calibration they were saved with
            if self.settings.get("calibrate") and self.rig.uncalibrated():
                from insitu.calibrate import CalibrationError, calibrate_emulated
                from insitu.cli.main import UserError
                from insitu.trainers.insitu import default_phases

                phases = default_phases(self.net, self.profile)
                c = self.rig.counters
                t0, n0 = self.rig.mark_time(), c.loadings
                try:
                    calibrate_emulated(self.lab, self.rig, settle_ms=phases.settle_ms)
                except CalibrationError as exc:  # the boards could not be calibrated
                    raise UserError(f"--calibrate: {exc}") from exc
                t1 = self.rig.mark_time()
                self.calibration = {"rig_seconds": round(t1 - t0, 3), "loadings": c.loadings - n0}
                # the method's loadings and rig time count from here, as without --calibrate;
                # the calibration's are reported beside them
                c.rig_ms, c.loadings = int(round(t0 * 1000)), n0

    def check_elements(self, store: Any, quiet: bool, resumed: bool) -> None:
        """--check-elements: the stiffness elements' self-test before training (again on
        resume: a rebooted node forgets its latched faults). Stuck ones are frozen by their
        nodes; the report goes to stderr and the run store. A fresh run tares first; a resumed
        one keeps the strain offsets its checkpoint restored."""
        from insitu.rig.selftest import check_elements

        report = check_elements(self.rig, tare=not resumed)  # a RigError: as in training
        if store is not None:
            store.add_event(self.run_id, "elements", report.as_dict())
        if not quiet or report.stuck:
            print("\n".join(report.lines()), file=sys.stderr, flush=True)

    def execute(self, store: Any, quiet: bool, recover: int, resume: Any = None,
                ckpt: Any = None) -> Any:  # fmt: skip
        """Train (or continue) the run. Recorded or not, the loop does the same to the boards
        — checkpoints, gradient checks — so a stored run equals an unstored one bit for bit;
        the store only adds its rows."""
        from insitu.cli.progress import Progress
        from insitu.rig.lab import truth_gradient
        from insitu.store.recorder import Recorder, mark_failed

        rig = self.rig
        baseline = (0, 0)
        if ckpt is not None and rig is not None:  # count from here: the checkpoint has the rest
            baseline = (int(rig.counters.loadings), int(rig.counters.sent))
        steps = -(-self.task.train.size // self.cfg.batch)
        callbacks: list[Any] = [] if quiet else [Progress(self.cfg.epochs, steps)]
        callbacks.append(_Recovering(self.run_id))
        if store is not None:
            self.recorder = Recorder(store, self.run_id, rig=rig, resume=ckpt, baseline=baseline)
            callbacks.append(self.recorder)
        kwargs: dict[str, Any] = {
            "resume": resume, "options": self.options,
            "eval_every": self.settings.get("eval_every", 1),
            "checkpoint_every": int(self.settings.get("snapshot_every", 0)),
            "recover": recover if self.on_rig else 0,
        }  # fmt: skip
        if self.on_rig:
            kwargs.update(rig=rig, profile=self.profile)
            if self.settings.get("calm"):
                from insitu.trainers.insitu import default_phases

                ph = default_phases(self.net, self.profile)
                kwargs["phases"] = replace(ph, calm=int(self.settings["calm"]))
            grads = tuple(self.settings.get("gradient_epochs", ()))
            if self.lab is not None and self.method_name == "insitu" and grads:
                kwargs.update(truth=truth_gradient(self.lab), gradient_epochs=grads)
        try:
            if self.on_rig and self.settings.get("check_elements"):
                self.check_elements(store, quiet, resumed=ckpt is not None)
            return self.method.train(self.net, self.task, self.cfg, callbacks, **kwargs)
        except BaseException as exc:
            if store is not None:
                mark_failed(store, self.run_id, exc, self.recorder.step)
            raise

    @property
    def measurements(self) -> int:
        if self.recorder is not None:
            return self.recorder.measurements
        return int(self.rig.counters.loadings) if self.rig is not None else 0


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        return _resume(args)
    net, results, jobs, store = train_runs(args)
    return report(args, net, results, jobs, store)


def train_runs(args: argparse.Namespace) -> tuple[Any, list, list, Any]:
    """The runs `insitu train ARGS` asks for (one per seed): (network, results, jobs, store).
    ``args.period_ms``, if set, is the emulated boards' control period (`insitu demo`)."""
    from insitu.cli.main import UserError
    from insitu.network.schema import load_network

    args.profile = element_profile(args)
    if args.network is None:
        raise UserError("give a network file (or --resume RUN)")
    if not (args.task or args.task_csv or args.task_fn):
        raise UserError("give one of --task, --task-csv, --task-fn")
    if args.repeat < 1:
        raise UserError(f"--repeat must be >= 1, got {args.repeat}")
    if not args.port and (args.family or args.pins):
        raise UserError("--family and --pins go with --port (boards on serial ports)")
    if args.recover is None:
        args.recover = RECOVER
    if args.recover < 0:
        raise UserError(f"--recover must be >= 0, got {args.recover}")
    if args.eval_every < 1 or args.snapshot_every < 0:
        raise UserError("--eval-every must be >= 1 and --snapshot-every >= 0")
    net = load_network(args.network)
    settings = {
        "task": _task_spec(args),
        "profile": args.profile,
        "eval_every": args.eval_every,
        "snapshot_every": args.snapshot_every,
        "gradient_epochs": list(_gradient_epochs(args.gradient_epochs)),
        "period_ms": int(getattr(args, "period_ms", None) or PERIOD_MS),
        "network_file": str(Path(net.source).resolve()),  # a bundled name resolves to its file
        "calibrate": bool(args.calibrate),
        "uncalibrated": bool(args.uncalibrated),
        "check_elements": bool(args.check_elements),
        "recover": int(args.recover),
        "calm": int(args.calm),
    }
    if args.calibrate and args.port:
        raise UserError("--calibrate runs on emulated boards; for boards on ports run "
                        "insitu calibrate --port ... first")  # fmt: skip
    if args.port:
        settings["ports"] = list(args.port)
        settings["family"] = args.family
        settings["pins"] = args.pins
    if args.bus_listen is not None and not args.bus:
        raise UserError("--bus-listen goes with --bus")
    if args.bus:  # recorded only when set: runs without a bus keep their config as it was
        settings["bus"] = True
        if args.bus_listen is not None:
            settings["bus_listen"] = float(args.bus_listen)
    options = _options(args, args.method)
    if args.seed + args.repeat - 1 > SEED_MAX:
        raise UserError(f"--seed {args.seed} --repeat {args.repeat}: seeds end above {SEED_MAX}")
    # every seed's task, config and method checked before anything is written
    jobs = []
    for s in range(args.seed, args.seed + args.repeat):
        task = _task(args, net, s)
        job = _Job(args.method, net, task, _config(args, task, s), settings, options)
        if args.port and not job.on_rig:
            raise UserError(f"--method {args.method} does not train on boards; drop --port")
        if args.check_elements and not job.on_rig:
            raise UserError(f"--method {args.method} does not train on boards; "
                            "drop --check-elements")  # fmt: skip
        if job.method.check is not None:  # the method's own checks of its options, now
            try:  # (e.g. superposed: more forward states than a node keeps)
                job.method.check(net, task, job.cfg, options)
            except ValueError as exc:
                why = str(exc).removeprefix(f"{args.method}: ")
                raise UserError(f"--method {args.method}: {why}") from None
        jobs.append(job)
    store = None if args.no_store else _open_store(args)
    results = []
    for job in jobs:
        flash = None
        if store is not None:
            if args.port:
                from insitu.deploy.nodeconfig import expected_hash

                hashes = {b: expected_hash(c) for b, c in job.port_configs().items()}
            else:
                from insitu.rig.lab import board_hashes

                hashes = board_hashes(net, args.profile) if job.on_rig else {}
            job.run_id = store.create_run(
                args.method, job.task.name, job.cfg.seed, job.config(), net, job.profile, hashes
            )
            flash = store.run_dir(job.run_id) / "boards"
            # a new run's emulated boards start from an empty flash: never from a run that
            # had this id in a store deleted since, or in another store of this directory
            shutil.rmtree(flash, ignore_errors=True)
        try:
            job.connect(flash, fresh=True)
        except BaseException as exc:  # a run that never started training is failed, not running
            if store is not None:
                from insitu.store.recorder import mark_failed

                mark_failed(store, job.run_id, exc, 0)
            raise
        if store is not None and job.calibration is not None:
            store.add_event(job.run_id, "calibrated", job.calibration, 0)
        results.append(_train(job, store, args.quiet, args.recover))
    return net, results, jobs, store


def _resume(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.network.schema import parse_network
    from insitu.store import StoreError
    from insitu.trainers import METHODS
    from insitu.trainers.common import TrainConfig

    given = ["--" + f.replace("_", "-") for f in _RUN_FLAGS if getattr(args, f, None) is not None]
    given += _given_method_flags(args)  # the method's options are the run's too
    if given:
        flag = "the network file" if given[0] == "--network" else given[0]
        raise UserError(f"--resume continues the run with its own settings; drop {flag}")
    if args.check_elements:
        raise UserError("--resume checks the elements again if the run did; drop --check-elements")
    if args.no_store:
        raise UserError("--resume needs the run store (drop --no-store)")
    store = _open_store(args)
    try:
        row = store.run(args.resume)
        rid = int(row["id"])
        if row["status"] == "finished":
            raise UserError(f"run {rid} is finished; nothing to resume")
        if row["method"] not in METHODS:
            raise UserError(f"run {rid} used method {row['method']!r}, which this insitu lacks")
        conf = row["config"]
        net = parse_network(row["network_text"], f"run {rid} ({row['network_source']})")
        task = _task(argparse.Namespace(**conf["task"]), net, int(row["seed"]))
        cfg = TrainConfig(**conf["train"])
        settings = {k: v for k, v in conf.items() if k not in ("train", "method", "options")}
        options = _stored_options(row["method"], conf.get("options") or {})
        job = _Job(row["method"], net, task, cfg, settings, options)
        job.run_id = rid
        job.connect(store.run_dir(rid) / "boards")
    except StoreError as exc:
        raise UserError(str(exc))
    ckpt = _checkpoint(job, store)
    recover = args.recover if args.recover is not None else int(conf.get("recover", 0))
    if recover < 0:
        raise UserError(f"--recover must be >= 0, got {recover}")
    result = _continue(job, store, args.quiet, ckpt, recover)
    args.repeat, args.seed = 1, int(row["seed"])
    return report(args, net, [result], [job], store)


def _checkpoint(job: _Job, store: Any) -> Any:
    """The checkpoint run ``job.run_id`` continues from (None: start again), with every board
    put back at it (trainers.loop.rejoin)."""
    from insitu.cli.main import UserError
    from insitu.rig import RigError
    from insitu.store import StoreError
    from insitu.store.recorder import checkpoints
    from insitu.trainers.loop import NoCheckpoint, rejoin

    rid = job.run_id
    stored = {c.step: c for c in store.checkpoints(rid)}
    if not stored:
        return None  # killed before its first checkpoint: start again (no board saved)
    try:
        if job.on_rig and any(c.on_boards for c in stored.values()):
            return stored[rejoin(job.rig, checkpoints(store, rid), job.method.holds).step]
        return next(iter(stored.values()))  # the newest
    except NoCheckpoint as exc:
        raise UserError(f"run {rid}: {exc}")
    except (StoreError, RigError) as exc:
        raise UserError(str(exc))


def _continue(job: _Job, store: Any, quiet: bool, ckpt: Any, recover: int) -> Any:
    """Train run ``job.run_id`` on from checkpoint ``ckpt`` (a resume event says from where)."""
    from insitu.store.recorder import resume_from

    rid = job.run_id
    steps_per_epoch = -(-job.task.train.size // job.cfg.batch)
    resume = None if ckpt is None else resume_from(store, rid, ckpt, steps_per_epoch)
    if ckpt is not None:  # an epoch's score after its last step's checkpoint is kept, not
        kept = [e["measurements"] for e in store.epochs(rid)  # redone: count its loadings
                if e["epoch"] * steps_per_epoch <= ckpt.step]  # fmt: skip
        ckpt = replace(ckpt, measurements=max([ckpt.measurements, *kept]))
    recorded = store.steps(rid)
    last = recorded[-1]["step"] if recorded else 0
    start = 0 if ckpt is None else ckpt.step
    boots = {a: i.boots for a, i in job.rig.boards.items()} if job.rig is not None else {}
    store.set_status(rid, "running")
    detail = {"from_step": start, "redo_steps": max(0, last - start), "pid": os.getpid(),
              "boots": boots}  # fmt: skip
    store.add_event(rid, "resume", detail, start)
    return _train(job, store, quiet, recover, resume=resume, ckpt=ckpt)


def _train(
    job: _Job, store: Any, quiet: bool, recover: int, resume: Any = None, ckpt: Any = None
) -> Any:
    """job.execute. A rig error (a board restarted, a reply lost after the retries, a sensor
    that timed out) is recovered from in place by the training loop, up to ``recover``
    rollbacks from one checkpoint; past that the run stops, to be resumed by hand."""
    from insitu.cli.main import UserError
    from insitu.rig import RigError
    from insitu.store import StoreWriteError

    try:
        return job.execute(store, quiet, recover, resume=resume, ckpt=ckpt)
    except StoreWriteError as exc:  # the record cannot grow: stop, resumable once it can
        step = job.recorder.step if job.recorder is not None else 0
        raise StoreWriteError(f"{exc}; run {job.run_id} stopped at step {step}: when the "
                              f"store can be written again, insitu train --resume "
                              f"{job.run_id}") from exc  # fmt: skip
    except RigError as exc:
        if store is None or not job.on_rig:
            raise UserError(str(exc))
        raise UserError(f"{exc}; run {job.run_id} stopped, continue it with "
                        f"insitu train --resume {job.run_id}")  # fmt: skip


def report(args: argparse.Namespace, net: Any, results: list, jobs: list, store: Any) -> int:
    if len(results) == 1:
        r, job = results[0], jobs[0]
        out: dict[str, Any] = {"run": job.run_id, **r.summary()}
        out["measurements"] = job.measurements
        out["profile"] = job.profile
        if job.calibration is not None:
            out["calibration"] = job.calibration
        out["task_info"] = job.task.summary()
        out["config"] = r.to_dict()["config"]
        out["k_final"] = r.k_final.tolist()
        out["history"] = [h.to_dict() for h in r.history]
    else:
        runs = [
            {"run": j.run_id, **r.summary(), "measurements": j.measurements}
            for r, j in zip(results, jobs, strict=True)
        ]
        out = {"runs": runs, **_aggregate(results)}
    if store is not None:
        out["store"] = str(store.path)
    faults = [f"run {j.run_id}: {f}" for r, j in zip(results, jobs, strict=True)
              for f in getattr(r, "faults", [])]  # fmt: skip
    if faults:
        out["faults"] = faults
        for line in faults:  # the user is told which bonds and nodes stopped learning
            print(f"insitu train: fault: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        _print_readable(results, out)
        if store is not None:
            ids = ", ".join(str(j.run_id) for j in jobs)
            print(f"recorded as run {ids} in {store.path} (insitu runs show / insitu plot)")
    return 0


def _aggregate(results: list) -> dict[str, Any]:
    agg: dict[str, Any] = {}
    for key in ("train_accuracy", "test_accuracy", "final_loss", "test_loss"):
        vals = [r.summary()[key] for r in results]
        if all(v is not None for v in vals):
            agg[f"mean_{key}"] = float(np.mean(vals))
            agg[f"std_{key}"] = float(np.std(vals))
    return agg


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.2f} %" if pct else f"{v:.4g}"


def _print_readable(results: list, out: dict[str, Any]) -> None:
    r0 = results[0]
    c = r0.config
    print(
        f"{r0.method} training on {r0.task}: {c.epochs} epochs, batch {c.batch}, "
        f"{c.optimiser} lr {c.lr:g} N/m per step"
    )
    print(f"{'seed':>5} {'train acc':>10} {'test acc':>10} {'train loss':>11} {'test loss':>10}")
    for r in results:
        s = r.summary()
        print(
            f"{s['seed']:>5} {_fmt(s['train_accuracy'], True):>10} "
            f"{_fmt(s['test_accuracy'], True):>10} {_fmt(s['final_loss']):>11} "
            f"{_fmt(s['test_loss']):>10}"
        )
    if len(results) > 1:
        m = out
        print(
            f"{'mean':>5} {_fmt(m.get('mean_train_accuracy'), True):>10} "
            f"{_fmt(m.get('mean_test_accuracy'), True):>10} {_fmt(m['mean_final_loss']):>11} "
            f"{_fmt(m['mean_test_loss']):>10}"
        )
        if "std_test_accuracy" in m:
            print(f"test accuracy {_fmt(m['mean_test_accuracy'], True)} ± "
                  f"{_fmt(m['std_test_accuracy'], True)} over {len(results)} seeds")  # fmt: skip
    else:
        k = r0.k_final
        print(f"stiffness after training: {k.min():.1f} .. {k.max():.1f} N/m ({k.size} bonds)")
