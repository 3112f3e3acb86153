"""Stand-ins for the stack's registry images, built from Debian packages (see ``standins/``).

Where the stack test runs, no container registry is reachable, so ``postgres``,
``prom/prometheus``, ``prom/alertmanager`` and the Dockerfile's ``python`` base cannot be
pulled. Each is built here instead, tagged exactly as ``docker-compose.yml`` and the Dockerfile
name it, on a Debian ``debootstrap --variant=minbase`` root filesystem imported with
``docker import``; ``standins/README.md`` says what each one keeps of the official image.

An image already present under that tag without the stand-in label is a real one (pulled
earlier): it is used as it is and never overwritten. A stand-in is rebuilt only when the digest
of its build inputs (its folder's files and the base's digest), kept as a label on the image,
changes; so a second local run builds nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import missing, require_tool
from tests.integration.stack.compose import DOCKERFILE
from tests.integration.stack.engine import docker

STANDINS = Path(__file__).resolve().parent / "standins"
DIGEST_LABEL = "org.mlplat.stack-test.stand-in-digest"
"""Label holding the digest of a stand-in's build inputs; its presence marks a stand-in."""

SUITE = "bookworm"
BASE_TAG = f"mlplat-stack-test/debian-minbase:{SUITE}"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "MLPLAT_STACK_DEBIAN_MIRROR"
"""Overrides the Debian mirror debootstrap uses (default: the one apt uses on this machine)."""

FOLDERS = {
    "python": "python",
    "postgres": "postgres",
    "prom/prometheus": "prometheus",
    "prom/alertmanager": "alertmanager",
}
"""Image name (as the compose file and the Dockerfile write it) -> folder under ``standins/``."""

BUILD_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Outcome:
    """What became of one image.

    Attributes:
        tag: The image reference.
        action: ``built``, ``cached`` (a stand-in with the same digest) or ``real`` (a pulled
            image found under the tag, used as is).
        seconds: Time spent on it.
    """

    tag: str
    action: str
    seconds: float


def python_base_image() -> str:
    """The Dockerfile's base image (``ARG PYTHON_IMAGE=...``)."""
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert match is not None, "the Dockerfile no longer declares ARG PYTHON_IMAGE"
    return match.group(1)


def image_name(reference: str) -> str:
    """``prom/prometheus:v2.53.2`` -> ``prom/prometheus``."""
    name = reference.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here (deb822 ``.sources`` or one-line lists), else the default."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for stanza in path.read_text(errors="replace").split("\n\n"):
            fields = dict(
                line.split(":", 1)
                for line in stanza.splitlines()
                if re.match(r"^[A-Za-z-]+:", line)
            )
            suites = fields.get("Suites", "").split()
            if SUITE in suites and "main" in fields.get("Components", "").split():
                return fields.get("URIs", DEFAULT_MIRROR).split()[0]
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))]:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                match = re.match(
                    r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s+.*\bmain\b", line
                )
                if match:
                    return match.group(1)
    return DEFAULT_MIRROR


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:32]


def folder_digest(folder: Path, base: str) -> str:
    """The digest of a stand-in's build inputs: every file of its folder, and the base's digest."""
    parts = [base.encode()]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(folder)).encode(), path.read_bytes()]
        parts.append(b"x" if os.access(path, os.X_OK) else b"-")
    return _digest(*parts)


def label(docker_bin: str, tag: str) -> str | None:
    """The stand-in digest label of ``tag``: ``None`` if absent, ``""`` for a real image."""
    done = docker(docker_bin, "image", "inspect", "--format",
                  f'{{{{index .Config.Labels "{DIGEST_LABEL}"}}}}', tag)  # fmt: skip
    if done.returncode != 0:
        return None
    value = done.stdout.strip()
    return "" if value in {"", "<no value>"} else value


def ensure_base(docker_bin: str, log: Path) -> tuple[str, Outcome]:
    """The minbase root filesystem as an image; returns its digest and what was done."""
    started = time.monotonic()
    mirror = apt_mirror()
    digest = _digest(SUITE.encode(), b"minbase", mirror.encode())
    if label(docker_bin, BASE_TAG) == digest:
        return digest, Outcome(BASE_TAG, "cached", time.monotonic() - started)
    debootstrap = require_tool("debootstrap")
    if os.geteuid() != 0:
        missing("debootstrap must run as root to build the stand-ins' base image")
    rootfs = Path(tempfile.mkdtemp(prefix="mlplat-minbase-"))
    try:
        with log.open("ab") as out:
            subprocess.run(
                [debootstrap, "--variant=minbase", SUITE, str(rootfs), mirror],
                stdout=out, stderr=subprocess.STDOUT, check=True, timeout=BUILD_TIMEOUT_S,
            )  # fmt: skip
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(
                [docker_bin, "import", "--change", f"LABEL {DIGEST_LABEL}={digest}",
                 "--change", 'CMD ["bash"]', "-", BASE_TAG],
                stdin=tar.stdout, stdout=out, stderr=subprocess.STDOUT, check=True,
                timeout=BUILD_TIMEOUT_S,
            )  # fmt: skip
            assert tar.wait(timeout=60) == 0, "tar of the root filesystem failed"
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return digest, Outcome(BASE_TAG, "built", time.monotonic() - started)


def ensure_standin(docker_bin: str, tag: str, base_digest: str, log: Path) -> Outcome:
    """Build the stand-in for ``tag`` unless a real image or an up-to-date stand-in has it."""
    started = time.monotonic()
    folder = STANDINS / FOLDERS[image_name(tag)]
    digest = folder_digest(folder, base_digest)
    found = label(docker_bin, tag)
    if found == "":
        return Outcome(tag, "real", time.monotonic() - started)
    if found == digest:
        return Outcome(tag, "cached", time.monotonic() - started)
    with log.open("ab") as out:
        out.write(f"\n=== {tag} from {folder}\n".encode())
        out.flush()
        subprocess.run(
            [docker_bin, "build", "--build-arg", f"BASE={BASE_TAG}",
             "--label", f"{DIGEST_LABEL}={digest}", "-t", tag, str(folder)],
            stdout=out, stderr=subprocess.STDOUT, check=True, timeout=BUILD_TIMEOUT_S,
            # The classic builder: Debian's docker.io ships no buildx, and it needs none here.
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
    return Outcome(tag, "built", time.monotonic() - started)


def ensure_standins(docker_bin: str, images: Mapping[str, str], log: Path) -> list[Outcome]:
    """Make every registry image the stack needs available; returns what was done to each.

    Args:
        docker_bin: The ``docker`` client.
        images: Service (or ``dockerfile-base``) -> image reference, for the registry images.
        log: Build output goes here.
    """
    unknown = {ref for ref in images.values() if image_name(ref) not in FOLDERS}
    assert not unknown, f"no stand-in for {sorted(unknown)}: add one under {STANDINS}"
    outcomes: list[Outcome] = []
    missing_tags = [ref for ref in images.values() if label(docker_bin, ref) != ""]
    if not missing_tags:
        return [Outcome(ref, "real", 0.0) for ref in images.values()]
    base_digest, base = ensure_base(docker_bin, log)
    outcomes.append(base)
    for reference in sorted(set(images.values())):
        outcomes.append(ensure_standin(docker_bin, reference, base_digest, log))
    return outcomes
