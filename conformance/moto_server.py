"""Run moto's S3 in server mode on 127.0.0.1 (an ephemeral port), optionally over TLS.

    python conformance/moto_server.py [--tls-cert chain.pem --tls-key key.pem]

Prints `moto: listening on http(s)://127.0.0.1:PORT` on stderr once the socket is bound, like
`strait serve` does, so the fixture can start both the same way. This is moto's own
ThreadedMotoServer/`moto_server` application (DomainDispatcherApplication + MotoRequestHandler),
only bound to port 0 and given an SSL context.
"""

from __future__ import annotations

import argparse
import ssl
import sys


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()

    from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                               create_backend_app)
    from werkzeug.serving import make_server

    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    app = DomainDispatcherApplication(create_backend_app)
    srv = make_server(args.host, 0, app, threaded=True, request_handler=MotoRequestHandler,
                      ssl_context=ctx)
    scheme = "https" if ctx else "http"
    print(f"moto: listening on {scheme}://{args.host}:{srv.server_port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
