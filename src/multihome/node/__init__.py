"""Node network state in nmstate's schema: validate, read, apply with verify and rollback.

Flow of `node apply`: schema.parse → checkpoint.capture → apply.change → verify.contained
→ probes.run → commit (drop the checkpoint) or checkpoint.restore. Policies (NNCP) are
enacted on the local node by policy.enact, which records NNCE conditions and the NNS.
"""
