"""Kubernetes mode: the store over the Kubernetes API, with watch-fed caches.

Client library: lightkube. It was picked over the official ``kubernetes`` client and kr8s
for the node daemon's start-up time and memory: lightkube is small, typed and synchronous
(one httpx2 client, no generated model import of the whole API at start-up, no asyncio
loop), and it parses kubeconfig and in-cluster service-account credentials for us. The
requests themselves go through its httpx transport with the paths spelled out here, so
resourceVersion, bookmarks and 410 Gone are handled by our own code where tests can see it.
"""
