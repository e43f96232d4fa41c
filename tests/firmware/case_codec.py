from insitu_node.protocol import codec


def _raises(fn, *a):
    try:
        fn(*a)
    except codec.FrameError as e:
        return e
    raise AssertionError("no FrameError")


def test_round_trip():
    line = codec.encode(42, "n7", "measure", {"phase": "forward", "tag": 3, "scale": 0.25})
    f = codec.decode(line)
    assert (f.seq, f.addr, f.op) == (42, "n7", "measure")
    assert f.args == {"phase": "forward", "tag": 3, "scale": 0.25}


def test_known_frame_text():
    # pins the wire format: any change here is a protocol version change
    line = codec.encode(1, "*", "ping", {})
    assert line == "@1 1 * ping {{}} *{:08x}".format(codec.crc32(b"@1 1 * ping {}")), line


def test_bytes_and_crlf_and_noise():
    line = codec.encode(7, "n1", "state")
    assert codec.decode((">>> " + line + "\r\n").encode()).op == "state"


def test_not_frames_skipped():
    for junk in ("", "MicroPython v1.29 on 2026-01-01", "Traceback (most recent call last):",
                 ">>> ", "raw REPL; CTRL-B to exit"):
        assert isinstance(_raises(codec.decode, junk), codec.NotFrame)
        assert codec.parse(junk) is None


def test_corruption_rejected():
    line = codec.encode(5, "n2", "update", {"rule": "adjoint", "lr": 0.5})
    for i in range(len(line)):
        c = line[i]
        bad = line[:i] + ("x" if c != "x" else "y") + line[i + 1 :]
        assert codec.parse(bad) is None, bad
    for cut in range(len(line)):
        assert codec.parse(line[:cut]) is None


def test_uppercase_crc_is_corruption():
    line = codec.encode(9, "n1", "ping")
    up = line[:-8] + line[-8:].upper()
    if up != line:
        assert codec.parse(up) is None


def test_version_and_seq_spelling():
    line = codec.encode(3, "n1", "ping")
    body = "@2" + line[2 : line.rindex(" *")]
    v2 = f"{body} *{codec.crc32(body.encode()):08x}"
    e = _raises(codec.decode, v2)
    assert not isinstance(e, codec.NotFrame)
    body = "@1 03 n1 ping {}"
    assert codec.parse(f"{body} *{codec.crc32(body.encode()):08x}") is None


def test_args_must_be_object():
    body = "@1 3 n1 ping [1]"
    assert codec.parse(f"{body} *{codec.crc32(body.encode()):08x}") is None


def test_encode_rejects_bad_inputs():
    _raises(codec.encode, -1, "n1", "ping", {})
    _raises(codec.encode, 1, "n 1", "ping", {})
    _raises(codec.encode, 1, "n1", "PING!", {})
    try:  # CPython's json escapes it; MicroPython's writes it raw, which encode refuses
        line = codec.encode(1, "n1", "ping", {"s": "\u00e9"})
    except codec.FrameError:
        return
    assert codec.decode(line).args == {"s": "\u00e9"}


def test_replies():
    f = codec.decode(codec.reply_err(4, "n3", "lr", "out of range"))
    assert f.op == "err" and f.args == {"field": "lr", "reason": "out of range"}
    assert codec.decode(codec.reply_ok(4, "n3", {"a": 1})).op == "ok"
    assert codec.decode(codec.event("n3", {"ev": "boot"})).seq == 0


def test_addressed_reads_only_the_address_field():
    ping = codec.encode(12, "n7", "ping")
    for line, want in (
        (ping, True),
        (codec.encode(12, "*", "ping"), True),
        (codec.encode(12, "n", "ping"), False),
        (codec.encode(12, "n77", "ping"), False),
        (codec.encode(12, "x7", "ping"), False),
        (">>> " + ping + "\r\n", True),  # noise and terminators as decode() allows
        ("@1 12 n7 ping {not json *00000000", True),  # decode() decides: FrameError
        ("@1 12 n8 ping {not json *00000000", False),  # dropped undecoded
        ("@1 12 ** ping {} *00000000", False),
        ("@2 12 n7 ping {} *00000000", False),
        ("@1 12 n7", False),
        ("@1 12", False),
        ("@1 ", False),
        ("", False),
        ("MicroPython v1.29", False),
    ):
        assert codec.addressed(line, "n7") is want, line
        assert codec.addressed(line.encode(), "n7") is want, line
        assert codec.addressed(bytearray(line.encode()), "n7") is want, line


def test_addressed_never_drops_a_frame_decode_accepts():
    for addr in ("n7", "*", "n77", "n", "7n"):
        for seq in (0, 1, 999999999):
            line = codec.encode(seq, addr, "measure", {"phase": "forward", "s": "n7 * x"})
            assert codec.addressed(line, "n7") is (addr in ("n7", "*")), line
            f = codec.decode(line)  # and the frame decodes to the same address
            assert (f.addr in ("n7", "*")) is (addr in ("n7", "*"))


def test_addressed_does_not_allocate():
    try:
        import micropython
    except ImportError:
        return  # CPython: nothing to measure
    s = codec.encode(12, "n8", "ping")
    b = codec.encode(12, "n18", "ping").encode()
    micropython.heap_lock()
    try:  # str lines (the emulator's); bytes lines whose address has another length
        r1 = codec.addressed(s, "n7")
        r2 = codec.addressed(s, "n8")
        r3 = codec.addressed(b, "n7")
    finally:
        micropython.heap_unlock()
    assert (r1, r2, r3) == (False, True, False)
