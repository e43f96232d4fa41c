from insitu_node.protocol.validate import ArgError, validate


def _err(op, args):
    try:
        validate(op, args)
    except ArgError as e:
        return e.args
    raise AssertionError(f"accepted {op} {args}")


def test_defaults_filled():
    a = validate("measure", {"phase": "adjoint", "tag": 2, "scale": 3})
    assert a["n"] == 1 and a["settle_ms"] == 0 and a["scale"] == 3.0 and a["v"] is False
    assert type(a["scale"]) is float


def test_unknown_op_and_field():
    assert _err("explode", {}) == ("op", "unknown op")
    assert _err("ping", {"x": 1}) == ("x", "unknown field")


def test_required():
    assert _err("measure", {})[0] == "phase"
    assert _err("update", {"rule": "adjoint"})[0] == "lr"


def test_types():
    assert _err("measure", {"phase": "forward", "tag": 1.5})[0] == "tag"
    assert _err("measure", {"phase": "forward", "tag": True})[0] == "tag"
    assert _err("measure", {"phase": "forward", "v": 1})[0] == "v"
    assert _err("update", {"rule": "adjoint", "lr": "1"})[0] == "lr"
    assert _err("update", {"rule": "adjoint", "lr": True})[0] == "lr"
    assert _err("measure", {"phase": 3})[0] == "phase"
    assert _err("set", {"k": [1.0, "x"]})[0] == "k[1]"
    assert _err("set", {"k": 1.0})[0] == "k"


def test_ranges():
    assert _err("measure", {"phase": "forward", "n": 65})[0] == "n"
    assert _err("measure", {"phase": "forward", "n": 0})[0] == "n"
    assert _err("update", {"rule": "adjoint", "lr": 0.0})[0] == "lr"
    assert _err("update", {"rule": "adjoint", "lr": 1.0, "b1": 1.0})[0] == "b1"
    assert _err("measure", {"phase": "sideways"})[0] == "phase"
    assert _err("perturb", {"seed": 1, "c": 1.0, "sign": 2})[0] == "sign"


def test_non_finite():
    inf = float("inf")
    assert _err("update", {"rule": "adjoint", "lr": inf})[0] == "lr"
    assert _err("measure", {"phase": "adjoint", "scale": inf - inf})[0] == "scale"
