"""Cluster DNS: the records of the Kubernetes DNS-Based Service Discovery specification
(kubernetes/dns docs/specification.md, schema 1.1.0), answered as CoreDNS's kubernetes plugin
answers them.

- records.py: pure, the index of the cluster's names built from Services, EndpointSlices, pods;
- resolver.py: pure, a query (dnspython message) → its answer over an index;
- upstream.py: pure, the emulated data centre's resolver (nodes and external hosts by name),
  and the forwarder a DNS pod asks it with;
- server.py: the server process a DNS pod runs (UDP, TCP, reload), with cache.py (answers
  cached as wire bytes, kept across reloads) and metrics.py (/metrics, /health, /ready).
"""
