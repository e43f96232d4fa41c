"""The voice-coil virtual spring (hal/coil.py): exact rounding over the whole HX711 range, the
flexure counted once, no allocation in control(). Runs under CPython and MicroPython."""

from insitu_node.hal.coil import VirtualSpring

M_PER_COUNT = 2.0**-33  # the kit's strain chain (hardware/docs/node.md)
CMD_PER_N = 65535 * 8.0 / 5.0  # nominal coil: 8 ohm, 1 N/A, 5 V full duty


def _k_loop(vs):
    return -vs._m / (1 << vs._s) / (M_PER_COUNT * CMD_PER_N)


def _want(vs, d):
    # exact round-half-up of -G*d with the realised gain, in integer arithmetic
    return (vs._m * d + (1 << (vs._s - 1))) >> vs._s


def test_flexure_counted_once_and_k_rounded_not_truncated():
    got = []
    vs = VirtualSpring(CMD_PER_N, 65535, got.append, flex_k=20.0)
    vs.set_k(137.5, M_PER_COUNT, 0)
    k_loop = _k_loop(vs)
    assert abs(k_loop - 117.5) < 117.5 * 2.0**-15, k_loop  # was 136.25 (+20 twice, truncated)
    vs.set_k(171.875, M_PER_COUNT, 0)
    assert abs(_k_loop(vs) - 151.875) < 151.875 * 2.0**-15
    vs.set_k(10.0, M_PER_COUNT, 0)  # below k_s: the loop cancels part of the flexure
    assert _k_loop(vs) < 0


def test_no_clip_inside_the_gauge_range():
    got = []
    vs = VirtualSpring(CMD_PER_N, 65535, got.append, flex_k=20.0)
    vs.set_k(171.875, M_PER_COUNT, 0)
    for e_mm in (0.122, 0.2, 0.5, 0.8, 0.977):  # the old loop held 0.0166 N beyond 0.122 mm
        d = int(e_mm * 1e-3 / M_PER_COUNT)
        vs.control(d)
        want = -151.875 * d * M_PER_COUNT * CMD_PER_N
        assert abs(got[-1] - want) <= 0.5 + 1e-4 * abs(want), (e_mm, got[-1], want)
        vs.control(-d)
        assert abs(got[-1] + want) <= 0.5 + 1e-4 * abs(want)


def test_command_is_the_exact_rounding_for_every_split():
    got = []
    for k, gain, cpn, off in ((137.5, M_PER_COUNT, CMD_PER_N, 12345), (103.0, 1e-9, 1000.0, -7),
                              (150.0, 1e-6, 1000.0, 3), (-5.0, M_PER_COUNT, CMD_PER_N, 0)):
        vs = VirtualSpring(cpn, 1 << 20, got.append, flex_k=0.0)
        vs.set_k(k, gain, off)
        x = 1
        for i in range(300):  # a spread of counts, both signs, up to 2**25
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            d = (x & 0x1FFFFFF) - (1 << 24) if i % 3 else (x & 4095) - 2048
            vs.control(d + off)
            want = _want(vs, d)
            mx = 1 << 20
            want = mx if want > mx else (-mx if want < -mx else want)
            assert got[-1] == want, (k, d, got[-1], want)


def test_command_clips_at_max_cmd_only():
    got = []
    vs = VirtualSpring(1000.0, 500, got.append)
    vs.set_k(150.0, 1e-6, 0)  # 0.15 command per count
    vs.control(3000)
    assert got[-1] == -450
    vs.control(10**9)  # beyond any count: held at full duty, not wrapped
    assert got[-1] == -500
    vs.control(-(10**9))
    assert got[-1] == 500


def test_gain_beyond_representation_is_held_at_its_limit():
    vs = VirtualSpring(1e9, 65535, lambda c: None)
    assert vs.set_k(150.0, 1.0, 0) == -32767 and vs._s == 12  # held at 8 commands per count


def test_control_does_not_allocate():
    try:
        import micropython
    except ImportError:
        return  # CPython: nothing to measure
    got = [0]

    def sink(c):
        got[0] = c

    vs = VirtualSpring(CMD_PER_N, 65535, sink, flex_k=20.0)
    vs.set_k(137.5, M_PER_COUNT, 1000)
    raws = (8388607, -8388608, 0, 123456, -777)
    micropython.heap_lock()
    try:
        for r in raws:
            vs.control(r)
    finally:
        micropython.heap_unlock()
    assert got[0] != 0
