"""The internal object model: frozen dataclasses, no I/O."""
