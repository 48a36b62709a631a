"""`multihome install-cni`: write the plugin executables into a CNI bin dir."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import click

from multihome.cni.version import LATEST
from multihome.paths import write_file_atomic
from multihome.plugins.registry import BUILTIN, DEFAULT_TYPES, MULTUS_NAMES

# The script is written for the interpreter that runs install-cni. `-I -S` skips site
# processing and the environment (faster start, nothing from the caller's PYTHONPATH);
# the paths that site processing would have added are written into the script instead.
# `posix` rather than `os`: the built-in module loads nothing (see multihome.shim).
_TEMPLATE = """#!{python} -IS
# Written by `multihome install-cni`; rerun it after upgrading multihome.
import posix
import sys
{version_fast_path}sys.path[:0] = {paths!r}


def cannot_import(e):
    import json
    sys.stdout.write(json.dumps({{
        "cniVersion": "1.1.0", "code": 999,
        "msg": "multihome cannot be imported by {python}; reinstall it and rerun install-cni",
        "details": f"{{type(e).__name__}}: {{e}}"}}))
    sys.exit(1)


{body}"""

# A built-in type: the shim forwards the call to the daemon (and exits with its reply);
# only when it returns is the plugin package imported, to run the call in-process.
_SHIM_BODY = """try:
    from multihome.shim import forward
except BaseException as e:
    cannot_import(e)
fallback = forward({arg!r})
try:
    from multihome.plugins.exe import main
except BaseException as e:
    cannot_import(e)
main({arg!r}, {versions!r}, fallback.daemon_down)
"""

# A bare plugin module (tests): always in-process.
_MODULE_BODY = """try:
    from multihome.plugins.exe import run_module
except BaseException as e:
    cannot_import(e)
run_module({arg!r}, {versions!r})
"""


# For a host without the package (the DaemonSet copies executables out of its image):
# the shim's own source, which needs only the standard library, and no in-process path.
_STANDALONE_TEMPLATE = """#!{python} -IS
# Written by `multihome install-cni --standalone`: the multihome shim alone, for a host
# without the multihome package. It needs the node's daemon (CNI code 11 without it).
import posix
import sys
{version_fast_path}
{shim_source}

main({arg!r})
"""

DEFAULT_HOST_PYTHON = "/usr/bin/python3"


def _site_paths() -> list[str]:
    """What site processing adds to sys.path for this interpreter (site-packages, .pth)."""
    probe = "import sys, json; print(json.dumps(sys.path))"

    def path_of(flags: str) -> list[str]:
        out = subprocess.run([sys.executable, flags, "-c", probe], capture_output=True,
                             text=True, check=True, cwd="/")
        return [p for p in json.loads(out.stdout) if p]

    bare = set(path_of("-IS"))
    return [p for p in path_of("-I") if p not in bare]


def standalone_text(plugin_type: str, python: str = DEFAULT_HOST_PYTHON) -> str:
    """A built-in type's executable that runs on any Python >= 3.11 without multihome."""
    from multihome import shim

    versions = _supported_versions(BUILTIN[plugin_type])
    with open(shim.__file__, encoding="utf-8") as f:
        source = f.read()
    return _STANDALONE_TEMPLATE.format(python=python, version_fast_path=_version_fast_path(
        versions), shim_source=source, arg=plugin_type, versions=versions)


def _version_fast_path(versions: Sequence[str] | None) -> str:
    """The JSON skel prints for VERSION, as a constant: nothing needs loading for it."""
    if versions is None:
        return ""
    version_json = json.dumps({"cniVersion": LATEST, "supportedVersions": list(versions)})
    return (f'if posix.environ.get(b"CNI_COMMAND") == b"VERSION":\n'
            f"    sys.stdout.write({version_json!r})\n"
            f"    sys.stdout.flush()\n"
            f"    posix._exit(0)\n")


def script_text(*, plugin_type: str | None = None, module: str | None = None,
                extra_paths: Sequence[str] = ()) -> str:
    """The executable for a built-in type, or for any plugin module (tests use that)."""
    if (plugin_type is None) == (module is None):
        raise ValueError("give exactly one of plugin_type and module")
    # A built-in type goes through the shim: the daemon when its socket answers, else
    # in-process exactly like run_module; a bare module (tests) always runs in-process.
    body, arg = ((_SHIM_BODY, plugin_type) if plugin_type is not None
                 else (_MODULE_BODY, str(module)))
    module_name = BUILTIN[plugin_type] if plugin_type is not None else str(module)
    versions = _supported_versions(module_name)
    fast_path = _version_fast_path(versions)
    return _TEMPLATE.format(python=sys.executable, paths=[*extra_paths, *_site_paths()],
                            body=body.format(arg=arg, versions=versions),
                            version_fast_path=fast_path)


def _supported_versions(module: str) -> tuple[str, ...] | None:
    """Read once here so that the executable answers VERSION without importing the plugin.

    None when the module cannot tell (not importable now): the executable then imports it
    on every call and reports the import error as CNI error JSON.
    """
    try:
        plugin = importlib.import_module(module)
    except Exception as e:
        click.echo(f"warning: cannot import plugin module {module} ({type(e).__name__}: {e}); "
                   "its executable will load it at each call", err=True)
        return None
    versions = getattr(plugin, "SUPPORTED_VERSIONS", None)
    if not isinstance(versions, tuple | list) or not all(isinstance(v, str) for v in versions):
        click.echo(f"warning: plugin module {module} has no SUPPORTED_VERSIONS tuple", err=True)
        return None
    return tuple(versions)


def write_executable(dest: str, text: str) -> None:
    """Replace `dest` atomically (never 'text file busy' for a plugin being run)."""
    write_file_atomic(dest, text, 0o755)


def install(bin_dir: str, types: Sequence[str], *,
            standalone_python: str | None = None) -> list[str]:
    """Write one executable per type: run by this environment's Python, or with
    `standalone_python` (the host's interpreter) needing only the standard library."""
    unknown = [t for t in types if t not in BUILTIN]
    if unknown:
        raise click.BadParameter(f"unknown plugin types {unknown}; built-in are "
                                 f"{sorted(BUILTIN)}", param_hint="--types")
    os.makedirs(bin_dir, exist_ok=True)
    written = []
    for plugin_type in types:
        dest = os.path.join(bin_dir, plugin_type)
        write_executable(dest, standalone_text(plugin_type, standalone_python)
                         if standalone_python is not None
                         else script_text(plugin_type=plugin_type))
        written.append(dest)
    return written


@click.command("install-cni")
@click.option("--bin-dir", required=True, type=click.Path(file_okay=False),
              help="CNI bin dir to write the plugin executables into (e.g. /opt/cni/bin).")
@click.option("--types", "types_", default=",".join(DEFAULT_TYPES), show_default=True,
              help="Comma-separated plugin types to install.")
@click.option("--multus-names", is_flag=True,
              help="Also write `multus` and `multus-shim` (Multus' executable names, run by "
                   "multihome's engine), so that the node's 00-multus.conf reaches multihome "
                   "unchanged. They replace Multus' own executables in BIN_DIR.")
@click.option("--standalone", is_flag=True,
              help="Executables that need only the standard library and the node's daemon "
                   "(for a host without multihome: the DaemonSet's init step).")
@click.option("--python", "python", default=DEFAULT_HOST_PYTHON, show_default=True,
              help="The host's interpreter (Python >= 3.11) for --standalone executables.")
def install_cni(bin_dir: str, types_: str, multus_names: bool, standalone: bool,
                python: str) -> None:
    """Write the built-in plugin executables into BIN_DIR."""
    types = [t.strip() for t in types_.split(",") if t.strip()]
    if multus_names:
        types += [t for t in MULTUS_NAMES if t not in types]
    for path in install(bin_dir, types, standalone_python=python if standalone else None):
        click.echo(f"installed {path}")
