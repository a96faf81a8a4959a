"""Pictures of a running cluster: `kemu graph` and `kemu probe -o html`, checked as text
and as a browser shows them (headless Chromium, screenshots read with a small PNG reader)."""

from __future__ import annotations

import collections
import re
import shutil
import signal
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from emu.cli import graph_dot, probe_svg
from tests.conftest import REPO
from tests.e2e.helpers import Running, kemu, wait_until

pytestmark = pytest.mark.e2e

SVG = "{http://www.w3.org/2000/svg}"
DENY_FROM_OTHER_NAMESPACES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: echo-same-namespace, namespace: web}
spec:
  podSelector: {matchLabels: {app: echo}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {}}]}]
"""


# --- a PNG reader (8-bit RGB/RGBA, as Chromium writes screenshots) ------------------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels row by row) of a non-interlaced 8-bit RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG: depth {depth}, colour type {colour}"
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + prev[i]) & 0xFF
            elif f == 3:
                line[i] = (line[i] + ((a + prev[i]) >> 1)) & 0xFF
            elif f == 4:
                line[i] = (line[i] + _paeth(a, prev[i], prev[i - bpp] if i >= bpp else 0)) & 0xFF
        pixels += zip(line[0::bpp], line[1::bpp], line[2::bpp], strict=True)
        prev = line
    return width, height, pixels


def rgb(hex_colour: str) -> tuple[int, int, int]:
    v = int(hex_colour.lstrip("#"), 16)
    return v >> 16, (v >> 8) & 0xFF, v & 0xFF


def count_near(counts: collections.Counter[tuple[int, int, int]], colour: str, tolerance: int = 6) -> int:
    want = rgb(colour)
    return sum(n for c, n in counts.items() if all(abs(x - y) <= tolerance for x, y in zip(c, want, strict=True)))


def screenshot(url: str, out: Path, tmp: Path) -> collections.Counter[tuple[int, int, int]]:
    """What Chromium shows of `url` (1600×1200), as pixel colour counts."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (make setup installs it): cannot look at the pictures")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            f"--screenshot={out}",
            "--window-size=1600,1200",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    width, height, pixels = png_pixels(out)
    assert (width, height) == (1600, 1200)
    return collections.Counter(pixels)


def assert_not_blank(counts: collections.Counter[tuple[int, int, int]], what: str) -> None:
    total = sum(counts.values())
    background, n = counts.most_common(1)[0]
    assert len(counts) > 20 and total - n > total // 100, f"{what} looks blank: {len(counts)} colours, {total - n} pixels not {background}"


# --- the tests ------------------------------------------------------------------------------------


def test_graph_svg_shows_nodes_pods_and_the_service(quickstart: Running, tmp_path: Path) -> None:
    out = tmp_path / "graph.svg"
    kemu("--cluster", quickstart.name, "graph", "-o", "svg", "-w", str(out))
    root = ET.parse(out).getroot()
    texts = {t.text for t in root.iter(f"{SVG}text")}
    pods = quickstart.pods()
    echo = sorted(k.split("/")[1] for k in pods if k.startswith("web/echo-"))
    assert len(echo) == 3
    want = {"node-1", "node-2", "client", "svc web/echo", "web", "tools", "toolbox", *echo}
    want |= {p["status"]["podIP"] for p in pods.values()}
    assert want <= texts, f"missing from the SVG: {sorted(want - texts)}"
    assert {quickstart.node_ip("node-1"), quickstart.node_ip("node-2")} <= texts
    # An edge from the Service to each ready endpoint (all three echo pods are Ready).
    edges = [t.text or "" for g in root.iter(f"{SVG}g") if g.get("class") == "edge" for t in g.iter(f"{SVG}title")]
    assert len([e for e in edges if e.startswith("svc:web/echo->pods:")]) == 3, edges
    dot = kemu("--cluster", quickstart.name, "graph", "-o", "dot").stdout
    ports = {m[0]: m[1] for m in re.findall(r'PORT="(p\d+)"[^>]*>([^<( ]+)', dot)}
    to = {ports[m] for m in re.findall(r'"svc:web/echo" -> "pods:[^"]+":(p\d+):w', dot)}
    assert to == set(echo)


def test_graph_png_needs_a_file(quickstart: Running) -> None:
    cp = kemu("--cluster", quickstart.name, "graph", "-o", "png", check=False)
    assert cp.returncode == 2 and cp.stdout == "" and "-w FILE" in cp.stderr


def test_policies_graph_and_probe_grid(quickstart: Running, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(DENY_FROM_OTHER_NAMESPACES)
    kemu("--cluster", quickstart.name, "apply", "-f", str(policy))
    try:
        dot = kemu("--cluster", quickstart.name, "graph", "--policies", "-o", "dot").stdout
        echo = sorted(k for k in quickstart.pods() if k.startswith("web/echo-"))
        for e in echo:
            assert f'"pod:tools/toolbox" -> "pod:{e}" [color="{graph_dot.C_DENY}", style="dashed"' in dot
            assert f'"pod:{e}" -> "pod:tools/toolbox" [color="{graph_dot.C_ALLOW}"]' in dot
        assert f'"pod:{echo[0]}" -> "pod:{echo[1]}" [color="{graph_dot.C_ALLOW}"]' in dot
        kemu("--cluster", quickstart.name, "graph", "--policies", "-w", str(tmp_path / "policies.svg"))
        ET.parse(tmp_path / "policies.svg")

        cp = kemu("--cluster", quickstart.name, "probe", "--expect", "-o", "html", check=False, timeout=300)
        assert cp.returncode == 0, f"the kernel and the oracle disagree:\n{cp.stderr}"
        page = tmp_path / "probe.html"
        page.write_text(cp.stdout)
        svg = cp.stdout[cp.stdout.index("<svg") : cp.stdout.index("</svg>") + 6]
        states = {
            (r.get("data-from"), r.get("data-to"), r.get("data-port")): r.get("data-state")
            for r in ET.fromstring(svg).iter(f"{SVG}rect")
            if r.get("data-from")
        }
        assert states[("tools/toolbox", echo[0], "8080/TCP")] == "not-connected"
        assert states[(echo[0], echo[1], "8080/TCP")] == "connected"
        assert states[(echo[0], "tools/toolbox", "8080/TCP")] == "not-served"
        counts = screenshot(page.as_uri(), tmp_path / "probe.png", tmp_path)
        assert_not_blank(counts, "the probe page")
        assert count_near(counts, probe_svg.GREEN) > 200, "no green cells on the screen"
        assert count_near(counts, probe_svg.RED) > 200, "no red cells on the screen"
        assert count_near(counts, probe_svg.GREY) > 200, "no grey cells on the screen"
    finally:
        kemu("--cluster", quickstart.name, "delete", "networkpolicy", "echo-same-namespace", "-n", "web")


def test_graph_svg_in_a_browser(quickstart: Running, tmp_path: Path) -> None:
    out = tmp_path / "graph.svg"
    kemu("--cluster", quickstart.name, "graph", "-w", str(out))
    counts = screenshot(out.as_uri(), tmp_path / "graph.png", tmp_path)
    assert_not_blank(counts, "the graph")
    assert count_near(counts, graph_dot.C_NODE_BG, 2) > 1000, "no node box on the screen"
    assert count_near(counts, graph_dot.C_SVC, 2) > 100, "no Service on the screen"


def test_probe_watch_redraws_the_grid_when_a_policy_changes(quickstart: Running, tmp_path: Path) -> None:
    page = tmp_path / "watch.html"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "emu.cli.main", "--cluster", quickstart.name, "probe", "--watch", "-o", "html", "-w", str(page)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(DENY_FROM_OTHER_NAMESPACES)
    try:
        wait_until(page.exists, 60, "the first picture")
        before = _connected(page.read_text())
        assert 'http-equiv="refresh"' in page.read_text()  # an open browser reloads it
        kemu("--cluster", quickstart.name, "apply", "-f", str(policy))
        after = wait_until(lambda: (n := _connected(page.read_text())) < before and n, 60, "a picture with the policy applied")
        assert 0 < after < before
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            rc = watcher.wait(10)
        finally:
            if watcher.poll() is None:
                watcher.kill()
            kemu("--cluster", quickstart.name, "delete", "networkpolicy", "echo-same-namespace", "-n", "web", check=False)
    assert rc == 0, watcher.stderr.read() if watcher.stderr else ""
    assert not list(tmp_path.glob(".kemu-probe-*")), "a half-written picture was left"


def _connected(html: str) -> int:
    m = re.search(r"<p>(\d+)/\d+ connected", html)
    return int(m.group(1)) if m else -1
