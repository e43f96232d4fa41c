"""Local learning: sign convention, per-bond accumulation rules, optimisers, bounds, SPSA."""
