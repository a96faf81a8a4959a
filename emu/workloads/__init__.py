"""What runs inside pods: the agnhost-compatible server, container processes, probes."""
