"""Virtual machines of the local lab: a qemu process joined to a launcher pod's networks."""
