"""MultiNetworkPolicy (k8s.cni.cncf.io/v1beta1): NetworkPolicy for secondary networks.

`model` parses and validates the object, `semantics` says what it allows (plain functions
over pods, namespaces and policies, no kernel), `rules` turns that into nftables JSON and
`enforce` programs it on a node. The split keeps upstream's semantics testable on a table
of cases without a kernel, and the kernel side small.
"""
