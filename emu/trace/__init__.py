"""Packet tracing through the real kernel (issue #11's `kemu trace`): the kernel's own
evidence, read and put in Kubernetes words."""
