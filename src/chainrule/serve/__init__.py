"""HTTP serving of trained runs: ``chainrule serve RUN [RUN ...]``.

``app.create_app`` builds the FastAPI app from models loaded once at start-up (``registry.load_registry``);
``schemas`` holds the request models and limits, ``guards`` the body-size limit and error replies,
``worker`` the thread pool and time limits, ``batching`` the micro-batcher, and ``text``, ``images``,
``forecast`` the model work behind each endpoint; ``command`` is the CLI entry. The web page lives in
``static/``. Nothing here is imported by the rest of the library.
"""
