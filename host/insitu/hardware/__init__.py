"""The hardware kit on the host side: board pin maps (hardware/boards/*.toml) and the node
configs they yield. See hardware/README.md."""

from insitu.hardware.pinmap import (
    BENCH,
    CHIPS,
    BenchNominal,
    PinMap,
    PinMapError,
    apply_pins,
    bench_calibration,
    default_pinmap_path,
    leaf_spring_table,
    load_pinmap,
    parse_pinmap,
    rp2_slice,
    summary,
    wiring_table,
)

__all__ = [
    "BENCH",
    "CHIPS",
    "BenchNominal",
    "PinMap",
    "PinMapError",
    "apply_pins",
    "bench_calibration",
    "default_pinmap_path",
    "leaf_spring_table",
    "load_pinmap",
    "parse_pinmap",
    "rp2_slice",
    "summary",
    "wiring_table",
]
