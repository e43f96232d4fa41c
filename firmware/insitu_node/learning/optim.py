"""Per-bond optimisers: SGD, momentum, Adam. All state is per parameter, hence local.

The step goes through convention.descent so the sign lives in one place; the new stiffness
is projected onto [k_min, k_max] by bounds.clip.
"""

from array import array

from .bounds import clip
from .convention import descent

OPTIMISERS = ("sgd", "momentum", "adam")


class Optimiser:
    def __init__(self, n):
        self.n = n
        self.m = array("d", bytes(8 * n))  # momentum / Adam first moment
        self.v = array("d", bytes(8 * n))  # Adam second moment
        self.t = 0  # Adam step count (bias correction)
        self.name = "sgd"

    def reset(self):
        for b in range(self.n):
            self.m[b] = 0.0
            self.v[b] = 0.0
        self.t = 0

    def step(self, k, g, lo, hi, p):
        """Update k in place from gradient g. p: validated update args (lr, opt, mu, b1, b2, eps).

        Returns (largest |dk|, number of bonds held at a bound by the projection).
        Switching optimiser restarts its moments (they mean different things).
        """
        opt = p["opt"]
        if opt != self.name:
            self.reset()
            self.name = opt
        lr = p["lr"]
        if opt == "adam":
            self.t += 1
            b1, b2 = p["b1"], p["b2"]
            c1 = 1.0 - b1**self.t
            c2 = 1.0 - b2**self.t
        max_dk = 0.0
        frozen = 0
        for b in range(self.n):
            gb = g[b]
            if opt == "sgd":
                d = gb
            elif opt == "momentum":
                self.m[b] = p["mu"] * self.m[b] + gb
                d = self.m[b]
            else:
                self.m[b] = b1 * self.m[b] + (1.0 - b1) * gb
                self.v[b] = b2 * self.v[b] + (1.0 - b2) * gb * gb
                d = (self.m[b] / c1) / ((self.v[b] / c2) ** 0.5 + p["eps"])
            want = descent(k[b], d, lr)
            new = clip(want, lo[b], hi[b])
            if new != want:
                frozen += 1
            dk = new - k[b]
            if dk < 0:
                dk = -dk
            if dk > max_dk:
                max_dk = dk
            k[b] = new
        return max_dk, frozen
