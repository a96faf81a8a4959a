"""Everything that touches the kernel: namespaces, links, CNI plugins, ownership records."""
