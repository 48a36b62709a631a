"""A real single-node Kubernetes cluster for the lab and the cluster test tier.

Everything here is test infrastructure around the product: Go binaries built once per
machine from modules (build.py), images made from Debian's busybox (images.py), the
processes of a control plane and a node (up.py).
"""
