"""Container images made here, from Debian's busybox-static: no registry is reachable.

Two images, each written as an OCI image-layout archive that `ctr images import` takes:
the pod sandbox ("pause") image and the lab's test image (busybox with `sleep`, `ip`,
`ping`). Both are one uncompressed layer: a static busybox and a symlink per applet.
The archives are deterministic (fixed mtimes, sorted entries), so their digests are
stable and a re-import is a no-op for containerd.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
PAUSE_IMAGE = "localhost/multihome/pause:1"
TEST_IMAGE = "localhost/multihome/busybox:1"

# The sandbox container only has to hold the pod's namespaces open. As PID 1 busybox
# ignores SIGTERM; containerd stops sandboxes with SIGKILL, so that costs nothing.
PAUSE_ENTRYPOINT = ["/bin/sleep", "2147483647"]
TEST_CMD = ["/bin/sh"]


@dataclass(frozen=True)
class ImageSpec:
    """What goes into one image."""

    ref: str
    entrypoint: list[str] | None
    cmd: list[str] | None


def _applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return sorted(a for a in out.split() if a and "/" not in a and a != "busybox")


def _add(tar: tarfile.TarFile, info: tarfile.TarInfo, data: bytes | None = None) -> None:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def layer_bytes() -> bytes:
    """The one layer: directories, busybox, and an applet symlink for each command."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "dev", "etc", "proc", "run", "sys", "tmp", "var"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            _add(tar, info)
        body = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(body)
        info.mode = 0o755
        _add(tar, info, body)
        for applet in _applets():
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            link.mode = 0o777
            _add(tar, link)
        for name, text in (("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
                           ("etc/group", "root:x:0:\n"),
                           ("etc/hosts", "127.0.0.1 localhost\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            _add(tar, info, data)
    return buf.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    info.mode = 0o644
    _add(tar, info, data)
    return f"sha256:{digest}"


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_archive(spec: ImageSpec, path: Path, layer: bytes | None = None) -> Path:
    """Write `spec` as an OCI image-layout tar at `path`."""
    layer = layer if layer is not None else layer_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        layer_digest = _blob(tar, layer)
        config = _json({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": spec.entrypoint,
                "Cmd": spec.cmd,
                "Env": ["PATH=/bin"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        })
        config_digest = _blob(tar, config)
        manifest = _json({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": len(layer)}],
        })
        manifest_digest = _blob(tar, manifest)
        index = _json({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": spec.ref,
                    "org.opencontainers.image.ref.name": spec.ref.rsplit(":", 1)[1],
                },
            }],
        })
        for name, data in (("oci-layout", _json({"imageLayoutVersion": "1.0.0"})),
                           ("index.json", index)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            _add(tar, info, data)
    tmp.replace(path)
    return path


def lab_images() -> list[ImageSpec]:
    return [ImageSpec(PAUSE_IMAGE, PAUSE_ENTRYPOINT, None), ImageSpec(TEST_IMAGE, None, TEST_CMD)]


def write_lab_images(folder: Path) -> list[Path]:
    """Both archives into `folder`, sharing one layer."""
    layer = layer_bytes()
    return [write_archive(s, folder / (s.ref.split("/")[-1].replace(":", "-") + ".tar"), layer)
            for s in lab_images()]
