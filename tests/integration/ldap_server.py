"""A real OpenLDAP slapd for the Active Directory tests, on 127.0.0.1 only.

`LdapServer.start(directory)` writes a test CA and a server certificate (the `openssl`
command), a `slapd.conf` (mdb database, the memberof overlay, the AD test schema in
tests/data/ldap/ad.schema), starts slapd in the foreground on two free ports (ldap:// with
StartTLS, and ldaps://), and loads tests/data/ldap/seed.ldif over LDAP with `ldapmodify`,
so that the memberof overlay fills in memberOf. `stop()` ends it. Nothing here touches
the system's slapd service or its configuration.

`require(*programs)` skips the test when a program is missing (slapd, ldapmodify, the
openssl command), or fails it when the environment variable FIDO_REQUIRE_SERVICES is 1
(CI installs slapd and ldap-utils).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Final

import pytest

DATA: Final = Path(__file__).resolve().parent.parent / "data" / "ldap"
SUFFIX: Final = "DC=corp,DC=example"
ROOT_DN: Final = f"CN=admin,{SUFFIX}"
ROOT_PASSWORD: Final = "Root-Test-Pa55"  # the test directory's manager, never given to fido
BIND_DN: Final = f"CN=fido,OU=Service,{SUFFIX}"
BIND_PASSWORD: Final = "Fido-Bind-Pa55!word"  # as in seed.ldif
HOST: Final = "127.0.0.1"

_SBIN: Final = ("/usr/sbin", "/usr/local/sbin", "/usr/local/libexec", "/usr/libexec")
_MODULES: Final = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")
_SCHEMAS: Final = ("/etc/ldap/schema", "/etc/openldap/schema")


def find_program(name: str) -> str | None:
    """The path of a program on PATH or in the usual sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def require(*programs: str) -> dict[str, str]:
    """The paths of `programs`; skip the test without them (fail in CI)."""
    found = {name: find_program(name) for name in programs}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        message = f"{', '.join(missing)} not installed (Debian: slapd, ldap-utils, openssl)"
        if os.environ.get("FIDO_REQUIRE_SERVICES") == "1":
            pytest.fail(f"FIDO_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return {name: path for name, path in found.items() if path is not None}


def _first_dir(candidates: tuple[str, ...], marker: str) -> Path:
    for candidate in candidates:
        if (Path(candidate) / marker).exists():
            return Path(candidate)
    pytest.fail(f"cannot find {marker} in {', '.join(candidates)}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# -- certificates ---------------------------------------------------------------------------

_CA_EXTENSIONS: Final = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {name}
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_EXTENSIONS: Final = """\
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def _openssl(*args: str, cwd: Path) -> None:
    openssl = require("openssl")["openssl"]
    subprocess.run(  # noqa: S603 - our own arguments
        [openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=30
    )


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA (CA:TRUE, keyCertSign: what Python 3.13's strict checks want)."""
    config = directory / f"{name}.cnf"
    config.write_text(_CA_EXTENSIONS.format(name=f"fido test {name}"), encoding="utf-8")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-sha256", "-days", "2", "-config", config.name, "-extensions", "ext",
        "-keyout", key.name, "-out", cert.name,
        cwd=directory,
    )  # fmt: skip
    return cert, key


def make_server_cert(directory: Path, ca: tuple[Path, Path], name: str) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost, signed by `ca`."""
    key, csr, cert = (directory / f"{name}{s}" for s in (".key", ".csr", ".pem"))
    extensions = directory / f"{name}.ext"
    extensions.write_text(_SERVER_EXTENSIONS, encoding="utf-8")
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=localhost", "-keyout", key.name, "-out", csr.name,
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-sha256",
        "-extfile", extensions.name, "-extensions", "ext", "-out", cert.name,
        cwd=directory,
    )  # fmt: skip
    return cert, key


# -- slapd ----------------------------------------------------------------------------------

_CONFIG: Final = """\
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
include {ad_schema}

pidfile {run}/slapd.pid
argsfile {run}/slapd.args
modulepath {modules}
moduleload back_mdb
moduleload memberof

TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}

sizelimit 500

database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {run}/db

overlay memberof

access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""


class LdapServer:
    """One slapd process, its files in a directory of its own.

    Attributes:
        ldap_url: `ldap://127.0.0.1:<port>` (plain, or StartTLS).
        ldaps_url: `ldaps://127.0.0.1:<port>`.
        ca_file: The PEM file of the CA that signed the server's certificate.
        other_ca_file: The PEM file of another CA, that signed nothing the server shows.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.programs = require("slapd", "ldapmodify", "openssl")
        self.process: subprocess.Popen[bytes] | None = None
        self.ldap_port = free_port()
        self.ldaps_port = free_port()
        while self.ldaps_port == self.ldap_port:
            self.ldaps_port = free_port()
        self.ldap_url = f"ldap://{HOST}:{self.ldap_port}"
        self.ldaps_url = f"ldaps://{HOST}:{self.ldaps_port}"
        self.ca_file = directory / "ca.pem"
        self.other_ca_file = directory / "other-ca.pem"
        self.log = directory / "slapd.log"

    def start(self) -> None:
        """Make the certificates and the configuration, start slapd, load the seed."""
        ca = make_ca(self.directory, "ca")
        make_ca(self.directory, "other-ca")
        cert, key = make_server_cert(self.directory, ca, "server")
        (self.directory / "db").mkdir()
        config = self.directory / "slapd.conf"
        config.write_text(
            _CONFIG.format(
                schemas=_first_dir(_SCHEMAS, "inetorgperson.schema"),
                ad_schema=DATA / "ad.schema",
                modules=_first_dir(_MODULES, "memberof.la"),
                run=self.directory,
                ca=ca[0],
                cert=cert,
                key=key,
                suffix=SUFFIX,
                root_dn=ROOT_DN,
                root_password=ROOT_PASSWORD,
            ),
            encoding="utf-8",
        )
        command = [self.programs["slapd"], "-f", str(config), "-h"]
        command += [f"{self.ldap_url}/ {self.ldaps_url}/", "-d", "none"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own arguments
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_ready()
        subprocess.run(  # noqa: S603
            [self.programs["ldapmodify"], "-x", "-a", "-H", self.ldap_url, "-D", ROOT_DN,
             "-w", ROOT_PASSWORD, "-f", str(DATA / "seed.ldif")],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 10
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text(encoding="utf-8", errors="replace")
                self.process = None
                pytest.fail(f"slapd did not start:\n{output[-3000:]}")
            try:
                for port in (self.ldap_port, self.ldaps_port):
                    socket.create_connection((HOST, port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        self.stop()
        pytest.fail("slapd did not listen within 10 s")

    def stop(self) -> None:
        """End slapd (SIGTERM, then SIGKILL after 5 s)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
