"""A live view of the run store in the browser (`insitu view`).

The run store is the one source: the server reads it on every request and the page polls, so
a run that another process is training shows up as it is written, and a finished run is
browsable the same way. Nothing here writes to the store.

``run_document(store, run)`` is everything the page draws for one run, as JSON-ready data:
the run's metadata, the network (geometry, bounds, supports, the task's input and output
nodes), the newest stiffness snapshot, the displacement the digital twin gives for that
stiffness under 5 g at each input (what the rig's outputs would do), the learning curves with
the paper's figures as reference lines where the task has them, the newest gradient check
(in situ vs exact, per bond), and the boards' health as the record tells it (events).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

# Li & Mao (2024), Iris in simulation after 100 epochs, mean of 10 runs (DESIGN.md section 3)
PAPER_REFERENCE = {"iris": {"train_accuracy": 0.9495, "test_accuracy": 0.9644}}
G = 9.8  # m/s^2, the paper's hanging weights
TWIN_LOAD_KG = 0.005  # the paper's 5 g weights
MAX_STEP_POINTS = 600  # batch losses sent to the page (evenly thinned beyond this)


def _finite(v: Any) -> Any:
    """JSON has no NaN/inf: None instead."""
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def runs_document(store: Any) -> list[dict[str, Any]]:
    keys = ("id", "created", "status", "method", "task", "seed", "profile", "steps", "epoch",
            "epochs", "train_accuracy", "test_accuracy")  # fmt: skip
    return [{k: _finite(r.get(k)) for k in keys} for r in store.runs()]


# the page polls every second: a run's network and task are parsed and rebuilt once, not per
# poll (a 10^4-node file takes seconds to parse; Iris's task reads its CSV)
_NETWORKS: dict[tuple[Any, ...], tuple[dict[str, Any], Any]] = {}


def _network(row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    task = row["config"].get("task") if isinstance(row["config"], dict) else None
    key = (row["network_sha256"], row["network_source"], row["seed"],
           json.dumps(task, sort_keys=True, default=str))  # fmt: skip
    if key not in _NETWORKS:
        if len(_NETWORKS) >= 16:
            _NETWORKS.pop(next(iter(_NETWORKS)))
        _NETWORKS[key] = _build_network(row)
    return _NETWORKS[key]  # read-only for the callers: documents are built from it


def _build_network(row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from insitu.cli.plot import _io_ports
    from insitu.network.schema import parse_network

    net = parse_network(row["network_text"], row["network_source"] or "<run>")
    ins, outs = _io_ports(row, net)
    doc = {
        "name": net.name,
        "dim": net.dim,
        "nodes": [
            {"id": int(nid), "x": [float(v) for v in net.positions[i]],
             "fixed": nid in net.fixed}
            for i, nid in enumerate(net.node_ids)
        ],  # fmt: skip
        "bonds": [[int(a), int(b)] for a, b in net.bond_ids()],
        "k_min": float(np.min(net.k_min)),
        "k_max": float(np.max(net.k_max)),
        "k_init": [float(v) for v in net.k_init],
        "inputs": [{"node": p.node, "axis": p.axis} for p in ins],
        "outputs": [{"node": p.node, "axis": p.axis} for p in outs],
    }
    return doc, (net, ins)


def _twin_displacement(net: Any, inputs: list, k: np.ndarray) -> list[list[float]] | None:
    """Displacement per node (m) of the digital twin at stiffness k under 5 g along -y at each
    input node; None when the run's task has no inputs or the twin cannot solve it."""
    from insitu.physics.linear import Equilibrium, compatibility

    if not inputs:
        return None
    f = np.zeros(net.n_nodes * net.dim)
    for node in sorted({p.node for p in inputs}):
        f[net.index(node) * net.dim + 1] -= TWIN_LOAD_KG * G
    try:
        eq = Equilibrium(compatibility(net.positions, net.bonds), k, net.clamped_dofs(),
                         check_modes=False)  # fmt: skip
        u = eq.solve(f)
    except ValueError:  # MechanismError is a ValueError: a damaged network, say
        return None
    return u.reshape(-1, net.dim).tolist()


def _health(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The boards' health as the record tells it: each board from the connect event (boots at
    connection), the faults and restarts it reported since ("board" events), and the link's
    recovered faults (retries, timeouts: "faults" events) summed."""
    boards: dict[str, dict[str, Any]] = {}
    link: dict[str, int] = {}

    def board(addr: Any) -> dict[str, Any]:
        return boards.setdefault(
            str(addr), {"board": str(addr), "boots": None, "faults": [], "restarts": 0}
        )

    for ev in events:
        d = ev["detail"] if isinstance(ev["detail"], dict) else {}
        if ev["kind"] == "connect":
            for addr, info in (d.get("boards") or {}).items():
                board(addr)["boots"] = (info or {}).get("boots")
        elif ev["kind"] == "board" and "board" in d:
            b = board(d["board"])
            if d.get("ev") == "fault":
                b["faults"].append({"kind": str(d.get("kind")), "bond": d.get("bond"),
                                    "axis": d.get("axis"), "step": ev["step"]})  # fmt: skip
            elif d.get("ev") in ("boot", "reset"):
                b["restarts"] += 1
        elif ev["kind"] == "faults":
            for key, n in d.items():
                if isinstance(n, int):
                    link[key] = link.get(key, 0) + n
    def order(b: dict[str, Any]) -> tuple:  # boards named by node number sort by number
        name = b["board"]
        return (0, int(name), "") if name.isdigit() else (1, 0, name)

    return {"boards": sorted(boards.values(), key=order), "link": link}


def _gradient_check(grads: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not grads:
        return None
    step = max(g["step"] for g in grads)
    rows = [g for g in grads if g["step"] == step]
    a = np.array([g["insitu"] for g in rows])
    e = np.array([g["exact"] for g in rows])
    na, ne = float(np.linalg.norm(a)), float(np.linalg.norm(e))
    return {
        "step": int(step),
        "epoch": int(rows[0]["epoch"]),
        "insitu": a.tolist(),
        "exact": e.tolist(),
        "cosine": _finite(float(a @ e / (na * ne))) if na and ne else None,
        "relative_error": _finite(float(np.linalg.norm(a - e) / ne)) if ne else None,
        "checks": len({g["step"] for g in grads}),
    }


def run_document(store: Any, run: int) -> dict[str, Any]:
    """Everything the page draws for one run (see the module docstring)."""
    row = store.run(run)
    snaps = store.snapshots(run)
    k0 = None
    snapshot = None
    if snaps:
        s = snaps[-1]
        k0 = np.asarray(s["k"], dtype=float)
        snapshot = {"step": s["step"], "epoch": s["epoch"], "k": k0.tolist()}
    network, (net, inputs) = _network(row)
    k = k0 if k0 is not None else np.asarray(net.k_init, dtype=float)
    steps = store.steps(run)
    stride = max(1, -(-len(steps) // MAX_STEP_POINTS))
    epochs = store.epochs(run)
    train_cfg = row["config"].get("train", {}) if isinstance(row["config"], dict) else {}
    events = store.events(run)  # read once: the page polls every second
    return {
        "run": {
            "id": row["id"],
            "created": row["created"],
            "status": row["status"],
            "method": row["method"],
            "task": row["task"],
            "seed": row["seed"],
            "profile": row["profile"],
            "network": row["network_name"],
            "firmware": row["firmware_version"],
            "epochs_planned": train_cfg.get("epochs"),
        },
        "network": network,
        "snapshot": snapshot,
        "k": k.tolist(),
        "displacement": _twin_displacement(net, inputs, k),
        "twin_load_n": TWIN_LOAD_KG * G,
        "epochs": [{key: _finite(e[key]) for key in (
            "epoch", "train_loss", "test_loss", "train_accuracy", "test_accuracy", "measurements"
        )} for e in epochs],  # fmt: skip
        "steps": [[s["step"], _finite(s["loss"])] for s in steps[::stride]],
        "last_step": steps[-1]["step"] if steps else 0,
        "measurements": steps[-1]["measurements"] if steps else 0,
        "reference": PAPER_REFERENCE.get(str(row["task"]).split(":")[0]),
        "gradient": _gradient_check(store.gradients(run)),
        "health": _health(events),
        "events": [{"step": ev["step"], "kind": ev["kind"]} for ev in events[-20:]],
    }


__all__ = ["PAPER_REFERENCE", "run_document", "runs_document"]
