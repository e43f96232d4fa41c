"""Deploy: per-node config generation and flashing boards with mpremote."""
