"""Traffic: the reachability probe (and, later, scapy helpers)."""
