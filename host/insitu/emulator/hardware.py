"""Emulated parts of a node board and the named hardware profiles (docs/emulator.md).

Every number a profile holds says where it comes from: a datasheet, or a stated assumption.
Parts are bound to the world by ``insitu.emulator.world``; here they are pure models that turn
a true physical quantity into what a board's driver sees (raw counts, a servo's response) and
back. The nominal calibration a node's config must use is in ``NOMINAL`` and the functions
below it, and nowhere else.

The sensor chain assumed for a bond (strain channel)
----------------------------------------------------
Each bond carries a spring-steel cantilever flexure (15 mm long, 0.3 mm thick) whose tip follows
the bond's elongation e; a full Wheatstone bridge of four foil gauges (gauge factor 2.0) on its
root reads the surface strain eps = 3 t e / (2 L^2) = 2.0 /m * e, so the bridge gives
dV/V_exc = GF * eps = 4.0 /m * e. An HX711 on channel A at gain 128 has a full scale of
+/-0.5 * AVDD / 128 mapped onto +/-2^23 counts; the bridge is excited from AVDD (ratiometric),
so counts = 4.0 /m * e * 2^23 * 256 = 2^33 counts/m * e. Full scale is then +/-2^-10 m
(0.977 mm), 4.7x the largest elongation 5 g produces in li-mao-2024 (0.21 mm), at a surface
strain of 1950 ue at full scale (spring steel stays elastic well beyond that). The gain is a
power of two so that the ideal profile's conversion is exact in floating point.
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass, field, replace

import numpy as np

from insitu.hardware.leaf import clamp_fraction, flexure_share, leaf_k, leaf_table
from insitu.hardware.pinmap import BENCH

BENCH_FLEXURE_K = BENCH.flexure_k  # the kit's sensing flexure in parallel with the leaf

# ----------------------------------------------------------------------------- nominal constants

HX711_MAX = (1 << 23) - 1  # 24-bit two's complement output (Avia HX711 datasheet)
HX711_MIN = -(1 << 23)
# Avia HX711 datasheet, "Key electrical characteristics": input noise at gain 128, AVDD = 5 V
# is 50 nV rms at 10 SPS and 90 nV rms at 80 SPS. Referred to counts at AVDD = 3.3 V (an rp2
# board's rail): counts per volt = 2^23 / (0.5 * 3.3 V / 128) = 6.51e8.
HX711_COUNTS_PER_VOLT_3V3 = (1 << 23) / (0.5 * 3.3 / 128)
HX711_NOISE_COUNTS = {
    10: 50e-9 * HX711_COUNTS_PER_VOLT_3V3,  # 32.5 counts rms
    80: 90e-9 * HX711_COUNTS_PER_VOLT_3V3,  # 58.6 counts rms
}
# The kit's displacement sensor (hardware/docs/bom.md): a TI DRV5055A1 linear Hall sensor
# under a magnet on the node, read by the MCU's ADC. DRV5055 datasheet (sensitivity table):
# 60 mV/mT at VCC = 3.3 V, quiescent output VCC / 2; the magnet gives an assumed 10 mT/mm
# along the axis (hardware/docs/assembly.md), so 0.6 V/mm, linear over +/-21 mT (+/-2.1 mm).
DRV5055_V_PER_T = 60.0
MAGNET_T_PER_M = 10.0  # 10 mT/mm (assumption: set by the magnet and its distance)
HALL_V_PER_M = DRV5055_V_PER_T * MAGNET_T_PER_M
ADC_VCC = 3.3
# RP2040 datasheet 4.9.3: 12-bit SAR ADC, ENOB 8.7 -> noise 2^(12-8.7)/sqrt(12) = 2.83 LSB rms
# per conversion (~3.8 um of displacement); read_u16 scales a code like the rp2 port,
# code << 4 | code >> 8. The firmware's ADCBridge sums ADC_OVER reads around mid-scale.
ADC_BITS = 12
ADC_NOISE_LSB = 2 ** (ADC_BITS - 8.7) / math.sqrt(12)
ADC_OVER = 16  # the kit's oversampling (hardware.pinmap: disp sensor "over")
# counts per metre of that sum, what hardware.pinmap.BENCH.disp_adc_m_per_count inverts
HALL_COUNTS_PER_M = HALL_V_PER_M * ADC_OVER * 65535 / ADC_VCC


@dataclass(frozen=True)
class Nominal:
    """Calibration every node's config uses to convert raw counts (the firmware's cal.*)."""

    strain_counts_per_m: float = 2.0**33  # derivation in the module docstring
    strain_offset_counts: int = 0  # nominal; a real node tares (measures its zero) at start
    disp_counts_per_m: float = HALL_COUNTS_PER_M
    disp_offset_counts: int = 0  # the sensor is zeroed at the rest position
    pulse_min_us: float = 1000.0  # servo pulse for k_min (standard 1-2 ms RC servo range)
    pulse_max_us: float = 2000.0  # servo pulse for k_max
    # the servo element's law: None, k linear in the pulse (the ideal profile: an exact,
    # invertible map); a number, the kit's leaf spring (hardware/leaf.py) in parallel with a
    # sensing flexure of that stiffness (N/m, BENCH.flexure_k), its nominal table sampled at
    # ``table_points`` as the kit's configs are (hardware.pinmap.leaf_spring_table)
    leaf_flexure_k: float | None = None
    table_points: int = 9
    force_cmd_per_n: float = 1.0  # force commands are newtons on the emulator bus
    # clamp targets are metres on the bus; True reads them as displacement-sensor counts
    # (round(u / disp cal gain) + offset), the firmware's clamp convention (docs/firmware.md)
    clamp_in_counts: bool = False

    @property
    def strain_m_per_count(self) -> float:
        """The firmware's cal.gain for strain channels (metres per count)."""
        return 1.0 / self.strain_counts_per_m

    @property
    def disp_m_per_count(self) -> float:
        return 1.0 / self.disp_counts_per_m


NOMINAL = Nominal()


def _travel(k: float, k_min: float, k_max: float, nom: Nominal) -> float:
    """Where the servo sits (0 at k_min's pulse, 1 at k_max's) for stiffness k, by the law."""
    if nom.leaf_flexure_k is None:
        return (k - k_min) / (k_max - k_min)
    return clamp_fraction(k, k_min, k_max, flexure_share(k_min, nom.leaf_flexure_k))


def element_k(frac: float, k_min: float, k_max: float, nom: Nominal = NOMINAL) -> float:
    """Stiffness with the servo at ``frac`` of its pulse range, by the nominal law."""
    if nom.leaf_flexure_k is None:
        return k_min + (k_max - k_min) * frac
    return leaf_k(frac, k_min, k_max, flexure_share(k_min, nom.leaf_flexure_k))


def nominal_pulse(k: float, k_min: float, k_max: float, nom: Nominal = NOMINAL) -> float:
    """Servo pulse (us, float) that nominally sets stiffness k (the continuous law)."""
    return nom.pulse_min_us + (nom.pulse_max_us - nom.pulse_min_us) * _travel(k, k_min, k_max, nom)


def nominal_k(pulse_us: float, k_min: float, k_max: float, nom: Nominal = NOMINAL) -> float:
    """Inverse of ``nominal_pulse``."""
    frac = (pulse_us - nom.pulse_min_us) / (nom.pulse_max_us - nom.pulse_min_us)
    return element_k(frac, k_min, k_max, nom)


def servo_table(k_min: float, k_max: float, nom: Nominal = NOMINAL) -> list[list[float]]:
    """The firmware's element.table ([[k, us], ...]) for the nominal law: two points for the
    linear map, the kit's leaf-spring table otherwise (the firmware interpolates between
    points, so a leaf build's commanded k misses the continuous law by the chords' sag)."""
    if nom.leaf_flexure_k is None or k_max <= k_min:
        return [[float(k_min), int(nom.pulse_min_us)], [float(k_max), int(nom.pulse_max_us)]]
    ks = flexure_share(k_min, nom.leaf_flexure_k)
    return leaf_table(k_min, k_max, ks, (nom.pulse_min_us, nom.pulse_max_us), nom.table_points)


def strain_counts_to_m(counts: float, offset: float = 0.0, nom: Nominal = NOMINAL) -> float:
    """What a node computes from a raw strain count with nominal calibration."""
    return (counts - offset) / nom.strain_counts_per_m


# ----------------------------------------------------------------------------- specifications


@dataclass(frozen=True)
class StrainSpec:
    sample_rate: float | None  # conversions per second; None = a fresh sample at every read
    adc_noise_counts: float  # HX711 input noise, counts rms per conversion
    ambient_noise_m: float  # mechanical noise (vibration, air currents), metres rms per sample
    gain_error: float  # per-channel relative gain error, standard deviation
    offset_counts: float  # per-channel bridge zero imbalance, standard deviation (counts)
    drift_counts_per_s: float  # per-channel thermal offset drift, standard deviation
    quantise: bool  # integer counts
    saturate: bool  # clip to the 24-bit range


@dataclass(frozen=True)
class ElementSpec:
    deadband_us: float  # commands closer than this to the servo's last one are ignored
    travel_s: float  # time for the full pulse range (0 = instant)
    frame_s: float  # servo position loop period (50 Hz PWM frame)
    gain_error: float  # per-element relative error of the pulse->k slope, standard deviation
    offset_error: float  # per-element offset error, fraction of (k_max - k_min), std
    clip_pulse: bool  # end stops at pulse_min_us..pulse_max_us


@dataclass(frozen=True)
class ForceSpec:
    scale_error: float  # per-actuator relative error, standard deviation
    offset_n: float  # per-actuator offset while energised, standard deviation (N)
    max_n: float  # saturation (N)


@dataclass(frozen=True)
class ClampSpec:
    position_error_m: float  # standard deviation of where a hold actually lands (m)


@dataclass(frozen=True)
class DispSpec:
    noise_counts: float  # counts rms per read
    gain_error: float  # relative, standard deviation
    quantise: bool


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    relax: bool  # first-order settling with the network's relaxation_time
    strain: StrainSpec
    element: ElementSpec
    force: ForceSpec
    clamp: ClampSpec
    disp: DispSpec
    nominal: Nominal = field(default_factory=Nominal)
    element_kind: str = "servo"  # every bond's stiffness element: servo | coil (emulator/coil.py)
    friction_n: float = 0.0  # stick-slip threshold at the nodes' supports, N (friction.py)

    def with_(self, **changes) -> Profile:
        """A copy with some top-level fields replaced (e.g. relax=False)."""
        return replace(self, **changes)


IDEAL = Profile(
    name="ideal",
    description="Exact parts: float counts, no noise, instant servos, exact forces; no settling.",
    relax=False,
    strain=StrainSpec(None, 0.0, 0.0, 0.0, 0.0, 0.0, quantise=False, saturate=False),
    element=ElementSpec(0.0, 0.0, 0.02, 0.0, 0.0, clip_pulse=False),
    force=ForceSpec(0.0, 0.0, math.inf),
    clamp=ClampSpec(0.0),
    disp=DispSpec(0.0, 0.0, quantise=False),
)

REALISTIC = Profile(
    name="realistic",
    description="A careful bench: HX711 at 80 SPS, digital servos, calibrated force actuators.",
    relax=True,
    strain=StrainSpec(
        sample_rate=80.0,  # HX711 RATE pin high (datasheet: 10 or 80 SPS)
        adc_noise_counts=HX711_NOISE_COUNTS[80],  # datasheet 90 nV rms at 80 SPS
        ambient_noise_m=20e-9,  # assumption: air currents / bench vibration on a soft network
        gain_error=0.01,  # foil gauge factor tolerance +/-1 % (typical gauge datasheets)
        offset_counts=2.1e5,  # bridge zero balance ~0.1 mV/V (typical gauge bridge) * 2^31
        drift_counts_per_s=2.0,  # assumption: ~0.2 nm/s equivalent thermal drift, lab air
        quantise=True,
        saturate=True,
    ),
    element=ElementSpec(
        deadband_us=2.0,  # digital hobby servos: 1-4 us dead band (manufacturer specs)
        # TowerPro SG90 spec sheet (as republished, e.g. smarthon-docs "Servo SG90"): 0.1 s /
        # 60 deg at 4.8 V, 500-2400 us for 0-180 deg; so 1000-2000 us ~ 90 deg ~ 0.15 s
        travel_s=0.15,
        frame_s=0.02,  # 50 Hz servo PWM frame
        gain_error=0.03,  # assumption: element map calibrated to ~3 % (printed parts)
        offset_error=0.01,  # assumption: 1 % of the range
        clip_pulse=True,
    ),
    force=ForceSpec(
        scale_error=0.02,  # assumption: voice-coil force constant calibrated to 2 %
        offset_n=2e-4,  # assumption: 0.2 mN (~20 mg) residual from friction / cable drag
        max_n=0.5,  # assumption: small voice-coil actuator, 0.5 N peak
    ),
    clamp=ClampSpec(position_error_m=0.5e-6),  # assumption: the brake locks within 0.5 um
    disp=DispSpec(
        noise_counts=ADC_NOISE_LSB,  # RP2040 ADC, ENOB 8.7 (datasheet 4.9.3)
        # DRV5055 sensitivity and magnet gradient after the lab's one-off check against a
        # micrometer stage (assumption: 0.2 %; uncalibrated the datasheet allows +/-5 %)
        gain_error=0.002,
        quantise=True,
    ),
    nominal=Nominal(leaf_flexure_k=BENCH_FLEXURE_K),  # the kit's leaf spring (cube law)
)

HARSH = Profile(
    name="harsh",
    description="A rough bench: HX711 at 10 SPS, SG90-class servos, uncalibrated actuators.",
    relax=True,
    strain=StrainSpec(
        sample_rate=10.0,  # HX711 RATE pin low
        adc_noise_counts=HX711_NOISE_COUNTS[10] * 4,  # assumption: long unshielded bridge wires
        ambient_noise_m=0.2e-6,  # assumption: a fan or a footfall-prone floor
        gain_error=0.05,  # assumption: flexures cut by hand, gauges glued by hand
        offset_counts=1.1e6,  # bridge zero balance ~0.5 mV/V
        drift_counts_per_s=50.0,  # assumption: ~6 nm/s, warming electronics
        quantise=True,
        saturate=True,
    ),
    element=ElementSpec(
        deadband_us=5.0,  # SG90: dead band ~5 us (reseller data manuals, e.g. kpower's SG90)
        travel_s=0.3,  # loaded servo at half its no-load speed (assumption)
        frame_s=0.02,
        gain_error=0.08,  # assumption: uncalibrated element map
        offset_error=0.03,
        clip_pulse=True,
    ),
    force=ForceSpec(scale_error=0.05, offset_n=1e-3, max_n=0.3),  # assumptions: uncalibrated
    clamp=ClampSpec(position_error_m=2e-6),  # assumption: loose clamp, ~4 encoder steps
    disp=DispSpec(noise_counts=2 * ADC_NOISE_LSB, gain_error=0.01, quantise=True),  # assumptions
    nominal=Nominal(leaf_flexure_k=BENCH_FLEXURE_K),
)

# The realistic bench with parts deliberately far from their nominal calibration (issue 13's
# bench calibration): strain gains off by up to 15 %, 5x the bridge offsets, element maps off
# by 8 % (slope) and 4 % (offset), force scales 15 % and 1 mN offsets. Noise as realistic; the
# point is that calibration, not better parts, brings the gradient back.
MISCALIBRATED = REALISTIC.with_(
    name="miscalibrated",
    description="Realistic noise, parts far off nominal: calibration must find every error.",
    strain=replace(REALISTIC.strain, gain_error=0.15, offset_counts=1e6),
    element=replace(REALISTIC.element, gain_error=0.08, offset_error=0.04),
    force=replace(REALISTIC.force, scale_error=0.15, offset_n=1e-3),
)

PROFILES: dict[str, Profile] = {
    p.name: p for p in (IDEAL, REALISTIC, HARSH, MISCALIBRATED)
}


def get_profile(profile: str | Profile) -> Profile:
    """A profile by name; "NAME+coil" is profile NAME built with voice-coil elements."""
    if isinstance(profile, Profile):
        return profile
    base, plus, element = profile.partition("+")
    try:
        prof = PROFILES[base]
    except KeyError:
        raise ValueError(
            f"unknown hardware profile {profile!r} (known: {', '.join(PROFILES)})"
        ) from None
    if not plus:
        return prof
    from .coil import with_element  # the element kinds live with the coil part

    return with_element(prof, element)


def part_rng(seed: int, kind: int, index: int) -> np.random.Generator:
    """An independent generator per part, so adding a part never changes another's draws."""
    return np.random.default_rng([seed, kind, index])


# ----------------------------------------------------------------------------- parts


class StrainSensor:
    """A bond's flexure bridge behind an HX711: true elongation in, raw count out.

    Conversions complete at t_n = phase + n / rate on the world clock; a read returns the
    latest completed conversion, whose value is the elongation at t_n (so a sample is up to
    one period old, as on a board). ``ready`` is true once a conversion newer than the last
    one read exists. Faults (see faults.py) override the output.
    """

    def __init__(self, spec: StrainSpec, nom: Nominal, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.gain = nom.strain_counts_per_m * (1.0 + spec.gain_error * rng.standard_normal())
        self.offset = spec.offset_counts * rng.standard_normal()
        self.drift = spec.drift_counts_per_s * rng.standard_normal()
        self.phase = 0.0 if spec.sample_rate is None else rng.uniform(0, 1 / spec.sample_rate)
        self._consumed = -1  # index of the last conversion read
        self._cached: tuple[int, float] | None = None
        # faults
        self.stuck: float | None = None
        self.dead = False
        self.extra_noise_counts = 0.0
        self.saturated: int | None = None
        self.broken = False  # the bond is broken: the gauge sees a slack bar (e = 0)

    # conversion timing
    def index(self, t: float) -> int:
        """Index of the latest completed conversion at time t (-1 before the first)."""
        rate = self.spec.sample_rate
        if rate is None:
            return self._consumed + 1  # continuous: every read is a new sample
        return math.floor((t - self.phase) * rate + 1e-9)

    def conversion_time(self, n: int, t: float) -> float:
        rate = self.spec.sample_rate
        return t if rate is None else self.phase + n / rate

    def ready(self, t: float) -> bool:
        if self.dead:
            return False
        return self.index(t) > self._consumed

    def read(self, t: float, elongation_at) -> float | int:
        """Raw count at time t; ``elongation_at(tc)`` gives the true elongation at tc."""
        if self.dead:
            raise OSError(errno.EIO, "strain sensor not responding (dead)")
        if self.stuck is not None:
            return self.stuck
        if self.saturated is not None:
            return self.saturated
        n = self.index(t)
        self._consumed = max(self._consumed, n)
        if self._cached is not None and self._cached[0] == n:
            return self._cached[1]  # reading twice before a new conversion: same data
        tc = self.conversion_time(n, t)
        e = 0.0 if self.broken else elongation_at(tc)
        value = self.counts(e, tc)
        self._cached = (n, value)
        return value

    def counts(self, e: float, t: float) -> float | int:
        s = self.spec
        x = self.gain * e + self.offset + self.drift * t
        sigma = math.hypot(s.adc_noise_counts, s.ambient_noise_m * self.gain)
        sigma = math.hypot(sigma, self.extra_noise_counts)
        if sigma > 0:
            x += sigma * self.rng.standard_normal()
        if s.quantise:
            x = int(round(x))
        if s.saturate:
            x = min(HX711_MAX, max(HX711_MIN, x))
        return x


class StiffnessElement:
    """A servo that sets a bond's effective spring length: pulse (us) in, true k out.

    True map: k = k_min + (k_max - k_min) * ((1 + g) * frac + o) with frac the nominal position
    of the pulse in the 1000-2000 us range and (g, o) this element's map error. The world moves
    k toward the target at the servo's rate, one step per PWM frame.
    """

    def __init__(
        self,
        spec: ElementSpec,
        nom: Nominal,
        k_min: float,
        k_max: float,
        k_init: float,
        rng: np.random.Generator,
    ) -> None:
        self.spec = spec
        self.nom = nom
        self.k_min, self.k_max = float(k_min), float(k_max)
        self.map_gain = 1.0 + spec.gain_error * rng.standard_normal()
        self.map_offset = spec.offset_error * rng.standard_normal()
        span = max(self.k_max - self.k_min, 1e-12 * self.k_max)
        # N/m per second; a fixed-k bond (k_min == k_max) moves at an arbitrary finite rate
        self.rate = math.inf if spec.travel_s <= 0 else span / spec.travel_s
        self.k_floor = 1e-3 * self.k_min  # the element never goes slack (K stays definite)
        self.last_pulse = nominal_pulse(k_init, k_min, k_max, nom) if span > 0 else 0.0
        self.stuck = False

    def true_k(self, pulse_us: float) -> float:
        nom = self.nom
        if self.spec.clip_pulse:
            pulse_us = min(nom.pulse_max_us, max(nom.pulse_min_us, pulse_us))
        if self.k_max == self.k_min:
            return self.k_min  # a fixed bond: nothing to tune
        frac = (pulse_us - nom.pulse_min_us) / (nom.pulse_max_us - nom.pulse_min_us)
        if self.map_gain == 1.0 and self.map_offset == 0.0:
            k = nominal_k(pulse_us, self.k_min, self.k_max, nom)  # exact inverse (ideal)
        else:  # the link's errors move the clamp (leaf) or the lever (linear law)
            k = element_k(self.map_gain * frac + self.map_offset, self.k_min, self.k_max, nom)
        return max(k, self.k_floor)

    def command(self, pulse_us: float) -> float | None:
        """Target k for a pulse, or None when the element ignores it (dead band, stuck)."""
        if self.stuck:
            return None
        if not math.isfinite(pulse_us):
            raise ValueError(f"servo pulse must be finite, got {pulse_us}")
        db = self.spec.deadband_us
        if db > 0 and abs(pulse_us - self.last_pulse) < db:
            return None
        self.last_pulse = float(pulse_us)
        return self.true_k(pulse_us)


class ForceActuator:
    """Force at a node along one axis: true = cmd (1 + s) + o while energised, saturating.

    A command of exactly 0 switches the driver off, so no offset force remains (a voice coil
    with no current pushes nothing).
    """

    def __init__(self, spec: ForceSpec, nom: Nominal, rng: np.random.Generator) -> None:
        self.spec = spec
        self.nom = nom
        self.scale = 1.0 + spec.scale_error * rng.standard_normal()
        self.offset = spec.offset_n * rng.standard_normal()

    def true_force(self, command: float) -> float:
        if not math.isfinite(command):
            raise ValueError(f"force command must be finite, got {command}")
        if command == 0:
            return 0.0
        newtons = command / self.nom.force_cmd_per_n
        f = newtons * self.scale + self.offset
        return min(self.spec.max_n, max(-self.spec.max_n, f))


class Clamp:
    """Position hold of one DOF; lands within position_error of the target."""

    def __init__(self, spec: ClampSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng

    def true_target(self, target_m: float) -> float:
        if not math.isfinite(target_m):
            raise ValueError(f"clamp target must be finite, got {target_m}")
        err = self.spec.position_error_m
        return target_m + (err * self.rng.standard_normal() if err > 0 else 0.0)


class DispSensor:
    """Displacement of a node along one axis: the kit's DRV5055 Hall sensor on a 12-bit ADC.

    ``read_u16(u)`` is one ADC conversion as the MCU's ``ADC.read_u16`` returns it (what a
    pin-level board's silicon hands its driver); ``read(u)`` is what the firmware's ADCBridge
    makes of ``ADC_OVER`` of them (their sum minus mid-scale), drawn from the same conversions,
    so a board reading through its pins and one reading the bus get the same counts bit for
    bit. An unquantised (ideal) sensor returns the exact float count instead.
    """

    def __init__(self, spec: DispSpec, nom: Nominal, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.sens = 1.0 + spec.gain_error * rng.standard_normal()  # sensitivity x magnet
        self.gain = nom.disp_counts_per_m * self.sens  # float counts per metre (ideal)
        self.stuck: float | None = None
        self.dead = False
        self.extra_noise_counts = 0.0  # extra ADC noise, LSB rms per conversion

    def _code(self, u: float) -> int:
        top = (1 << ADC_BITS) - 1
        volts = ADC_VCC / 2 + HALL_V_PER_M * self.sens * u
        x = volts * top / ADC_VCC
        sigma = math.hypot(self.spec.noise_counts, self.extra_noise_counts)
        if sigma > 0:
            x += sigma * self.rng.standard_normal()
        code = int(math.floor(x + 0.5))
        return 0 if code < 0 else (top if code > top else code)

    def read_u16(self, u: float) -> int:
        if self.dead:
            raise OSError(errno.EIO, "displacement sensor not responding (dead)")
        code = self._code(u)
        return (code << 4) | (code >> 8)

    def read(self, u: float) -> float | int:
        if self.dead:
            raise OSError(errno.EIO, "displacement sensor not responding (dead)")
        if self.stuck is not None:
            return self.stuck
        if not self.spec.quantise:
            return self.gain * u
        return sum(self.read_u16(u) for _ in range(ADC_OVER)) - 32768 * ADC_OVER


__all__ = [
    "HALL_COUNTS_PER_M",
    "HARSH",
    "HX711_MAX",
    "HX711_MIN",
    "IDEAL",
    "NOMINAL",
    "PROFILES",
    "REALISTIC",
    "Clamp",
    "ClampSpec",
    "DispSensor",
    "DispSpec",
    "ElementSpec",
    "ForceActuator",
    "ForceSpec",
    "Nominal",
    "Profile",
    "StiffnessElement",
    "StrainSensor",
    "StrainSpec",
    "get_profile",
    "nominal_k",
    "nominal_pulse",
    "servo_table",
    "strain_counts_to_m",
]
