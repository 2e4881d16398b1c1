"""The peer: pypiserver (a minimal PyPI server, WSGI) serving the bench's wheel, every
read behind HTTP basic auth checked against an htpasswd file, run by uvicorn, the server
software ``registry-tokens serve`` and the baseline run on (uvicorn's WSGI interface: the
app runs in uvicorn's thread pool), with the same ``uvicorn.run`` arguments.

pypiserver on its own (``pypi-server run``) picks a WSGI server it finds installed
(waitress, cheroot, ..., else the standard library's single-threaded ``wsgiref``); the
bench runs it on uvicorn instead so that only the application differs.

    BENCH_PEER_PACKAGES=dir BENCH_PEER_HTPASSWD=file \\
    python -m bench.peer_app --port 9000 --workers 1

:func:`write_htpasswd` writes the password file: one user, its password hashed with
Apache's ``apr1`` MD5-crypt (what ``htpasswd -m`` writes, passlib's ``apr_md5_crypt``).
"""

import argparse
import os
from pathlib import Path
from typing import Any

import uvicorn

# The actions pypiserver asks a password for: all of them, as our registry does for reads.
AUTHENTICATED = ["download", "list", "update"]
HTPASSWD_SCHEME = "apr_md5_crypt"
SERVER_SOFTWARE = 'uvicorn (its WSGI interface, `interface="wsgi"`)'


def write_htpasswd(path: Path, user: str, password: str) -> None:
    from passlib.apache import HtpasswdFile  # type: ignore[import-untyped]

    path.parent.mkdir(parents=True, exist_ok=True)
    htpasswd = HtpasswdFile(str(path), new=True, default_scheme=HTPASSWD_SCHEME)
    htpasswd.set_password(user, password)
    htpasswd.save()


def create_app() -> Any:
    import pypiserver

    return pypiserver.app(
        roots=[Path(os.environ["BENCH_PEER_PACKAGES"]).resolve()],
        password_file=os.environ["BENCH_PEER_HTPASSWD"],
        authenticate=AUTHENTICATED,
        disable_fallback=True,  # never redirect an unknown project to pypi.org
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    arguments = parser.parse_args()
    uvicorn.run(
        "bench.peer_app:create_app",
        factory=True,
        interface="wsgi",
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        log_level=arguments.log_level,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
