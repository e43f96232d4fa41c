"""ESP32 pin factories for board.build. Imported only on the board."""

import machine
from ubinascii import hexlify


def pin_in(n):
    return machine.Pin(n, machine.Pin.IN)


def pin_out(n):
    return machine.Pin(n, machine.Pin.OUT, value=0)


def pwm(n, freq):
    return machine.PWM(machine.Pin(n), freq=freq, duty_u16=0)


def adc(n):
    a = machine.ADC(machine.Pin(n))
    a.atten(machine.ADC.ATTN_11DB)  # full 0-3.3 V range for a bridge amplifier output
    return a


def uid():
    return hexlify(machine.unique_id()).decode()
