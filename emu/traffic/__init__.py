"""Traffic: the reachability probe, scapy helpers for kemu's own tests, packet capture (tcpdump in namespaces, pcap merging)."""
