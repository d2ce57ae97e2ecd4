"""Throw-away certificates for TLS tests, made with the ``openssl`` CLI.

:func:`make_tls_files` writes a CA, a server certificate it signed (for the
given subject alternative names), a client certificate it signed, and an
unrelated CA that signed neither (to show verification refusing)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

__all__ = ["TlsFiles", "make_tls_files", "make_ca", "make_signed_cert", "openssl"]

DAYS = "2"
# P-256: made in milliseconds where an RSA key takes a good part of a second
KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


def openssl(*args: str, cwd: str | os.PathLike) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")


def make_ca(d: str | os.PathLike, name: str) -> str:
    """``<d>/<name>.pem`` (and ``.key``): a self-signed CA; returns the .pem path."""
    openssl("req", "-x509", *KEY, "-nodes", "-days", DAYS, "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)
    return os.path.join(d, f"{name}.pem")


def make_signed_cert(d: str | os.PathLike, name: str, ca: str, *, cn: str, san: str | None = None,
                     usage: str | None = None) -> tuple[str, str]:
    """``<d>/<name>.pem`` and ``.key`` signed by CA ``<d>/<ca>.pem``;
    ``san`` e.g. ``"DNS:localhost,IP:127.0.0.1"``, ``usage`` an
    extendedKeyUsage value. Returns (cert, key) paths."""
    ext = [f"subjectAltName={san}"] if san else []
    if usage:
        ext.append(f"extendedKeyUsage={usage}")
    ext_file = os.path.join(d, f"{name}.ext")
    with open(ext_file, "w") as f:
        f.write("\n".join(ext) + "\n")
    openssl("req", *KEY, "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", DAYS, "-extfile", ext_file, "-out", f"{name}.pem", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


@dataclass(frozen=True)
class TlsFiles:
    """Paths (PEM). ``ca`` signed the server and client certificates;
    ``other_ca`` signed nothing here."""
    dir: str
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str


def make_tls_files(d: str | os.PathLike, san: str = "IP:127.0.0.1,DNS:localhost") -> TlsFiles:
    """A CA, a server certificate for ``san``, a client certificate and an
    unrelated CA, all in ``d``. The server certificate serves both ways
    (serverAuth, clientAuth): a Redis node presents it to the nodes it
    connects to as well."""
    d = os.fspath(d)
    ca = make_ca(d, "ca")
    other_ca = make_ca(d, "other-ca")
    server_cert, server_key = make_signed_cert(d, "server", "ca", cn=san.split(",")[0].split(":", 1)[1],
                                               san=san, usage="serverAuth,clientAuth")
    client_cert, client_key = make_signed_cert(d, "client", "ca", cn="levee-client", usage="clientAuth")
    return TlsFiles(dir=d, ca=ca, server_cert=server_cert, server_key=server_key,
                    client_cert=client_cert, client_key=client_key, other_ca=other_ca)
