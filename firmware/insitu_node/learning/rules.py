"""Per-bond gradient accumulation for the local rules (adjoint, incremental, coupled).

Forward (or free) elongations are stored per sample tag; a second measurement of the same
tag (adjoint, nudged or clamped) adds that sample's gradient estimate to the accumulator.
The formulas come from convention.py; this module only does the bookkeeping.
"""

from array import array

from ..compat import const
from .convention import adjoint_gradient, contrastive_gradient, incremental_adjoint_gradient

NONE = const(0)
ADJOINT = const(1)
INCREMENTAL = const(2)
COUPLED = const(3)

KIND_NAMES = ("none", "adjoint", "incremental", "coupled")
RULE_KIND = {"adjoint": ADJOINT, "incremental": INCREMENTAL, "coupled": COUPLED}
PHASE_KIND = {"adjoint": ADJOINT, "nudged": INCREMENTAL, "clamped": COUPLED}


class Accumulator:
    """Sum over a batch of scale * dL/dk estimates, one float per bond.

    Doubles: on the unix port they are real doubles (the 1e-9 cross-check needs them); on
    single-precision boards they simply hold single-precision values.
    """

    def __init__(self, n_bonds, n_tags):
        self.n = n_bonds
        self.n_tags = n_tags
        self.g = array("d", bytes(8 * n_bonds))
        self.fwd = array("d", bytes(8 * n_bonds * n_tags))
        self.tags = array("i", [-1] * n_tags)  # tag held by each forward slot
        self._next = 0  # forward slots are reused round-robin
        self.count = 0
        self.kind = NONE

    def reset(self):
        for b in range(self.n):
            self.g[b] = 0.0
        self.count = 0
        self.kind = NONE

    def forget_tags(self):
        for i in range(self.n_tags):
            self.tags[i] = -1

    def find(self, tag):
        for i in range(self.n_tags):
            if self.tags[i] == tag:
                return i
        return -1

    def store(self, tag, e):
        """Keep forward/free elongations e (per bond) under tag."""
        i = self.find(tag)
        if i < 0:
            i = self._next
            self._next = (i + 1) % self.n_tags
            self.tags[i] = tag
        base = i * self.n
        for b in range(self.n):
            self.fwd[base + b] = e[b]

    def forward(self, slot, b):
        return self.fwd[slot * self.n + b]

    def compatible(self, kind):
        return self.count == 0 or self.kind == kind

    def add(self, kind, slot, e2, scale, param):
        """Add one sample: e2 is the second measurement, param is eps (nudged) or eta."""
        base = slot * self.n
        g = self.g
        for b in range(self.n):
            e1 = self.fwd[base + b]
            if kind == ADJOINT:
                d = adjoint_gradient(e1, e2[b])
            elif kind == INCREMENTAL:
                d = incremental_adjoint_gradient(e1, e2[b] - e1, param)
            else:
                d = contrastive_gradient(e1, e2[b], param)
            g[b] += scale * d
        self.count += 1
        self.kind = kind

    def mean(self, out):
        """Batch-mean gradient into out (the gradient of a mean loss)."""
        c = self.count if self.count else 1
        for b in range(self.n):
            out[b] = self.g[b] / c
