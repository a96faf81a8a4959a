"""The gateway plane of a running cluster: Gateway API and Ingress objects from the store
compiled to route models (emu.gateway), each proxy deployed as ordinary objects
(gateway/deploy.py), its HAProxy configuration written and its running proxies reloaded
— a change returns once every running proxy serves it — and the objects' status.

The plane is a pure step (world → compiled → wanted objects and configurations) plus
the side effects the runtime asks for; runtime.Cluster calls it after every sync.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emu.controllers.changelog import Snapshot
from emu.errors import KemuError
from emu.gateway import deploy, haproxy, haproxy_ctl
from emu.gateway.conditions import merge_conditions
from emu.gateway.gateway_api import RouteCache, compile_gateways
from emu.gateway.ingress import compile_ingresses
from emu.gateway.model import GATEWAY_KINDS, Compiled, Endpoint, ServicePortInfo, World
from emu.model.services import EndpointSlice, Service

log = logging.getLogger(__name__)

GATEWAY_CLASS = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "kemu"},
    "spec": {
        "controllerName": "kemu.dev/gateway-controller",
        "description": "kemu's Gateway: HAProxy proxy pods behind a LoadBalancer Service",
    },
}
INGRESS_CLASS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "IngressClass",
    "metadata": {"name": "kemu", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
    "spec": {"controller": "kemu.dev/ingress-controller"},
}


@dataclass(frozen=True)
class ProxyPod:
    key: str  # "ns/name"
    proxy: str
    ready: bool  # the kubelet's readiness (HAProxy answers /healthz)
    alive: bool  # its process runs


def merge(a: Compiled, b: Compiled) -> Compiled:
    return Compiled({**a.proxies, **b.proxies}, {**a.status, **b.status}, {**a.ports, **b.ports})


def service_ports(
    services: Mapping[str, Service], slices: Mapping[str, list[EndpointSlice]]
) -> dict[tuple[str, str], tuple[ServicePortInfo, ...]]:
    """Each Service port with its ready endpoints (pod IP, the port the slice gives for
    that Service port's name): what a proxy sends to, as Gateway implementations read
    EndpointSlices rather than going through the ClusterIP."""
    return {(svc.meta.namespace, svc.meta.name): _port_infos(svc, slices.get(key, ())) for key, svc in services.items()}


def _port_infos(svc: Service, slices: Iterable[EndpointSlice]) -> tuple[ServicePortInfo, ...]:
    slices = tuple(slices)
    infos = []
    for p in svc.ports:
        eps: list[Endpoint] = []
        for sl in slices:
            port = next((ep.port for ep in sl.ports if ep.name == p.name and ep.protocol == p.protocol), None)
            if port is None:
                continue
            for e in sl.endpoints:
                if e.conditions.ready:
                    eps.extend(Endpoint(a, port, e.target_ref) for a in e.addresses)
        app = getattr(p, "app_protocol", None)
        infos.append(ServicePortInfo(p.port, p.name, p.protocol, app, tuple(sorted(set(eps), key=lambda x: (x.ip, x.port)))))
    return tuple(infos)


class ServicePorts:
    """`service_ports` with memory: only Services whose object or slices are other
    objects than last time are looked at again, and the same dict comes back while
    nothing changed (the compilers compare worlds: a dict compared with itself is
    cheap). A new dict on change: worlds handed out earlier stay as they were."""

    def __init__(self) -> None:
        self._services, self._slices = Snapshot(), Snapshot()
        self._infos: dict[tuple[str, str], tuple[ServicePortInfo, ...]] = {}
        self._ids: dict[str, tuple[str, str]] = {}  # store key → (ns, name)
        self.out: dict[tuple[str, str], tuple[ServicePortInfo, ...]] = {}

    def get(
        self, services: Mapping[str, Service], slices: Mapping[str, list[EndpointSlice]]
    ) -> dict[tuple[str, str], tuple[ServicePortInfo, ...]]:
        changed = self._services.changed(services) | self._slices.changed(slices)
        if len(changed) > 64:  # keep the Services' order, as service_ports gives it
            changed_order = [k for k in services if k in changed] + [k for k in self._ids if k in changed and k not in services]
        else:
            changed_order = list(changed)
        dirty = False
        for key in changed_order:
            svc = services.get(key)
            was = self._ids.get(key)
            ident = (svc.meta.namespace, svc.meta.name) if svc is not None else None
            before = self._infos.get(was) if was is not None else None
            if was is not None and was != ident:
                del self._ids[key], self._infos[was]
            if svc is None or ident is None:
                dirty = dirty or was is not None
                continue
            infos = _port_infos(svc, slices.get(key, ()))
            if was != ident or before != infos:
                self._ids[key], self._infos[ident] = ident, infos
                dirty = True
        if dirty:
            self.out = dict(self._infos)
        return self.out


_PORTS: dict[int, tuple[weakref.ref[Any], ServicePorts]] = {}  # id(store) → (the store, its cache)


def _ports_of(store: Any) -> ServicePorts:
    """The store's ServicePorts (a store is not hashable: kept by id, checked by a weak reference)."""
    hit = _PORTS.get(id(store))
    if hit is None or hit[0]() is not store:
        for k in [k for k, (ref, _) in _PORTS.items() if ref() is None]:
            del _PORTS[k]
        hit = _PORTS[id(store)] = (weakref.ref(store), ServicePorts())
    return hit[1]


class GatewayPlane:
    def __init__(self, record_dir: str) -> None:
        self.dir = os.path.join(record_dir, "gw")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.compiled = Compiled()
        self.status: dict[tuple[str, str], dict[str, Any]] = {}
        self._world: World | None = None
        self._written: dict[str, str] = {}  # proxy → digest of what its files hold
        self._written_from: Compiled | None = None  # the model those files were rendered from
        self._serial: dict[str, int] = {}  # proxy → configuration serial
        self._pod_serial: dict[str, int] = {}  # proxy pod → serial it serves
        self._rendered: dict[str, tuple[str, dict[str, str]]] = {}  # proxy → (text, files) last written
        # proxy → (serial, {map path: content}): the change from serial-1 is in map files
        # only, which running proxies take through their runtime API, without a reload.
        self._map_change: dict[str, tuple[int, dict[str, str]]] = {}
        self._routes = RouteCache()  # compiled HTTPRoutes, reused while they and their world hold
        self.owned: dict[tuple[str, str, str], dict[str, Any]] = {}  # the proxies' objects, as last applied

    # --- the pure part ------------------------------------------------------------------------

    def compile(self, world: World) -> Compiled:
        """Both APIs, from one world (a proxy name says which API it comes from)."""
        if world == self._world:
            return self.compiled
        self.compiled = merge(compile_gateways(world, cache=self._routes), compile_ingresses(world, time.time()))
        self._world = world
        self.status = {k: keep_transition_times(self.status.get(k) or {}, v) for k, v in self.compiled.status.items()}
        return self.compiled

    def wanted(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The proxies' Deployments and Services: (kind, ns, name) → manifest."""
        out: dict[tuple[str, str, str], dict[str, Any]] = {}
        world = self._world or World()
        gateways = {f"Gateway/{g['metadata']['namespace']}/{g['metadata']['name']}": g for g in world.of("Gateway")}
        for proxy in self.compiled.proxies:
            gw = gateways.get(proxy, {})
            spec = gw.get("spec") or {}
            infra = spec.get("infrastructure") or {}
            docs = deploy.manifests(
                proxy,
                self.compiled.ports.get(proxy, ()),
                self.cfg_path(proxy),
                self.dir,
                class_name=str(spec.get("gatewayClassName") or ""),
                labels=dict(infra.get("labels") or {}),
                annotations=dict(infra.get("annotations") or {}),
            )
            for d in docs:
                out[(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"])] = d
        return out

    def proxy_of_label(self) -> dict[str, str]:
        return {deploy.proxy_label(p): p for p in self.compiled.proxies}

    # --- files and processes ---------------------------------------------------------------------

    def cfg_path(self, proxy: str) -> str:
        return os.path.join(self.dir, deploy.proxy_label(proxy), "haproxy.cfg")

    def write(self) -> None:
        """Render every proxy's configuration; write the ones that changed (the files
        first, the configuration last, each by rename: a proxy never reads half a file).
        Nothing to do when the compiled model is the one last written: most syncs (a
        readiness flip elsewhere) leave the world, and so the model, as it was."""
        if self.compiled is self._written_from:
            return
        self._written_from = self.compiled
        for proxy, cfg in self.compiled.proxies.items():
            d = os.path.dirname(self.cfg_path(proxy))
            opts = haproxy.RenderOptions(dir=d, stats_socket=deploy.stats_socket(self.dir))
            rendered = haproxy.render(cfg, opts)
            text = rendered.text + _health_section()
            digest = hashlib.sha256(repr((text, sorted(rendered.files.items()))).encode()).hexdigest()
            if self._written.get(proxy) == digest:
                continue
            os.makedirs(d, mode=0o700, exist_ok=True)
            old_text, old_files = self._rendered.get(proxy, ("", {}))
            changed = {n: c for n, c in rendered.files.items() if old_files.get(n) != c}
            for name, content in changed.items():
                _atomic_write(os.path.join(d, name), content)
            _atomic_write(self.cfg_path(proxy), text)
            self._written[proxy] = digest
            self._rendered[proxy] = (text, dict(rendered.files))
            serial = self._serial[proxy] = self._serial.get(proxy, 0) + 1
            if old_text == text and set(old_files) == set(rendered.files) and all(n.endswith(".map") for n in changed):
                self._map_change[proxy] = (serial, {os.path.join(d, n): c for n, c in changed.items()})
            else:
                self._map_change.pop(proxy, None)
        for proxy in [p for p in self._written if p not in self.compiled.proxies]:
            self._written.pop(proxy, None)
            self._serial.pop(proxy, None)
            self._rendered.pop(proxy, None)
            self._map_change.pop(proxy, None)
            shutil.rmtree(os.path.dirname(self.cfg_path(proxy)), ignore_errors=True)

    def reload(self, pods: list[ProxyPod]) -> dict[str, bool]:
        """Bring every running proxy to its configuration's serial (a reload returns
        once the new worker serves); which proxies have a ready pod serving the latest."""
        ready: dict[str, bool] = {}
        for pod in pods:
            serial = self._serial.get(pod.proxy)
            if serial is None or not pod.alive:
                continue
            if self._pod_serial.get(pod.key) != serial and self._maps_only(pod, serial):
                self._pod_serial[pod.key] = serial
            if self._pod_serial.get(pod.key) != serial:
                sock = deploy.master_socket(self.dir, pod.key.split("/", 1)[1])
                try:
                    # A pod that just started read the file at start; reload it anyway
                    # (cheap) rather than guess which version it read.
                    haproxy_ctl.wait_serving(sock, timeout=5.0)
                    haproxy_ctl.reload(sock, timeout=5.0, cfg_path=self.cfg_path(pod.proxy))
                except Exception as e:  # noqa: BLE001 - one proxy's failure must not stop the others
                    log.error("proxy %s (%s) did not take its configuration: %s", pod.key, pod.proxy, e)
                    continue
                self._pod_serial[pod.key] = serial
            if pod.ready:
                ready[pod.proxy] = True
        alive = {p.key for p in pods}
        for k in [k for k in self._pod_serial if k not in alive]:
            del self._pod_serial[k]
        return ready

    def _maps_only(self, pod: ProxyPod, serial: int) -> bool:
        """Bring a proxy one serial behind up to date through its runtime API when only
        map contents changed (routes added, removed or moved among existing backends:
        milliseconds, where a reload re-reads everything); False to reload instead."""
        change = self._map_change.get(pod.proxy)
        if change is None or change[0] != serial or self._pod_serial.get(pod.key) != serial - 1:
            return False
        try:
            haproxy_ctl.replace_maps(f"{self.dir}/{pod.key.split('/', 1)[1]}.stats", change[1])
        except (OSError, KemuError) as e:
            log.warning("proxy %s: runtime map update failed (%s); reloading", pod.key, e)
            return False
        return True


def _health_section() -> str:
    # The kubelet's readiness probe: HAProxy answers it itself, from the first worker on.
    return f"\nfrontend kemu-health\n    mode http\n    bind :{deploy.HEALTH_PORT}\n    monitor-uri /healthz\n"


def _atomic_write(path: str, content: str) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    os.replace(tmp, path)


def keep_transition_times(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The new status, with each condition's lastTransitionTime kept from the old one where
    its status did not change (metav1.Condition): top-level conditions, and those of each
    listener (by name) and each parent (by parentRef)."""
    out = dict(new)
    if "conditions" in new:
        out["conditions"] = merge_conditions(old.get("conditions") or [], new["conditions"])
    for field, ident in (("listeners", "name"), ("parents", "parentRef")):
        if field in new:
            before = {repr(x.get(ident)): x for x in old.get(field) or []}
            out[field] = [
                {
                    **x,
                    "conditions": merge_conditions(
                        (before.get(repr(x.get(ident))) or {}).get("conditions") or [], x.get("conditions") or []
                    ),
                }
                for x in new[field]
            ]
    return out


def world_of(store: Any, slices: dict[str, list[EndpointSlice]], ready: dict[str, bool]) -> World:
    """The world the compilers read, from the store (objects as written, namespaces
    filled in), the Services' ready endpoints, and the proxies' own state."""
    objects: dict[str, list[dict[str, Any]]] = {}
    created: dict[tuple[str, str, str], float] = {}
    for kind in GATEWAY_KINDS:
        items = []
        for o in store.list(kind, None):
            raw = dict(o.raw)
            meta = dict(raw.get("metadata") or {})
            if o.meta.namespace:
                meta["namespace"] = o.meta.namespace
            meta["generation"] = store.generation.get((kind, o.key), 1)
            raw["metadata"] = meta
            items.append(raw)
            created[(kind, o.meta.namespace, o.meta.name)] = store.created.get((kind, o.key), 0.0)
        objects[kind] = items
    secrets = {(o.meta.namespace, o.meta.name): o.raw for o in store.list("Secret", None)}
    addresses: dict[str, tuple[str, ...]] = {}
    for g in objects["Gateway"]:
        proxy = f"Gateway/{g['metadata']['namespace']}/{g['metadata']['name']}"
        addresses[proxy] = _lb_ips(store, proxy, str((g.get("spec") or {}).get("gatewayClassName") or ""))
    addresses["Ingress/kemu"] = _lb_ips(store, "Ingress/kemu", "")
    return World(
        objects=objects,
        services=_ports_of(store).get(store.services, slices),
        secrets=secrets,
        namespaces={n: dict(x.meta.labels) for n, x in store.namespaces.items()},
        created=created,
        addresses={k: v for k, v in addresses.items() if v},
        ready=dict(ready),
    )


def _lb_ips(store: Any, proxy: str, class_name: str) -> tuple[str, ...]:
    ns, name = deploy.placement(proxy, class_name)
    st = store.service_status.get(f"{ns}/{name}")
    return (st.lb_ip,) if st is not None and st.lb_ip else ()
