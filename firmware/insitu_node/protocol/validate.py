"""Type and range checks of request arguments against messages.SCHEMA.

Pure logic; raises ArgError naming the field so the node can answer err without touching
its state.
"""

from .messages import BOOL, ENUM, FLOAT, FLOATS, INT, REQUIRED, SCHEMA


class ArgError(ValueError):
    """Raised as ArgError(field, reason); read them with .args (MicroPython exceptions take no
    new attributes)."""


def finite(x):
    # NaN != NaN; inf - inf is NaN. No math module needed.
    return x == x and x - x == 0


def _number(name, v):
    t = type(v)
    if t is bool or (t is not int and t is not float):
        raise ArgError(name, "not a number")
    v = float(v)
    if not finite(v):
        raise ArgError(name, "not finite")
    return v


def check(name, spec, v):
    kind, lo, hi = spec[0], spec[1], spec[2]
    if kind == INT:
        if type(v) is not int:
            raise ArgError(name, "not an integer")
        if not lo <= v <= hi:
            raise ArgError(name, f"out of range [{lo}, {hi}]")
        return v
    if kind == FLOAT:
        v = _number(name, v)
        if not lo <= v <= hi:
            raise ArgError(name, f"out of range [{lo:g}, {hi:g}]")
        return v
    if kind == BOOL:
        if type(v) is not bool:
            raise ArgError(name, "not a boolean")
        return v
    if kind == ENUM:
        if type(v) is not str or v not in lo:
            raise ArgError(name, "not one of " + "|".join(lo))
        return v
    if kind == FLOATS:
        if type(v) is not list:
            raise ArgError(name, "not a list")
        if not lo <= len(v) <= hi:
            raise ArgError(name, f"length out of range [{lo}, {hi}]")
        out = []
        for i in range(len(v)):
            out.append(_number(f"{name}[{i}]", v[i]))
        return out
    raise ArgError(name, "bad schema")


def validate(op, args):
    """Checked copy of args with defaults filled in. Raises ArgError(field, reason)."""
    schema = SCHEMA.get(op)
    if schema is None:
        raise ArgError("op", "unknown op")
    for name in args:
        if name not in schema:
            raise ArgError(name, "unknown field")
    out = {}
    for name in schema:
        spec = schema[name]
        if name in args:
            out[name] = check(name, spec, args[name])
        elif spec[3] == REQUIRED:
            raise ArgError(name, "required")
        else:
            out[name] = spec[3]
    return out
