"""Loading and validating topology files and manifests (the YAML boundary)."""

from emu.config.loader import load_cluster_file, load_manifest_file, parse_manifest_docs

__all__ = ["load_cluster_file", "load_manifest_file", "parse_manifest_docs"]
