"""The node daemon: CNI requests over a unix socket, run in-process with warm caches.

server (HTTP over the socket) → pool (admission, per-container order, workers) →
requests (skel.dispatch against the registry). metrics, logs and autoconf (the node's
CNI config) hang off the server. The shim that talks to it lives in multihome.shim.
"""
