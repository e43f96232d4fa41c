"""The one sign convention of insitu (DESIGN.md section 2; docs/physics.md).

Owned here, in firmware, so that the node's learning rule and the host's physics core run the
same expressions: every function works on floats (MicroPython) and on numpy arrays (host).

- elongation e_b = n_b . (u_j - u_i), positive when the bond is stretched;
- the adjoint ("loss injection") force at the outputs is f_adj = -dL/du;
- with that choice the exact gradient is dL/dk_b = +e_b * e_adj_b and descent is
  k <- k - lr * dL/dk.
"""


def adjoint_force(dL_du):
    """Force the host injects at the outputs for the adjoint phase."""
    return -dL_du


def adjoint_gradient(e, e_adj):
    """Exact dL/dk of a bond from its forward and adjoint elongations."""
    return e * e_adj


def incremental_adjoint_gradient(e, de, eps):
    """Nonlinear regime: forward stretch times incremental elongation under eps * f_adj.

    The adjoint force is scaled by eps so the state stays on the linearised branch; dividing
    de by eps recovers the tangent-adjoint elongation (exact as eps -> 0).
    """
    return e * de / eps


def contrastive_gradient(e_free, e_clamped, eta):
    """Coupled learning: (E_clamped - E_free)/(eta*k) per bond, i.e. 1/2 (e_C^2 - e_F^2)/eta.

    With outputs nudged toward the target by eta this descends the loss as eta -> 0.
    """
    return 0.5 * (e_clamped * e_clamped - e_free * e_free) / eta


def nudged_target(u_free, u_target, eta):
    """Where coupled learning clamps the outputs: u_F + eta (u_target - u_F)."""
    return u_free + eta * (u_target - u_free)


def descent(k, grad, lr):
    """One gradient-descent step on the stiffness (bounds are applied by the caller)."""
    return k - lr * grad
