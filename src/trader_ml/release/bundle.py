"""``trader-ml lambda-bundle``: the Lambda deployment zip, the serving folder plus numpy and onnxruntime.

The dependencies come as wheels for the Lambda platform (manylinux, x86_64 or arm64) from the
package registry, or from ``--wheels-dir`` when offline. The code is the whole ``serving/``
folder and the modules it imports, found by reading its imports, so no list of files is kept by
hand: no training code, no torch, no pandas, no pyarrow.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.resources import files
from pathlib import Path

from trader_ml import __version__
from trader_ml.errors import TraderMLError

LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # code plus layers, unzipped
DEPENDENCIES = ("numpy", "onnxruntime")  # onnxruntime's other requirements serve no inference
SERVING_FOLDER = "serving"
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name: the wheel platform's; the first is the default
RUNTIMES = ("3.11", "3.12", "3.13")  # Lambda's Python runtimes; the first is the default
DEFAULT_OUTPUT = "build/lambda.zip"


def platform_tags(arch: str, python: str) -> list[str]:
    """Wheel platforms the runtime's glibc can load: Python 3.11 runs on Amazon Linux 2
    (glibc 2.26, so manylinux2014 only); 3.12 and newer on Amazon Linux 2023 (glibc 2.34)."""
    machine = ARCHES[arch]
    tags = [f"manylinux2014_{machine}"]
    if python != "3.11":
        tags.append(f"manylinux_2_28_{machine}")
    return tags


def requirements(python: str) -> list[str]:
    # On Amazon Linux 2 the newest onnxruntime is 1.16, built against numpy 1.
    return ["numpy<2", "onnxruntime"] if python == "3.11" else list(DEPENDENCIES)


def install_dependencies(target: Path, arch: str, python: str, wheels_dir: str | None) -> None:
    platforms = [arg for tag in platform_tags(arch, python) for arg in ("--platform", tag)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(target),
        *platforms,
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--only-binary=:all:",
        *requirements(python),
    ]
    if wheels_dir:
        command += ["--no-index", "--find-links", wheels_dir]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise TraderMLError(f"cannot get {', '.join(DEPENDENCIES)} wheels for {arch} / Python {python}: {last}")


def _imports(source: str) -> set[str]:
    """The trader_ml modules a source imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] == "trader_ml"}


def _module_file(package: Path, module: str) -> Path | None:
    """The file of a package module; None where the name is something a module defines."""
    parts = module.split(".")[1:]
    if not parts:
        return package / "__init__.py"
    for candidate in (package.joinpath(*parts).with_suffix(".py"), package.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def serving_files(package: Path) -> list[Path]:
    """The serving folder's modules and, transitively, every package module they import, with
    the ``__init__.py`` of each package on the way (importing a module runs them)."""
    pending = sorted((package / SERVING_FOLDER).glob("*.py"))
    files: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in files:
            continue
        files.add(path)
        for parent in path.relative_to(package).parents:
            pending.append(package / parent / "__init__.py")
        for module in _imports(path.read_text()):
            found = _module_file(package, module)
            if found is not None:
                pending.append(found)
    return sorted(p for p in files if p.is_file())


def copy_package(target: Path) -> None:
    source = Path(str(files("trader_ml")))
    for path in serving_files(source):
        destination = target / "trader_ml" / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    # Tools that ask importlib.metadata find the version here, as in a normal install.
    info = target / f"trader_ml-{__version__}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: trader-ml\nVersion: {__version__}\n")


# What a running function never reads. numpy's build tools (distutils, f2py), headers and SIMD
# test module, and onnxruntime's model tools (transformers, quantization, tools) are imported by
# neither package at run time (numpy does import _multiarray_tests, so it stays). The handler's
# bundle test runs a real answer from the pruned folder with nothing else on the path.
PRUNED = (
    "**/__pycache__",
    "**/*.pyi",
    "bin",
    "numpy/**/tests",
    "numpy/_core/include",
    "numpy/core/include",
    "numpy/distutils",
    "numpy/f2py",
    "numpy/*core/_simd.*.so",
    "onnxruntime/datasets",
    "onnxruntime/quantization",
    "onnxruntime/tools",
    "onnxruntime/transformers",
)


def prune(target: Path) -> None:
    for pattern in PRUNED:
        for path in list(target.glob(pattern)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_bundle(
    output: str = DEFAULT_OUTPUT,
    arch: str = next(iter(ARCHES)),
    python: str = RUNTIMES[0],
    wheels_dir: str | None = None,
) -> int:
    """Write the zip; returns its unzipped size in bytes (refused above Lambda's 250 MB)."""
    if arch not in ARCHES:
        raise TraderMLError(f"--arch must be one of {', '.join(ARCHES)}, not {arch!r}")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "bundle"
        install_dependencies(target, arch, python, wheels_dir)
        copy_package(target)
        prune(target)
        size = tree_size(target)
        if size > LAMBDA_LIMIT_BYTES:
            raise TraderMLError(f"the bundle is {size / 2**20:.0f} MB unzipped, over Lambda's 250 MB")
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(target.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo.from_file(path, path.relative_to(target).as_posix())
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
                    with open(path, "rb") as f:
                        archive.writestr(info, f.read())
        partial.replace(out)
    return size
