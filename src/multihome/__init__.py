"""multihome: several network interfaces for pods and VMs, on a lab or on Kubernetes."""

__version__ = "0.1.0"
