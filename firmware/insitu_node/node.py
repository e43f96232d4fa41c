"""The node core: synchronous and I/O-free. The asyncio app (app/) and the emulator both drive it.

    node = Node(cfg, hal, cfg_hash, boots)
    replies = node.handle_line(line)   # immediate reply lines (possibly none)
    if node.tick(now_ms):              # one control step; never allocates
        replies += node.service()      # deferred replies (finished measurements)

`now_ms` is a ticks value (time.ticks_ms() on a board, a virtual clock in the emulator);
only ticks_diff/ticks_add are applied to it.
"""

from array import array

from . import VERSION, persist
from .compat import const, ticks_add, ticks_diff
from .health import ELEM as FAULT_ELEM
from .health import NAMES as FAULT_NAMES
from .health import OK as FAULT_OK
from .health import Health
from .learning import spsa
from .learning.bounds import clip
from .learning.optim import Optimiser
from .learning.rules import KIND_NAMES, PHASE_KIND, RULE_KIND, Accumulator
from .protocol import codec
from .protocol.messages import measure_deadline_ms
from .protocol.validate import ArgError, validate
from .sampling import Channels

IDLE = const(0)
SETTLE = const(1)
SAMPLING = const(2)
DONE = const(3)
_CALM_N = const(64)  # samples a settle-until-still window sums at most (small-int sums)
_CALM_MS = const(200)  # settle until still: window length (li-mao's tau; 16 samples at 80 SPS)
CACHE = const(4)  # replies kept for retried sequence numbers
STALE_MS = const(1000)  # a sensor silent this long is reported stale

_STORE_PHASES = ("forward", "free")
# ops that would move k or e: refused while an element check runs
_NOT_IN_CHECK = ("set", "perturb", "update", "configure", "save", "cal")


def _zeros(z):
    """A float array as long as the zero bytes z hold doubles (one z for many arrays: the
    probe's peak counts every temporary of the node's construction)."""
    return array("d", z)


def _interp(pts, x, a, b):
    """Piecewise-linear map x -> y through the points p[a] -> p[b] of pts (p[a] monotone),
    extended linearly beyond both ends."""
    i = 1
    d = pts[-1][a] - pts[0][a]
    while i < len(pts) - 1 and (x - pts[i][a]) * d > 0:
        i += 1
    p, q = pts[i - 1], pts[i]
    return p[b] + (q[b] - p[b]) * (x - p[a]) / (q[a] - p[a])


class Node:
    def __init__(self, cfg, hal, cfg_hash="00000000", boots=0, cfg_error=None):
        self.cfg = cfg
        self.hal = hal
        self.id = cfg["node"]
        self.cfg_hash = cfg_hash
        self.cfg_error = cfg_error
        self.boots = boots
        self.period_ms = cfg["period_ms"]
        self.timeout_ms = cfg["timeout_ms"]
        bonds = cfg["bonds"]
        n = self.n = len(bonds)
        nd = self.nd = len(cfg["disp"])
        self.bond_ids = [b["bond"] for b in bonds]
        z = bytes(8 * n)
        self.k = _zeros(z)  # stiffness currently commanded
        self.kb = _zeros(z)  # base stiffness (differs from k only while SPSA-perturbed)
        self.k_min = _zeros(z)
        self.k_max = _zeros(z)
        self.k_init = _zeros(z)
        self.gain = _zeros(bytes(8 * (n + nd)))  # m per count: strain slots, then disp axes
        # float counts only from an ideal emulated sensor; boards keep the integer hot path
        fl = False
        for ds in (bonds, cfg["disp"]):  # no concatenated list: the boot's peak counts it
            for d in ds:
                fl = fl or d["sensor"].get("float", False)
        tc = "d" if fl else "i"
        self._float = fl
        self.off = array(tc, bytes((8 if fl else 4) * (n + nd)))
        for b in range(n):
            bd = bonds[b]
            self.k_min[b], self.k_max[b], self.k_init[b] = bd["k_min"], bd["k_max"], bd["k_init"]
            self.gain[b], self.off[b] = bd["cal"]["gain"], bd["cal"]["offset"]
        for a in range(nd):
            c = cfg["disp"][a]["cal"]
            self.gain[n + a], self.off[n + a] = c["gain"], c["offset"]
        # node-held calibration (op cal): [the host's id or None, per bond the (kr, kc) points
        # of its realised-k -> nominal command map or None, per force axis [scale, offset] or
        # None]. One attribute: past 46 the instance's attribute table is reallocated larger
        self.cal = [None, [None] * n, [None] * len(hal.force)]
        self.e = _zeros(z)  # last measured elongations (m)
        self.u = _zeros(bytes(8 * nd))  # last measured displacements (m)
        self._g = _zeros(z)  # scratch: batch-mean gradient
        self.acc = Accumulator(n, cfg["tags"])
        self.opt = Optimiser(n)
        self.ch = Channels(n + nd, tc)
        self.health = Health(n + nd)  # latched sensor faults (health.py)
        self._sensors = hal.strain + hal.disp
        self._elem = hal.element
        self.now = 0
        self._last_host = 0
        self.safe = False
        self._mstate = IDLE
        self._mn = 0
        self._mt0 = 0
        self._mdead = 0
        self._mwait = 0  # sampling timeout (ms) of the measurement in hand
        self._chk = None  # element check in hand: [slot, probe k, stage, e0, spread0]
        self._mreq = None  # (seq, crc, validated args) of the pending measurement
        # settle until still: the last window's mean per strain channel, then a bit per
        # channel that has no last window to compare with (made on first use)
        self._cref = None
        self._timed_out = False
        self.pending = False
        self._out = []
        self._cache = []  # [seq, crc, reply line or None while deferred]
        self._spsa = None  # (seed, c) of the active perturbation
        self.persist_status = "new"
        self.ckpt = None  # checkpoint the state in RAM was saved as / loaded from (step=)
        self.reset_cause = None  # why the board started (app/setup.py), for identify
        self._restore()
        self._apply_k()

    # ---- persistence -------------------------------------------------------------------
    def _record(self):
        return {
            "v": 2,
            "cal": self.cal,
            "bonds": self._bonds(),
            "k": list(self.kb),
            "gain": list(self.gain),
            "off": list(self.off),
            "opt": {"name": self.opt.name, "t": self.opt.t, "m": list(self.opt.m),
                    "v": list(self.opt.v)},
            "step": self.ckpt,
        }

    def _bonds(self):
        return [list(b) for b in self.bond_ids]  # as JSON has them (identify, the record)

    def _restore(self):
        self.kb[:] = self.k_init  # array to array: no float object per bond (boot's peak)
        try:
            rec, status = persist.load(self.hal.storage)
        except Exception:
            rec, status = None, "defaults"
        if rec is not None and not self._load_record(rec):
            status = "mismatch"  # saved for another bond set: defaults from config
        elif rec is not None:
            self.ckpt = rec.get("step")
        self.persist_status = status

    def _load_record(self, rec):
        n, nd = self.n, self.nd
        try:
            if rec["bonds"] != self._bonds():  # gain/off lengths: nd
                return False
            k, gain, off, o = rec["k"], rec["gain"], rec["off"], rec["opt"]
            if len(k) != n or len(gain) != n + nd or len(off) != n + nd:
                return False
            if len(o["m"]) != n or len(o["v"]) != n or o["name"] not in ("sgd", "momentum", "adam"):
                return False
            for b in range(n):  # check everything before changing anything
                if not self.k_min[b] <= k[b] <= self.k_max[b]:
                    return False
            for i in range(n + nd):
                if not gain[i] or (type(off[i]) is not int and not self._float):
                    return False
            c = rec.get("cal")  # v1 records have none: the calibration in RAM stays
            if c is not None and (len(c[1]) != n or len(c[2]) != len(self.cal[2])):
                return False
        except (KeyError, TypeError, ValueError):
            return False
        for b in range(n):
            self.kb[b] = k[b]
            self.opt.m[b] = o["m"][b]
            self.opt.v[b] = o["v"][b]
        for i in range(n + nd):
            self.gain[i] = gain[i]
            self.off[i] = off[i]
        self.opt.name = o["name"]
        self.opt.t = int(o["t"])
        if c is not None:
            self.cal = c
        return True

    # ---- actuation ---------------------------------------------------------------------
    def _apply_k(self):
        self.k[:] = self.kb
        for b in range(self.n):
            self._set_element(b)

    def _cmd(self, b):
        """The nominal stiffness to command so that bond slot b realises k[b]."""
        k = self.k[b]
        m = self.cal[1][b]
        if m:  # calibrated: through the measured map
            k = clip(_interp(m, k, 0, 1), self.k_min[b], self.k_max[b])
        return k

    def _set_element(self, b):
        self._elem[b].set_k(self._cmd(b), self.gain[b], self.off[b])

    def _realised(self):
        """Per bond, the k its element realises for the command it was sent (a servo's
        whole-microsecond pulse read back through its table, then the calibrated map)."""
        out = []
        for b in range(self.n):
            c, el, m = self._cmd(b), self._elem[b], self.cal[1][b]
            t = getattr(el, "_table", None)
            if t:
                c = _interp(t, el.cmd, 1, 0)
            out.append(_interp(m, c, 1, 0) if m else c)
        return out

    def enter_safe(self):
        """Host silent: forces off, clamps released (if configured), stiffness held."""
        for f in self.hal.force:
            f.off()
        if self.cfg["safe_release"]:
            for c in self.hal.clamp:
                c.release()
        self.safe = True

    # ---- control step (hot path: no allocation) -------------------------------------------
    def tick(self, now):
        self.now = now
        st = self._mstate
        calm = self._mreq[2].get("calm", 0) if st == SETTLE else 0
        done = self.ch.poll(self._sensors, self._mn if st == SAMPLING else calm and _CALM_N)
        last = self.ch.last
        elem = self._elem
        for b in range(self.n):
            elem[b].control(last[b])
        if st == SETTLE:
            go = ticks_diff(now, self._mt0) >= 0
            if calm and ticks_diff(now, self._mdead) >= 0:  # a calm window ended
                go = self._still(calm) or go
            if go:
                self._mdead = ticks_add(now, self._mwait)
                self.ch.start()
                code, cnt, mn = self.health.code, self.ch.cnt, self._mn
                for b in range(self.n):  # a faulty strain channel is not waited for
                    if 0 < code[b] < FAULT_ELEM:
                        cnt[b] = mn
                self._mstate = SAMPLING
        elif st == SAMPLING:
            if done:
                self._mstate = DONE
                self.pending = True
            elif ticks_diff(now, self._mdead) >= 0:
                self._timed_out = True
                self._mstate = DONE
                self.pending = True
        if self.timeout_ms and not self.safe:
            if ticks_diff(now, self._last_host) > self.timeout_ms:
                self.enter_safe()
        return self.pending

    def service(self):
        """Deferred work after tick() returned True; returns reply lines."""
        if self._mstate == DONE:
            self._finish_measure()
        self.pending = False
        out = self._out
        self._out = []
        return out

    @property
    def busy(self):
        """A measurement is in hand (the emulator ticks busy nodes every period)."""
        return self._mstate != IDLE

    def due_ms(self):
        """ms until a tick can change anything (None when idle): an emulator skips the settle
        delay in one jump instead of ticking through it."""
        st = self._mstate
        if st == IDLE:
            return None
        if st == SETTLE and not self._mreq[2].get("calm", 0):
            return max(0, ticks_diff(self._mt0, self.now))
        return 0  # sampling, or settling until still: every tick reads the sensors

    def step(self, now):
        """tick + service: what an emulator calls per virtual control period."""
        if self.tick(now):
            return self.service()
        return []

    # ---- command handling ---------------------------------------------------------------
    def handle_line(self, line):
        """Reply lines for one received line. Never raises; non-frames are ignored."""
        try:
            if not codec.addressed(line, self.id):
                return []  # another node's frame (or none): dropped before decoding
            f = codec.decode(line)
        except Exception:  # FrameError, and anything odd in a hostile line
            return []
        if f.op in codec.REPLY_OPS or (f.addr != codec.BROADCAST and f.addr != self.id):
            return []
        self._last_host = self.now
        self.safe = False
        for c in self._cache:
            if c[0] == f.seq and c[1] == f.crc:
                return [c[2]] if c[2] is not None else []  # retry: same reply, not re-applied
        try:
            args = validate(f.op, f.args)
            if self._chk is not None and f.op in _NOT_IN_CHECK:
                raise ArgError("op", "busy: element check running")
            payload = getattr(self, "_op_" + f.op)(f, args)
            if payload is None:  # deferred: reply when the measurement completes
                self._remember(f.seq, f.crc, None)
                return []
            line = codec.reply_ok(f.seq, self.id, payload)
        except ArgError as e:
            line = e.args
        except Exception as e:  # a bug must not take the node down; report it
            line = ("node", f"internal: {type(e).__name__}")
        if type(line) is tuple:
            try:
                line = codec.reply_err(f.seq, self.id, line[0], line[1])
            except Exception:  # a field name it cannot write back (MicroPython: not ASCII)
                line = codec.reply_err(f.seq, self.id, "args", "field name not ASCII")
        self._remember(f.seq, f.crc, line)
        return [line]

    def _remember(self, seq, crc, line):
        for c in self._cache:
            if c[0] == seq and c[1] == crc:
                c[2] = line
                return
        self._cache.append([seq, crc, line])
        if len(self._cache) > CACHE:
            self._cache.pop(0)

    # ---- ops (each validates everything before changing anything) -------------------------
    def _op_ping(self, f, a):
        return {"t": self.now, "busy": self._mstate != IDLE, "safe": self.safe, "boots": self.boots}

    def _op_identify(self, f, a):
        p = {
            "id": self.id,
            "uid": self.hal.uid,
            "fw": VERSION,
            "proto": codec.VERSION,
            "family": self.hal.family,
            "cfg": self.cfg_hash,
            "boots": self.boots,
            "persist": self.persist_status,
            "step": self.ckpt,
            "bonds": self._bonds(),
            "force": len(self.hal.force),
            "clamp": len(self.hal.clamp),
            "disp": self.nd,
            "cal": self.cal[0],
        }
        if self.reset_cause is not None:
            p["reset"] = self.reset_cause
        if self.cfg_error:
            p["cfg_err"] = self.cfg_error
        return p

    def _op_configure(self, f, a):
        slot = a["slot"]
        if (a["gain"] is not None or a["offset"] is not None) and slot is None:
            raise ArgError("slot", "required with gain/offset")
        if slot is not None and slot >= self.n + self.nd:
            raise ArgError("slot", "no such channel")
        if a["gain"] == 0.0:
            raise ArgError("gain", "zero")
        if a["tare"]:
            for b in range(self.n):
                if not self.ch.seen[b]:
                    raise ArgError("tare", f"no sample yet on slot {b}")
        if a["noise"] is not None:
            self.health.noise = a["noise"]
        if a["timeout_ms"] is not None:
            self.timeout_ms = a["timeout_ms"]
        if a["period_ms"] is not None:
            self.period_ms = a["period_ms"]
        if a["gain"] is not None:
            self.gain[slot] = a["gain"]
        if a["offset"] is not None:
            self.off[slot] = a["offset"]
        if a["tare"]:
            for b in range(self.n):
                self.off[b] = self.ch.last[b]
        if slot is not None and slot < self.n or a["tare"]:
            for b in range(self.n):  # a virtual spring's loop uses the calibration
                self._set_element(b)
        return {"timeout_ms": self.timeout_ms, "period_ms": self.period_ms}

    def _op_measure(self, f, a):
        if self._mstate != IDLE:
            raise ArgError("phase", "busy: measurement pending")
        ph = a["phase"]
        kind = PHASE_KIND.get(ph, 0)
        if kind:
            if self.acc.find(a["tag"]) < 0:
                raise ArgError("tag", "no forward measurement with this tag")
            if not self.acc.compatible(kind):
                raise ArgError("phase", f"accumulator holds {KIND_NAMES[self.acc.kind]} samples")
        if ph == "nudged" and a["eps"] is None:
            raise ArgError("eps", "required for nudged")
        if ph == "clamped" and a["eta"] is None:
            raise ArgError("eta", "required for clamped")
        self._begin(f, a)
        return None

    def _begin(self, f, a):
        timeout = a["timeout_ms"]
        if timeout is None:
            timeout = measure_deadline_ms(a["n"])
        self._mreq = (f.seq, f.crc, a)
        self._mn = a["n"]
        self._mwait = timeout
        self._settle(a["settle_ms"])

    def _settle(self, ms):
        self._mt0 = ticks_add(self.now, ms)
        self._mdead = ticks_add(self._mt0, self._mwait)
        self._timed_out = False
        self._mstate = SETTLE
        if self._mreq[2].get("calm", 0):  # settle until still: windows from now on
            if self._cref is None:  # once per node: a command, not the tick
                fl = not self.ch.rail  # an ideal sensor's float counts
                self._cref = array("d" if fl else "i", bytes((8 if fl else 4) * (self.n + 1)))
            self._cref[self.n] = (1 << self.n) - 1  # no window before the first: not still
            self._mdead = ticks_add(self.now, _CALM_MS)
            self.ch.start()

    def _still(self, calm):
        """Settle until still: a window ended. 1 when every live strain channel's mean is
        within ``calm`` counts of the window before; the next window starts. Integer means of
        at most _CALM_N 24-bit samples: small ints, no allocation in the tick."""
        ch, ref, code = self.ch, self._cref, self.health.code  # 4 names would build a tuple
        none, ok, empty = int(ref[self.n]), 1, 0
        for b in range(self.n):
            if 0 < code[b] < FAULT_ELEM:  # a faulty strain channel is not waited for
                continue
            c = ch.cnt[b]
            if not c:  # no word accepted in the window (a 10 SPS part, or the HX711 check
                # dropping a fast transient's jumps): cannot tell, so not still, and the next
                # window has nothing to compare with (two empty windows are not calm)
                ok = 0
                empty |= 1 << b
                continue
            m = ch.sums[b] // c if ch.rail else ch.sums[b] / c
            if none >> b & 1 or abs(m - ref[b]) > calm:
                ok = 0
            ref[b] = m
        ref[self.n] = empty
        ch.start()
        self._mdead = ticks_add(self.now, _CALM_MS)
        return ok

    def _finish_measure(self):
        seq, crc, a = self._mreq
        chk = self._chk
        if chk is not None and chk[2] == 0 and not self._timed_out:
            self._probe(chk, a)  # first half of a check: on to the probe stiffness
            return
        at = len(self._out)  # fault events go after the reply they were found in
        self._mstate = IDLE
        self._mreq = None
        self._chk = None
        if chk is not None:  # the element goes back to the bond's stiffness, whatever happened
            self.k[chk[0]] = self.kb[chk[0]]
            self._set_element(chk[0])
        if self._timed_out:
            miss = self.ch.missing(self._mn)
            for s in miss:  # latched: later measurements go on without a dead strain channel
                self._fault(s, self.health.judge(s, 0, 0, 0))
            line = codec.reply_err(seq, self.id, "sensor", f"timeout: channels {miss}")
        elif chk is not None:
            from . import checkop

            line = checkop.checked(self, seq, chk, a)
        else:
            line = self._measured(seq, a)
        self._remember(seq, crc, line)
        self._out.insert(at, line)

    def _fault(self, s, code):
        """Report a newly found sensor fault once, as an event after the reply."""
        if code == FAULT_OK:
            return
        p = {"ev": "fault", "kind": FAULT_NAMES[code], "ch": s}
        if s < self.n:
            p["bond"] = list(self.bond_ids[s])
        else:
            p["axis"] = s - self.n
        self._out.append(codec.event(self.id, p))

    def _measured(self, seq, a):
        n = self.n
        ch, hl = self.ch, self.health
        for i in range(n + self.nd):
            m = ch.mean(i)
            if self._float and m == self.off[i]:  # noiseless, unstrained (fixed ends): not stuck
                hl.same[i] = 0
            self._fault(i, hl.judge(i, ch.cnt[i], m, ch.hi[i] - ch.lo[i]))
            v = (m - self.off[i]) * self.gain[i]
            if i < n and 0 < hl.code[i] < FAULT_ELEM:
                v = 0.0  # a faulty gauge contributes nothing; its bond is frozen anyway
            if i < n:
                self.e[i] = v
            else:
                self.u[i - n] = v
        ph = a["phase"]
        p = {"phase": ph, "tag": a["tag"]}
        if ph in _STORE_PHASES:
            self.acc.store(a["tag"], self.e)
        else:
            slot = self.acc.find(a["tag"])
            kind = PHASE_KIND[ph]
            if slot < 0 or not self.acc.compatible(kind):  # reset while measuring
                return codec.reply_err(seq, self.id, "tag", "forward measurement gone")
            param = a["eps"] if ph == "nudged" else a["eta"]
            self.acc.add(kind, slot, self.e, a["scale"], param)
            p["count"] = self.acc.count
        if self.nd:
            p["u"] = list(self.u)
        if a["v"]:
            p["e"] = list(self.e)
        bad = [i for i in range(n + self.nd) if hl.code[i]]
        if bad:
            p["bad"] = bad
        return codec.reply_ok(seq, self.id, p)

    def _axis(self, devs, axis, what):
        if axis is None:
            raise ArgError("axis", "required")
        if axis >= len(devs):
            raise ArgError("axis", f"no {what} on axis {axis}")
        return devs[axis]

    def _op_force(self, f, a):
        if a["off"]:
            for d in self.hal.force:
                d.off()
            return {"off": True}
        dev = self._axis(self.hal.force, a["axis"], "force actuator")
        if a["f"] is None:
            raise ArgError("f", "required")
        F = a["f"]
        c = self.cal[2][a["axis"]]
        if c and F:  # calibrated: the command that makes F (0 stays off)
            F = (F - c[1]) / c[0]
        if abs(F) > dev.max_n:
            raise ArgError("f", f"beyond actuator range {dev.max_n:g} N")
        return {"cmd": dev.set(F)}

    def _op_clamp(self, f, a):
        axis = a["axis"]
        dev = self._axis(self.hal.clamp, axis, "clamp")
        if a["u"] is None:
            if axis >= self.nd or not self.ch.seen[self.n + axis]:
                raise ArgError("u", "required (no displacement reading on this axis)")
            target = self.ch.last[self.n + axis]
        else:
            cal = self.cfg["clamp"][axis]["cal"]
            target = a["u"] / cal["gain"] + cal["offset"]
            if not self._float:
                target = int(round(target))
        dev.hold(target)
        return {"target": target}

    def _op_release(self, f, a):
        if a["axis"] is None:
            for d in self.hal.clamp:
                d.release()
        else:
            self._axis(self.hal.clamp, a["axis"], "clamp").release()
        return {}

    def _op_update(self, f, a):
        rule = a["rule"]
        n = self.n
        if rule == "spsa":
            if self._spsa is None:
                raise ArgError("rule", "spsa needs a perturb first")
            if a["lp"] is None or a["lm"] is None:
                raise ArgError("lp" if a["lp"] is None else "lm", "required for spsa")
            seed, c = self._spsa
            for b in range(n):
                i, j = self.bond_ids[b]
                self._g[b] = spsa.gradient(a["lp"], a["lm"], c, spsa.sign(seed, i, j))
            count = 1
        else:
            kind = RULE_KIND[rule]
            count = self.acc.count
            if self._spsa is not None:
                raise ArgError("rule", "SPSA perturbation active (perturb sign 0 first)")
            if count == 0:
                raise ArgError("rule", "no samples accumulated")
            if self.acc.kind != kind:
                raise ArgError("rule", f"accumulator holds {KIND_NAMES[self.acc.kind]} samples")
            if a["batch"] is not None and a["batch"] != count:
                raise ArgError("batch", f"accumulated {count} samples")
            self.acc.mean(self._g)
        held = [b for b in range(n) if self.health.code[b]]  # faulty gauge: k, moments kept
        keep = [(b, self.kb[b], self.opt.m[b], self.opt.v[b]) for b in held]
        dk, frozen = self.opt.step(self.kb, self._g, self.k_min, self.k_max, a)
        for b, kb, m, v in keep:
            self.kb[b], self.opt.m[b], self.opt.v[b] = kb, m, v
        self.ckpt = None  # the state in RAM is no saved checkpoint any more
        self._spsa = None
        self.acc.reset()
        self.acc.forget_tags()  # forward states belong to the old stiffness
        self._apply_k()
        p = {"max_dk": dk, "frozen": frozen, "count": count, "boots": self.boots}
        if held:
            p["held"] = held
        return p

    def _op_set(self, f, a):
        ks = a["k"]
        slot = a["slot"]
        if slot is not None:
            if slot >= self.n:
                raise ArgError("slot", "no such bond slot")
            if len(ks) != 1:
                raise ArgError("k", "one value with slot")
            slots = [slot]
        else:
            if len(ks) != self.n:
                raise ArgError("k", f"need {self.n} values")
            slots = list(range(self.n))
        for i in range(len(slots)):
            b = slots[i]
            if not self.k_min[b] <= ks[i] <= self.k_max[b]:
                raise ArgError(f"k[{i}]", f"outside [{self.k_min[b]:g}, {self.k_max[b]:g}]")
        if self._spsa is not None:
            self._spsa = None
            self._apply_k()
        self.ckpt = None
        for i in range(len(slots)):
            self.kb[slots[i]] = ks[i]
            self.k[slots[i]] = ks[i]
            self._set_element(slots[i])
        self.acc.forget_tags()
        return {"k": list(self.k)}

    def _op_perturb(self, f, a):
        s, c, seed = a["sign"], a["c"], a["seed"]
        clipped = 0
        for b in range(self.n):
            if s == 0:
                k = self.kb[b]
            else:
                i, j = self.bond_ids[b]
                want = self.kb[b] + s * c * spsa.sign(seed, i, j)
                k = clip(want, self.k_min[b], self.k_max[b])
                clipped += k != want
            self.k[b] = k
            self._set_element(b)
        self._spsa = None if s == 0 else (seed, c)
        return {"clipped": clipped}

    def _op_check(self, f, a):
        from . import checkop  # the element check: loaded when asked for, not at boot

        return checkop.begin(self, f, a)

    def _elongation(self, s):
        """(mean elongation, spread) of bond slot s over the measurement just taken (m)."""
        ch, g = self.ch, self.gain[s]
        return (ch.mean(s) - self.off[s]) * g, (ch.hi[s] - ch.lo[s]) * abs(g)

    def _probe(self, chk, a):
        chk[3], chk[4] = self._elongation(chk[0])
        chk[2] = 1
        self.k[chk[0]] = chk[1]
        self._set_element(chk[0])
        self._settle(a["settle_ms"])

    def _health(self, s):
        ch = self.ch
        if not ch.seen[s]:
            return "none"
        if ch.stale[s] * self.period_ms > STALE_MS:
            return "stale"
        if ch.sat[s]:
            return "sat"
        return "ok"

    def _op_state(self, f, a):
        o = self.opt
        p = {
            "k": list(self.k),
            "kb": list(self.kb),
            "e": list(self.e),
            "u": list(self.u),
            "g": list(self.acc.g),
            "count": self.acc.count,
            "kind": KIND_NAMES[self.acc.kind],
            "opt": {"name": o.name, "t": o.t, "m": list(o.m), "v": list(o.v)},
            "raw": list(self.ch.last),
            "health": [self._health(s) for s in range(self.n + self.nd)],
            "faults": [FAULT_NAMES[c] for c in self.health.code],
            "busy": self._mstate != IDLE,
            "safe": self.safe,
            "kr": self._realised(),
        }
        only = a["only"]
        return p if only is None else {only: p[only]}

    def _op_save(self, f, a):
        step = a["step"]
        if step is None:  # no number: the state keeps the label of the checkpoint in use
            step = self.ckpt
        elif self.ckpt is not None and step != self.ckpt:  # e.g. rebooted before this save:
            raise ArgError("step", f"state is checkpoint {self.ckpt}")  # never relabel it
        rotate = step is None or step != self.ckpt  # a checkpoint saved again keeps the backup
        old = self.ckpt
        self.ckpt = step
        try:
            nbytes = persist.save(self.hal.storage, self._record(), rotate)
        except OSError as e:
            self.ckpt = old
            raise ArgError("storage", f"write failed: {e}") from None
        self.persist_status = "ok"
        return {"bytes": nbytes, "boots": self.boots}

    def _op_load(self, f, a):
        """Back to a saved checkpoint (the host rolls every board back after a reboot)."""
        if self._mstate != IDLE:
            raise ArgError("phase", "busy: measurement pending")
        try:
            rec = persist.load_step(self.hal.storage, a["step"])
        except Exception:
            rec = None
        if rec is None:
            raise ArgError("step", "no saved state with this step")
        if not self._load_record(rec):
            raise ArgError("step", "saved state does not fit this config")
        self.ckpt = a["step"]
        self._spsa = None
        self.acc.reset()
        self.acc.forget_tags()
        self._apply_k()
        for c in self.hal.clamp:  # lose what was in flight, as a reboot does
            c.release()
        for d in self.hal.force:
            d.off()
        return {"step": self.ckpt, "boots": self.boots}

    def _op_cal(self, f, a):
        from . import calop  # a one-off op: the module unloads itself after the request

        return calop.apply(self, a)

    def _op_reset(self, f, a):
        if self._mstate != IDLE:  # abort the measurement or check in hand: its request gets
            seq, chk = self._mreq[0], self._chk  # an err reply, the element its k back
            self._mstate, self._mreq, self._chk = IDLE, None, None
            if chk is not None:
                self.k[chk[0]] = self.kb[chk[0]]
                self._set_element(chk[0])
            self._out.append(codec.reply_err(seq, self.id, "phase", "aborted by reset"))
            self.pending = True
        if a["faults"]:
            self.health.clear()
        self.acc.reset()
        self.acc.forget_tags()
        if a["opt"] or a["k"]:
            self.ckpt = None
        if a["opt"]:
            self.opt.reset()
        if a["k"]:
            self._spsa = None
            self.kb[:] = self.k_init
            self._apply_k()
        return {"count": 0}


def emulated(raw_cfg, bus, storage=None, boots=0, uid=None):
    """A Node on the emulated HAL from a config dict (what the in-process emulator uses)."""
    from .config import from_dict
    from .hal import emu

    cfg, h = from_dict(raw_cfg)
    return Node(cfg, emu.build(cfg, bus, storage, uid), h, boots)
