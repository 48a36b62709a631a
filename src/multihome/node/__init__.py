"""Node network state in nmstate's schema: validate, read, apply with verify and rollback.

Flow of `node apply` (engine.apply_state): schema.validate → recovery of a killed
apply's leftover checkpoint → checkpoint.capture and save → apply.change →
verify.contained → ping probes (net.icmp) → commit (checkpoint.drop) or
checkpoint.restore. With `--no-commit` a detached timer (python -m multihome.node.timer)
rolls back unless `node commit` comes first. current.show reads the state (the NNS).

Policies (NNCP) are enacted on the local node by policy.enact (their nmpolicy captures
resolved by capture.generate first), which records NNCE
conditions and the NNS; rollout bounds how many nodes change at once (maxUnavailable);
resources exposes the node's bridges as node resources. The kubernetes-nmstate kinds
themselves are registered with the store (store.objects), like every other kind.
"""
