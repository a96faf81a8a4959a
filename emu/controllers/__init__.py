"""Pure controllers: IPAM, scheduling, Deployments (no I/O, no kernel)."""
