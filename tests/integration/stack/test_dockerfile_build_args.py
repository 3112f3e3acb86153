"""The Dockerfile's build arguments, checked without a Docker engine.

``EXTRA_CA_CERT`` lets a build behind a TLS-intercepting proxy reach PyPI: its ``RUN`` step is run
here as ``/bin/sh -c`` runs it in the builder (with ``/etc`` moved under a temporary folder), and
the real pip then downloads a wheel from a local HTTPS index whose certificate only that CA signs.
``GIT_COMMIT`` becomes the runs' code version and the image's revision label.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import os
import re
import ssl
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.tracking import CODE_VERSION_ENV
from tests.integration.stack.compose import DOCKERFILE

pytestmark = pytest.mark.integration

CA_STEP_PATHS = ("/etc/pip-extra-ca.pem", "/etc/pip-ca-bundle.pem", "/etc/pip.conf")


def instructions() -> list[str]:
    """Dockerfile instructions as the builder reads them: continuations joined, comments gone."""
    text = re.sub(r"\\\n", "", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def stages() -> dict[str, list[str]]:
    """The instructions of each stage, by stage name."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in instructions():
        if line.startswith("FROM "):
            current = found.setdefault(line.split()[-1], [])
        current.append(line)
    return found


def ca_step(root: Path) -> str:
    """The builder's EXTRA_CA_CERT step, writing under ``root`` instead of ``/``."""
    builder = stages()["builder"]
    step = builder[builder.index('ARG EXTRA_CA_CERT=""') + 1]
    assert step.startswith("RUN ")
    script = step.removeprefix("RUN ")
    for path in CA_STEP_PATHS:
        assert path in script, f"the step no longer writes {path}: update this test"
    moved = script.replace("/etc/", f"{root}/etc/").replace("/opt/venv/bin/python", sys.executable)
    # Never let a missed path touch this machine's /etc.
    assert moved.count("/etc/") == moved.count(f"{root}/etc/")
    (root / "etc").mkdir(parents=True, exist_ok=True)
    return moved


def run_ca_step(root: Path, value: str) -> subprocess.CompletedProcess[str]:
    """Run the step with ``EXTRA_CA_CERT=value``, as the builder's shell would."""
    env = {"PATH": os.environ["PATH"], "EXTRA_CA_CERT": value}
    return subprocess.run(
        ["/bin/sh", "-c", ca_step(root)], env=env, capture_output=True, text=True, check=False
    )


# --- a local PyPI behind a certificate that only a test CA signs ---------------------------------


@dataclass(frozen=True)
class Index:
    url: str
    ca_pem: str


def _certificates(folder: Path) -> tuple[str, Path, Path]:
    """A CA (PEM text) and a server certificate and key for 127.0.0.1 that it signs."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test proxy CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file


def _publish_wheel(root: Path) -> None:
    """A one-module wheel ``tinypkg 1.0`` and its PEP 503 index page."""
    packages = root / "packages"
    packages.mkdir()
    wheel = packages / "tinypkg-1.0-py3-none-any.whl"
    info = "tinypkg-1.0.dist-info"
    files = {
        "tinypkg/__init__.py": "",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    page = root / "simple" / "tinypkg"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        f'<html><body><a href="/packages/{wheel.name}">{wheel.name}</a></body></html>\n'
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """An HTTPS package index on a free loopback port, its certificate signed by a test CA."""
    folder = tmp_path_factory.mktemp("https-index")
    ca_pem, cert_file, key_file = _certificates(folder)
    site = folder / "site"
    site.mkdir()
    _publish_wheel(site)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(site))
    )
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Index(f"https://127.0.0.1:{server.server_address[1]}/simple/", ca_pem)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def pip_download(index: Index, config: Path, into: Path) -> subprocess.CompletedProcess[str]:
    """``pip download tinypkg`` from ``index`` with ``config`` as pip's configuration file.

    The environment is a build's: none of this machine's proxy or CA-bundle variables
    (requests lets ``REQUESTS_CA_BUNDLE`` override pip's ``cert``).
    """
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(into.parent),
        "PIP_CONFIG_FILE": str(config),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_RETRIES": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
         "--index-url", index.url, "--dest", str(into), "tinypkg"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# --- the tests -----------------------------------------------------------------------------------


def test_pip_in_the_builder_trusts_the_given_ca(index: Index, tmp_path: Path) -> None:
    """With EXTRA_CA_CERT, pip downloads from a server whose certificate that CA signed."""
    done = run_ca_step(tmp_path, index.ca_pem)
    assert done.returncode == 0, done.stderr
    config = tmp_path / "etc/pip.conf"
    assert config.read_text() == f"[global]\ncert = {tmp_path}/etc/pip-ca-bundle.pem\n"
    bundle = (tmp_path / "etc/pip-ca-bundle.pem").read_text()
    assert bundle.rstrip().endswith(index.ca_pem.rstrip())
    assert bundle.count("BEGIN CERTIFICATE") > 10  # pip's own bundle is kept: PyPI still works
    downloaded = pip_download(index, config, tmp_path / "wheels")
    assert downloaded.returncode == 0, downloaded.stdout + downloaded.stderr
    assert (tmp_path / "wheels/tinypkg-1.0-py3-none-any.whl").is_file()


def test_without_the_argument_the_step_writes_nothing_and_pip_refuses_the_proxy(
    index: Index, tmp_path: Path
) -> None:
    """The default builds as before: no pip configuration, so the unknown CA is not trusted."""
    done = run_ca_step(tmp_path, "")
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "etc").iterdir()) == []
    refused = pip_download(index, tmp_path / "etc/pip.conf", tmp_path / "wheels")
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stdout + refused.stderr


def test_a_value_that_is_not_a_pem_certificate_stops_the_build_and_says_why(
    tmp_path: Path,
) -> None:
    """A path or a typo instead of PEM text fails the step with the rule, not a TLS error later."""
    done = run_ca_step(tmp_path, "proxy-ca.pem")
    assert done.returncode == 1
    assert "EXTRA_CA_CERT must be PEM text" in done.stderr
    assert list((tmp_path / "etc").iterdir()) == []


def test_the_ca_is_the_builders_alone_and_declared_before_any_download() -> None:
    """Only the builder sees EXTRA_CA_CERT, and every pip call of the builder comes after it."""
    by_stage = stages()
    builder, runtime = by_stage["builder"], by_stage["runtime"]
    assert not any("EXTRA_CA_CERT" in line or "pip-ca-bundle" in line for line in runtime)
    declared = builder.index('ARG EXTRA_CA_CERT=""')
    pip_calls = [i for i, line in enumerate(builder) if re.search(r"\bpip (install|wheel)\b", line)]
    assert pip_calls
    assert min(pip_calls) > declared


def test_git_commit_becomes_the_code_version_and_the_revision_label_last() -> None:
    """GIT_COMMIT sets MLPLAT_CODE_VERSION and the OCI revision, after every file layer."""
    runtime = stages()["runtime"]
    declared = runtime.index('ARG GIT_COMMIT=""')
    assert f'ENV {CODE_VERSION_ENV}="${{GIT_COMMIT}}"' in runtime[declared:]
    labels = " ".join(line for line in runtime[declared:] if line.startswith("LABEL "))
    assert 'org.opencontainers.image.revision="${GIT_COMMIT}"' in labels
    # A new commit must not rebuild the user, the virtualenv or the scripts.
    assert not any(line.startswith(("RUN ", "COPY ")) for line in runtime[declared:])
    assert any("GIT_PYTHON_REFRESH=quiet" in line for line in runtime if line.startswith("ENV "))
