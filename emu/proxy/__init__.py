"""The service proxy (kube-proxy's role): Services + EndpointSlices → per-node plan →
netfilter text (nftables or iptables), plus a packet tracer over the plan."""
