"""The busybox test image, built locally: no registry is reachable in CI.

One layer (the busybox rootfs of tests/support/busybox.py as a tar) serves
every engine: podman imports the bare tarball, containerd imports an OCI
image archive (oci-layout, index.json, manifest, config and layer blobs,
each named by its sha256 digest), Docker 20.10 loads a docker-archive
(manifest.json naming the config and layer files; its `docker load`
does not read OCI archives), both written here with tarfile/hashlib/json.
"""

import hashlib
import io
import json
import os
import tarfile
import tempfile

from tests.support.busybox import make_rootfs

# the name of the image in both engines
IMAGE = "localhost/e2e-busybox:latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def write_rootfs_tar(path: str) -> str:
    """A tarball of the busybox rootfs at `path`, owned by root whoever built it."""
    with tempfile.TemporaryDirectory(prefix="e2e-rootfs-") as tmp:
        rootfs = make_rootfs(os.path.join(tmp, "rootfs"))
        with tarfile.open(path, "w") as tar:
            tar.add(rootfs, arcname=".", filter=_owned_by_root)
    return path


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _image_config(layer: bytes) -> bytes:
    """The image's config (the same in OCI and docker archives)."""
    return _json_bytes({
        "architecture": _oci_architecture(),
        "os": "linux",
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        # an uncompressed layer's diff_id is its own digest
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    })


def write_oci_archive(path: str, layer_tar: str, ref_name: str) -> str:
    """An OCI image archive at `path` holding one image, `ref_name`, whose
    single uncompressed layer is `layer_tar`."""
    with open(layer_tar, "rb") as f:
        layer = f.read()
    layer_desc = _descriptor("application/vnd.oci.image.layer.v1.tar", layer)
    config = _image_config(layer)
    config_desc = _descriptor("application/vnd.oci.image.config.v1+json", config)
    manifest = _json_bytes({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    })
    manifest_desc = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    # ctr import names the image after this annotation
    manifest_desc["annotations"] = {"io.containerd.image.name": ref_name}
    index = _json_bytes({"schemaVersion": 2, "manifests": [manifest_desc]})

    with tarfile.open(path, "w") as tar:
        _add_bytes(tar, "oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", index)
        for blob in (layer, config, manifest):
            _add_bytes(tar, f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob)
    return path


def write_docker_archive(path: str, layer_tar: str, ref_name: str) -> str:
    """A docker-archive (what `docker save` writes) at `path` holding one
    image tagged `ref_name`, whose single layer is `layer_tar`."""
    with open(layer_tar, "rb") as f:
        layer = f.read()
    config = _image_config(layer)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
    manifest = _json_bytes([{"Config": config_name, "RepoTags": [ref_name], "Layers": [layer_name]}])
    with tarfile.open(path, "w") as tar:
        _add_bytes(tar, "manifest.json", manifest)
        _add_bytes(tar, config_name, config)
        _add_bytes(tar, layer_name, layer)
    return path


def _descriptor(media_type: str, blob: bytes) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
            "size": len(blob)}


def _json_bytes(value) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _oci_architecture() -> str:
    """The host's architecture in OCI (GOARCH) spelling: engines only run
    images built for their platform."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
