"""The `kemu` command."""
