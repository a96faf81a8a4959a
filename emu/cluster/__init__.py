"""The emulated cluster: the object store (API server's role) and the runtime that
drives controllers, the dataplane and workloads from it."""
