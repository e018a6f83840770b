"""Generates canopy/v1/*_pb2*.py (and .pyi type stubs) from the repository's proto before packaging.

The proto stays the one source of the contract: nothing generated is committed. The build runs in the
repository (pip builds in-tree), where the proto is two folders up.
"""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO_FILE = PROTO_ROOT / "canopy" / "v1" / "canopy.proto"


def generate_stubs() -> None:
    from grpc_tools import protoc  # a build requirement (pyproject.toml)
    import grpc_tools

    if not PROTO_FILE.is_file():
        raise SystemExit(f"canopy-client: {PROTO_FILE} not found; build the client from a checkout of the repository")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out = HERE / "canopy" / "v1"
    out.mkdir(parents=True, exist_ok=True)
    (out / "__init__.py").write_text('"""Stubs generated from proto/canopy/v1/canopy.proto at build time."""\n')
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={HERE}",
        f"--pyi_out={HERE}",
        f"--grpc_python_out={HERE}",
        str(PROTO_FILE),
    ])
    if status != 0:
        raise SystemExit(f"canopy-client: protoc failed on {PROTO_FILE} (status {status})")


# Every setuptools step (metadata, wheel, editable) needs the generated package in place.
generate_stubs()
setup()
