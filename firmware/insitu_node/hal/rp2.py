"""RP2040/RP2350 (Pico) pin factories for board.build. Imported only on the board."""

import machine
from ubinascii import hexlify


def pin_in(n):
    return machine.Pin(n, machine.Pin.IN)


def pin_out(n):
    return machine.Pin(n, machine.Pin.OUT, value=0)


def pwm(n, freq):
    p = machine.PWM(machine.Pin(n))
    p.freq(freq)
    p.duty_u16(0)
    return p


def adc(n):
    return machine.ADC(machine.Pin(n))


def uid():
    return hexlify(machine.unique_id()).decode()
