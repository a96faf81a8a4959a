"""Applying netfilter rulesets: nftables in-process (libnftables) or through `nft`."""
