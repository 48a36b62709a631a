"""The console's pages, one Flask blueprint per page family (auth, NADs, pods and VMs,
the node picture, node policies); app.create_app registers them all."""
