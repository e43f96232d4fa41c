"""The ``check`` op (docs/protocol.md): the response check of one bond's stiffness element.
The node imports this module when a check is asked for, not at boot: its code stays off a
64 KB board's heap while the board boots (the heap probe's limit is the boot's peak)."""

from .health import (
    ELEM,
    LOADED_SNR,
    NAMES,
    NO_RESPONSE,
    RESPONDED,
    SENSOR,
    UNLOADED,
    VERDICTS,
)
from .protocol import codec
from .protocol.validate import ArgError


def begin(node, f, a):
    """Measure, command the probe stiffness, measure again, put the element back, judge. The
    host holds a steady load meanwhile and checks one bond at a time (another bond's change
    moves this one)."""
    if node.busy:
        raise ArgError("slot", "busy: measurement pending")
    s = a["slot"]
    if s >= node.n:
        raise ArgError("slot", "no such bond slot")
    if node.health.code[s]:
        raise ArgError("slot", "bond has a fault: " + NAMES[node.health.code[s]])
    if node._spsa is not None:
        raise ArgError("slot", "SPSA perturbation active (perturb sign 0 first)")
    k0, lo, hi = node.kb[s], node.k_min[s], node.k_max[s]
    kp = a["k"]
    if kp is None:
        kp = hi if k0 - lo < hi - k0 else lo
    elif not lo <= kp <= hi:
        raise ArgError("k", f"outside [{lo:g}, {hi:g}]")
    if kp == k0:
        raise ArgError("k", "no other stiffness to probe with")
    node._chk = [s, kp, 0, 0.0, 0.0]
    node._begin(f, a)
    return None


def checked(node, seq, chk, a):
    """The reply line of a check whose second measurement is done."""
    s, kp, e0 = chk[0], chk[1], chk[3]
    e1, spread1 = node._elongation(s)
    noise = 0.5 * (chk[4] + spread1)  # half ranges: a bound on each mean's error
    ch = node.ch
    code = node.health.judge(s, ch.cnt[s], ch.mean(s), ch.hi[s] - ch.lo[s])
    if code:  # a saturated or noisy gauge says nothing about the element
        node._fault(s, code)
        v = SENSOR
    else:
        v = response(e0, e1, kp - node.kb[s], noise, a["rel"], a["e_min"])
    p = {"slot": s, "k": node.kb[s], "kp": kp, "e0": e0, "e1": e1, "noise": noise,
         "verdict": VERDICTS[v]}  # fmt: skip
    if v == NO_RESPONSE:
        node.health.code[s] = ELEM
        node._fault(s, ELEM)
    return codec.reply_ok(seq, node.id, p)


def response(e0, e1, dk, noise, rel, e_min):
    """Verdict on a stiffness element from its bond's elongation before (e0) and after (e1) a
    commanded change dk of its stiffness under the same load (metres, N/m).

    noise: the measurements' uncertainty (m); rel: the smallest relative change of |e| that
    counts as a response; e_min: the smallest |e| worth judging. A working element changes |e|
    against dk (by k/k' for a bond that carries a fixed force, less where the rest of the
    network shares the load); a stuck one changes it by noise only.
    """
    a0 = abs(e0)
    a1 = abs(e1)
    big = a0 if a0 > a1 else a1
    if big < e_min or big < LOADED_SNR * noise:
        return UNLOADED
    moved = a0 - a1 if dk > 0 else a1 - a0  # > 0 when the bond answered the way physics says
    if moved > noise and moved > rel * a0:
        return RESPONDED
    return NO_RESPONSE
