"""The run store: every run, its configuration, network, firmware and every step, durable and
resumable (docs/run-store.md)."""

from insitu.store.db import (
    DEFAULT_PATH,
    ENV,
    SCHEMA_VERSION,
    Checkpoint,
    RunStore,
    StoreError,
    StoreWriteError,
    default_path,
)

__all__ = [
    "DEFAULT_PATH",
    "ENV",
    "SCHEMA_VERSION",
    "Checkpoint",
    "RunStore",
    "StoreError",
    "StoreWriteError",
    "default_path",
]
