"""The method protocol: what a training method is, said once (docs/methods.md, issue 15).

A method module (``insitu.trainers.<method>``) holds

- ``Options``: a frozen dataclass of the method's options, each field made with ``option()``
  (default, help, bounds, the command-line flag); out-of-bounds values raise ``OptionError``;
- ``METHOD``: one ``Method`` record — its name, its ``Options``, whether it trains on boards,
  the profile whose phases it uses when the caller names none, and its ``plan``: a ``Plan``
  (what it does to one mini-batch and where its learned state lives), run by the one loop
  (trainers/loop.py) that every method shares;
- ``train = METHOD.train``: the one entry point, with the one signature (``Method.train``).

The command line builds its flags from every method's ``Options`` (cli/train.py); nothing
decides what a method is from a function signature. No method opens or builds a rig: the
caller passes one (``insitu.rig.open_rig``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from insitu.network.schema import Network
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers.common import Callback, Resume, TrainConfig

if TYPE_CHECKING:
    from insitu.trainers.insitu import Phases


# ------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class OptionSpec:
    """One option of a method: what the command line shows and what ``Options`` checks."""

    name: str  # the field, and the keyword of Method.train
    flag: str | None  # the command-line flag; None: library only
    help: str
    default: Any
    kind: type  # float, int, bool, str; for a parsed option, what the command line reads
    gt: float | None = None  # value must be > gt
    ge: float | None = None  # value must be >= ge
    le: float | None = None  # value must be <= le
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    # command-line text -> value (a network file -> Network); the record keeps the text
    parse: Callable[[str], Any] | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds ("must be > 0, got -1.0"), or None."""
        if value is None and self.default is None:
            return None
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, got {value!r}"
        if self.kind in (int, float) and not isinstance(value, bool):
            v = float(value)
            if self.gt is not None and not v > self.gt:
                return f"must be > {self.gt:g}, got {value}"
            if self.ge is not None and not v >= self.ge:
                return f"must be >= {self.ge:g}, got {value}"
            if self.le is not None and not v <= self.le:
                return f"must be <= {self.le:g}, got {value}"
        return None


class OptionError(ValueError):
    """An option out of its bounds; ``flag_message`` names the command-line flag instead."""

    def __init__(self, spec: OptionSpec, problem: str) -> None:
        super().__init__(f"{spec.name} {problem}")
        self.spec = spec
        self.flag_message = f"{spec.flag or spec.name} {problem}"


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    kind: type | None = None,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    choices: Sequence[str] = (),
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    cli: bool = True,
) -> Any:
    """A field of an ``Options`` dataclass. ``flag`` defaults to ``--<name>``; ``cli=False``
    keeps the option off the command line (a library-only switch)."""
    meta = {
        "help": help,
        "flag": flag,
        "cli": cli,
        "kind": kind or type(default),
        "gt": gt,
        "ge": ge,
        "le": le,
        "choices": tuple(choices),
        "metavar": metavar,
        "parse": parse,
    }
    return field(default=default, metadata={"option": meta})


def _spec(f: Field[Any]) -> OptionSpec:
    meta = dict(f.metadata.get("option") or {})
    if f.default is MISSING or not meta:
        raise TypeError(f"option {f.name}: make it with option(default, help, ...)")
    cli, flag = meta.pop("cli"), meta.pop("flag")
    flag = (flag or "--" + f.name.replace("_", "-")) if cli else None
    return OptionSpec(name=f.name, flag=flag, default=f.default, **meta)


@dataclass(frozen=True)
class Options:
    """Base of a method's options; a subclass is a frozen dataclass of ``option()`` fields."""

    def __post_init__(self) -> None:
        for spec in self.specs():
            bad = spec.problem(getattr(self, spec.name))
            if bad is not None:
                raise OptionError(spec, bad)

    @classmethod
    def specs(cls) -> tuple[OptionSpec, ...]:
        return tuple(_spec(f) for f in fields(cls))

    def record(self) -> dict[str, Any]:
        """JSON-able values, for the run's record (a network as its file)."""
        out: dict[str, Any] = {}
        for spec in self.specs():
            v = getattr(self, spec.name)
            out[spec.name] = v.source if isinstance(v, Network) else v
        return out


# ------------------------------------------------------------------------------------ a plan


@dataclass(frozen=True)
class Step:
    """What one mini-batch step reports back to the loop."""

    loss: float  # batch-mean loss measured before the step (method's own estimate)
    grad: np.ndarray  # per-bond gradient if the host knows one, NaN where it does not
    max_dk: float
    frozen: int


def hyper(config: TrainConfig) -> dict[str, float]:
    """Optimiser hyper-parameters as the `update` broadcast takes them."""
    return {"b1": config.b1, "b2": config.b2, "eps": config.eps, "mu": config.mu}


class Plan:
    """What a method contributes to the one loop (trainers/loop.py): how it spends loadings
    on one mini-batch, and where its learned state lives. The loop owns the rest: tare, the
    seeded batches, scores, callbacks, checkpoints, in-place recovery and resume.

    ``holds``: where the learned state lives — ``"boards"`` (k and the optimiser on the
    nodes: a checkpoint is what the boards report and save), ``"host"`` (the host's
    optimiser; ``k()``/``opt_state()``/``restore()`` give and take it; ``on_boards``: the
    boards hold that k, set by the host, so they save it too).
    """

    holds = "boards"
    on_boards = True  # a host plan's k lives on the boards (set): they save it at checkpoints
    scores_each_epoch = True  # False: scores at epoch 0 and at the end only

    def start(self, rig: Rig | None, phases: Phases | None) -> None:
        """Called once, after tare (fresh) or after a resume put the boards back."""
        self.rig, self.phases = rig, phases

    def step(self, idx: np.ndarray, n: int) -> Step:
        """Spend loadings on mini-batch ``idx`` (step ``n``, 1-based over the run) and leave
        the boards at their new stiffness."""
        raise NotImplementedError

    def k(self) -> np.ndarray:
        """A host plan's stiffness."""
        raise NotImplementedError

    def opt_state(self) -> dict[str, Any]:
        """A host plan's optimiser state (Optimiser.state)."""
        raise NotImplementedError

    def restore(self, k: np.ndarray, opt: Mapping[str, Any] | None) -> None:
        """A host plan continues from a checkpoint (a resume, or a rollback)."""
        raise NotImplementedError

    def score(self, idx: np.ndarray) -> tuple[float, float | None] | None:
        """(mean loss, accuracy) of samples idx by the method's own means; None: the loop
        scores on the rig (forward phases)."""
        return None

    def finish(self) -> None:
        """Before the last epoch's score (in silico then write: the write)."""

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        """What the plan has to say since the last call, as (kind, detail): the loop hands
        each to the callbacks' ``on_event`` (a run store logs it)."""
        return []


class BoardSteps(Plan):
    """A plan whose state lives on the boards: one function per mini-batch."""

    def __init__(self, step: Callable[[Rig, Phases, np.ndarray, int], Step]) -> None:
        self._step = step

    def step(self, idx: np.ndarray, n: int) -> Step:
        assert self.rig is not None and self.phases is not None
        return self._step(self.rig, self.phases, idx, n)


# ---------------------------------------------------------------------------------- a method


# (boards, one batch of the in-situ rule, exact gradient) -> one gradient check: see loop.py
Truth = Callable[[str, np.ndarray, np.ndarray, Any], np.ndarray]


@dataclass(frozen=True)
class Context:
    """Where and how a method trains: the boards (None in silico), how each loading is
    measured, how often it scores (epochs), where a resumed run continues, how often it
    checkpoints (None: never; 0: at the start and every epoch's end; N: also every N steps)
    and how many rollbacks to a checkpoint it may make in place before a rig error is final
    (counted from the newest checkpoint), and the gradient checks (``truth``: the exact
    gradient of emulated boards, at ``gradient_epochs``, -1 = the last)."""

    rig: Rig | None
    phases: Phases | None
    eval_every: int = 1
    resume: Resume | None = None
    checkpoint_every: int | None = None
    recover: int = 0
    truth: Truth | None = None
    gradient_epochs: tuple[int, ...] = ()


# (net, task, config, options) -> Plan
Planner = Callable[[Network, Task, TrainConfig, Any], Plan]


METHOD_DEFAULT: Any = object()  # profile=: the method's own (Method.profile)


@dataclass(frozen=True)
class Method:
    name: str  # --method
    about: str  # one line, for --help
    options: type[Options]
    on_rig: bool = True
    profile: str = "realistic"  # whose default phases when the caller gives neither
    plan: Planner | None = None  # what the method does; the loop (trainers/loop.py) runs it
    holds: str = "boards"  # where its learned state lives: its Plan's `holds`, said here too
    # so a resume can match boards to checkpoints before building the plan
    # refuses (ValueError) options this network and task cannot run, cheaply, before anything
    # is opened or written; its plan runs it too
    check: Callable[[Network, Task, TrainConfig, Any], None] | None = None

    KEYWORDS: ClassVar[tuple[str, ...]] = ("rig", "profile", "phases", "eval_every", "resume",
                                           "checkpoint_every", "recover", "truth",
                                           "gradient_epochs")  # fmt: skip

    def make_options(
        self, options: Options | None = None, values: Mapping[str, Any] | None = None
    ) -> Any:
        """``options`` as given, or built from keyword values (an unknown keyword: TypeError)."""
        values = values or {}
        if options is not None:
            if values:
                raise TypeError(f"method {self.name}: give options= or option keywords, not both")
            if not isinstance(options, self.options):
                raise TypeError(f"method {self.name} takes {self.options.__name__}")
            return options
        known = {s.name for s in self.options.specs()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"method {self.name} has no option {unknown[0]!r} "
                            f"(its options: {', '.join(sorted(known)) or 'none'})")  # fmt: skip
        return self.options(**values)

    def train(
        self,
        net: Network,
        task: Task,
        config: TrainConfig,
        callbacks: Sequence[Callback] = (),
        *,
        rig: Rig | None = None,
        profile: Any = METHOD_DEFAULT,
        phases: Phases | None = None,
        eval_every: int = 1,
        resume: Resume | None = None,
        checkpoint_every: int | None = None,
        recover: int = 0,
        truth: Truth | None = None,
        gradient_epochs: Sequence[int] = (),
        options: Options | None = None,
        **values: Any,
    ) -> Any:
        """Train ``task`` on ``net`` with this method. A rig method trains on ``rig`` (opened by
        the caller, e.g. ``insitu.rig.open_rig``); ``profile`` (default: the method's) only
        chooses the default ``phases`` (trainers.insitu.default_phases). Scores are taken at
        epoch 0, every ``eval_every`` epochs and at the end. Checkpoints, recovery and
        gradient checks: ``Context``. Method options come as ``options=`` (the method's
        ``Options``) or as keywords (``eta=0.01``)."""
        opts = self.make_options(options, values)
        if self.on_rig:
            if rig is None:
                raise TypeError(f"method {self.name} trains on boards: give rig= "
                                "(insitu.rig.open_rig)")  # fmt: skip
            if phases is None:
                from insitu.trainers.insitu import default_phases

                phases = default_phases(net, self.profile if profile is METHOD_DEFAULT else profile)
        elif rig is not None:
            raise TypeError(f"method {self.name} does not train on boards: drop rig=")
        if recover and checkpoint_every is None:
            raise ValueError(f"method {self.name}: recover= needs checkpoints (checkpoint_every=)")
        if truth is not None and rig is None:
            raise TypeError(f"method {self.name}: a gradient check (truth=) needs boards")
        ctx = Context(rig, phases, eval_every, resume, checkpoint_every, int(recover), truth,
                      tuple(gradient_epochs))  # fmt: skip
        if self.plan is None:
            raise TypeError(f"method {self.name}: no plan")
        from insitu.trainers import loop

        return loop.run(self.name, net, task, config, self.plan(net, task, config, opts),
                        callbacks, ctx)  # fmt: skip
