"""`python -m chalicelib.local.http_server PORT`: the Chalice app's routes on 127.0.0.1,
served by Chalice's own local gateway (threaded), as `chalice local` would."""

from __future__ import annotations

import importlib
import os
import sys


def main() -> None:
    from chalice.config import Config
    from chalice.local import create_local_server

    sys.path.insert(0, os.getcwd())
    port = int(sys.argv[1])
    app = importlib.import_module(os.environ.get("SEGMENTS_APP_MODULE", "app")).app
    config = Config.create(chalice_stage="local", chalice_app=app, app_name=app.app_name)
    server = create_local_server(app, config, "127.0.0.1", port)
    server.serve_forever()


if __name__ == "__main__":
    main()
