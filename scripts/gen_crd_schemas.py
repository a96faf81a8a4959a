"""Regenerate emu/config/crd_schemas/gateway-api.json.gz from an upstream Gateway API checkout.

Reads every CustomResourceDefinition in config/crd/standard/ of kubernetes-sigs/gateway-api
(a work tree or a bare git repository; `--ref` picks the commit) and keeps, for each kind,
its names, scope and every *served* version's openAPIV3Schema without the prose
(`description`), which is most of the bytes. Identical schemas (v1 and v1beta1 of a kind)
are stored once. The upstream commit and bundle version are recorded in the file.

    .venv/bin/python scripts/gen_crd_schemas.py --repo /path/to/gateway-api [--ref HEAD]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import subprocess
from typing import Any

import yaml

log = logging.getLogger("gen_crd_schemas")

CRD_DIR = "config/crd/standard"
BUNDLE_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
CHANNEL_ANNOTATION = "gateway.networking.k8s.io/channel"
OUT = os.path.join(os.path.dirname(__file__), "..", "emu", "config", "crd_schemas", "gateway-api.json.gz")
# Prose and examples: nothing the API server checks.
DROPPED_KEYS = frozenset({"description", "example", "externalDocs"})


class Upstream:
    """Files of one commit of the upstream repository, through git (bare repos work too)."""

    def __init__(self, repo: str, ref: str) -> None:
        self.repo = repo
        self.commit = self._git("rev-parse", f"{ref}^{{commit}}").strip()

    def _git(self, *args: str) -> str:
        done = subprocess.run(["git", "-C", self.repo, *args], capture_output=True, text=True, check=True)
        return done.stdout

    def list(self, directory: str) -> list[str]:
        return sorted(self._git("ls-tree", "--name-only", f"{self.commit}:{directory}").split())

    def read(self, path: str) -> str:
        return self._git("show", f"{self.commit}:{path}")


def stripped(schema: Any) -> Any:
    """The schema without prose; `default` and `enum` values are data and kept as they are."""
    if isinstance(schema, list):
        return [stripped(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: stripped(sub) for name, sub in value.items()}
        elif key in ("default", "enum"):
            out[key] = value
        else:
            out[key] = stripped(value)
    return out


def collect(upstream: Upstream) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    schemas: list[Any] = []
    schema_ids: dict[str, int] = {}
    bundle_versions: set[str] = set()
    channels: set[str] = set()
    for name in upstream.list(CRD_DIR):
        if not name.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(upstream.read(f"{CRD_DIR}/{name}")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue  # the ValidatingAdmissionPolicy guarding CRD upgrades
            annotations = doc["metadata"].get("annotations", {})
            bundle_versions.add(annotations.get(BUNDLE_ANNOTATION, ""))
            channels.add(annotations.get(CHANNEL_ANNOTATION, ""))
            spec = doc["spec"]
            names = spec["names"]
            versions = []
            for version in spec["versions"]:
                if not version.get("served"):
                    continue
                schema = stripped(version["schema"]["openAPIV3Schema"])
                text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
                if text not in schema_ids:
                    schema_ids[text] = len(schemas)
                    schemas.append(schema)
                versions.append(
                    {
                        "name": version["name"],
                        "storage": bool(version.get("storage")),
                        "deprecated": bool(version.get("deprecated")),
                        "deprecationWarning": version.get("deprecationWarning"),
                        "statusSubresource": "status" in version.get("subresources", {}),
                        "schema": schema_ids[text],
                    }
                )
            kinds[names["kind"]] = {
                "group": spec["group"],
                "plural": names["plural"],
                "singular": names.get("singular", names["kind"].lower()),
                "shortNames": names.get("shortNames", []),
                "categories": names.get("categories", []),
                "namespaced": spec["scope"] == "Namespaced",
                "versions": versions,
            }
            log.info("%s: served %s", names["kind"], ", ".join(v["name"] for v in versions))
    return {
        "source": {
            "repository": "kubernetes-sigs/gateway-api",
            "commit": upstream.commit,
            "bundleVersion": ",".join(sorted(bundle_versions)),
            "channel": ",".join(sorted(channels)),
            "directory": CRD_DIR,
        },
        "kinds": dict(sorted(kinds.items())),
        "schemas": schemas,
    }


def write(data: dict[str, Any], out: str) -> None:
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # mtime=0: the same upstream commit gives the same bytes.
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        f.write(text)
    log.info(
        "wrote %s: %d kinds, %d schemas, %d bytes of JSON, %d gzipped",
        out,
        len(data["kinds"]),
        len(data["schemas"]),
        len(text),
        os.path.getsize(out),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", required=True, help="the gateway-api repository (work tree or bare git directory)")
    parser.add_argument("--ref", default="HEAD", help="commit, tag or branch to read (default HEAD)")
    parser.add_argument("--out", default=os.path.normpath(OUT), help="where to write the gzipped JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write(collect(Upstream(args.repo, args.ref)), args.out)


if __name__ == "__main__":
    main()
