"""The control plane of a running cluster: a root-only Unix socket speaking JSON lines."""
