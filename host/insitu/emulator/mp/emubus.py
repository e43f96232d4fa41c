# emubus: the emulated peripheral bus of an insitu MicroPython-process board.
#
# Runs ON THE BOARD (MicroPython unix port). The firmware's emulated HAL reaches the simulated
# world only through read(device, channel) and write(device, channel, value). Each call is one
# request/reply line on a unix-domain socket to the board's supervisor (host side), whose path
# is in the environment variable INSITU_EMUBUS. Wire format (ASCII, one line each way):
#   board -> host: "r <device> <channel>"            host -> board: "v <value>"
#   board -> host: "w <device> <channel> <value>"    host -> board: "k"
#   any error:                                       host -> board: "e <message>"
# <value> is "i<decimal int>", "f<16 hex digits: IEEE-754 double, little endian>" or "n" (None),
# so floats cross the link bit-exactly. One-way board -> host notices (no reply) are used by
# machine and the boot runner: "U" (booted), "F" (watchdog feed), "R" (machine.reset()),
# "S" (soft reset requested); "D" (REPL next) and "W <ms>" (watchdog start) are acknowledged.
import binascii
import os
import socket
import struct


class BusError(OSError):
    pass


_sock = None


def _connect():
    global _sock
    path = os.getenv("INSITU_EMUBUS")
    if not path:
        raise BusError("INSITU_EMUBUS is not set: not running on an emulated board")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\x00")
    except BaseException:
        s.close()
        raise
    _sock = s
    return s


def _drop():
    global _sock
    if _sock is not None:
        try:
            _sock.close()
        except OSError:
            pass
        _sock = None


def encode(v):
    if v is None:
        return "n"
    if v is True:
        return "i1"
    if v is False:
        return "i0"
    if isinstance(v, int):
        return f"i{v}"
    if isinstance(v, float):
        return "f" + binascii.hexlify(struct.pack("<d", v)).decode()
    raise TypeError("emubus values are int, float or None")


def decode(t):
    c = t[0]
    if c == "i":
        return int(t[1:])
    if c == "f":
        return struct.unpack("<d", binascii.unhexlify(t[1:]))[0]
    if c == "n":
        return None
    raise BusError("emubus: bad value " + t)


def _call(line):
    s = _sock or _connect()
    try:
        s.write(line)
        r = s.readline()
    except BaseException:
        # Interrupted (Ctrl-C) or broken: the reply may still arrive, so never reuse the stream.
        _drop()
        raise
    if not r:
        _drop()
        raise BusError("emubus: link closed")
    r = r.decode()
    c = r[0]
    if c == "v":
        return decode(r[2:-1])
    if c == "k":
        return None
    raise BusError(r[2:-1])


def _name(device):
    if not device or " " in device or "\n" in device:
        raise ValueError("bad device name")
    return device


def read(device, channel):
    return _call(f"r {_name(device)} {int(channel)}\n")


def write(device, channel, value):
    _call(f"w {_name(device)} {int(channel)} {encode(value)}\n")


def request(msg):
    # acknowledged supervisor request
    return _call(msg + "\n")


def notify(msg):
    # one-way notice to the supervisor
    s = _sock or _connect()
    try:
        s.write(msg + "\n")
    except BaseException:
        _drop()
        raise
