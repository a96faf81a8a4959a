"""L7 gateways: Gateway API and Ingress compiled to a route model, rendered for HAProxy."""
