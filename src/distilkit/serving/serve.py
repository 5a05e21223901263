"""`distilkit serve`: load the model (a bad path fails here, in one line), then run the app on uvicorn.

uvicorn handles SIGTERM and Ctrl-C gracefully: it stops accepting connections, lets requests in flight finish
(up to --graceful-timeout), then runs the app's shutdown, which drains the batcher.
"""

from __future__ import annotations

from distilkit.errors import DistilkitError
from distilkit.serving.options import ServeConfig


def serve(cfg: ServeConfig, resolved: dict | None = None) -> None:
    import uvicorn

    from distilkit.serving.app import check_config, create_app
    from distilkit.serving.engine import load_engine

    check_config(cfg)
    if not 0 <= cfg.port <= 65535:
        raise DistilkitError(f"--port {cfg.port}: must be between 0 and 65535")
    engine = load_engine(cfg.model, cfg.backend, cfg.max_length, cfg.top_k)
    engine.warm_up()  # a model that cannot answer (NaN scores, a broken graph) fails here, in one line
    app = create_app(cfg, engine)
    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level=cfg.log_level,
        timeout_graceful_shutdown=cfg.graceful_timeout,
        access_log=cfg.log_level == "debug",
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; the server already shut down cleanly
        pass
    except SystemExit as exc:  # uvicorn exits on startup failures (port in use, ...) after logging the reason
        raise DistilkitError(
            f"the server could not start on {cfg.host}:{cfg.port} (see the log above); "
            "pick another --port or stop what uses it"
        ) from exc
