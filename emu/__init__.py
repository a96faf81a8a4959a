"""kemu: the Kubernetes network model on one machine, with the real kernel."""

__version__ = "0.1.0"
