"""HTTP serving of trained runs: ``chainrule serve RUN [RUN ...]`` (the CLI entry is ``chainrule.cli.serve``).

``app.create_app`` builds the FastAPI app from models loaded once at start-up (``registry.load_registry``);
``schemas`` holds the request models and limits, ``guards`` the body-size limit and error replies,
``worker`` the thread pool, time limits and cancellation, ``memory`` the per-request memory estimates,
``admission`` the memory budget and forecast slots, ``batching`` the micro-batcher, ``hosts`` the Host-header
allow-list, and ``text``, ``images``, ``forecast`` the model work behind each endpoint. ``server`` runs the app
under uvicorn with the connection guards of ``connections`` (read deadlines, a connection limit) and the
rate-limited log lines of ``logs``. The web page lives in ``static/``. Nothing here is imported by the rest of
the library.
"""
