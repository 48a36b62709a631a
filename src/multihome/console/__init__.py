"""The web console: NADs, pods, VMs, node network pictures and node policies in a browser."""
