"""A running service follows its model registry: a promotion or a rollback is served within seconds.

`aoi train --reviews` and `aoi models promote|rollback` write `<data dir>/models/registry.json`. When the
service was started without `--model`, this thread looks at that file every `poll_s`; when it changed
and names another version (None: the bundled default), the bundle is loaded and swapped into the
process's one `TiledInspector`, which the line (uploads, hot folder, camera, demo) inspects through. An
image being inspected finishes with the model it started with; every stored inspection records the
version that judged it. A registry that cannot be read or a bundle that does not load is logged and
the current model keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from aoi.detection.bundle import ModelBundle
from aoi.detection.model_registry import ModelRegistry
from aoi.detection.protocol import InspectorLike
from aoi.detection.tiling import TiledInspector

log = logging.getLogger("aoi.models")

DEFAULT_POLL_S = 2.0


def load_engine(bundle: ModelBundle, processes: int = 0) -> InspectorLike:
    """The engine for `bundle`: in this process's threads (`processes` 0) or in worker processes."""
    if processes > 0:
        from aoi.detection.process_inspector import ProcessInspector

        return ProcessInspector(bundle, processes)
    from aoi.detection.inspector import Inspector

    return Inspector(bundle)


def close_engine(inspector: InspectorLike) -> None:
    """End an engine's worker processes, if it has any, once the images they hold are done."""
    from aoi.detection.process_inspector import ProcessInspector

    if isinstance(inspector, ProcessInspector):
        inspector.close()


class RegistryFollower:
    def __init__(
        self,
        registry: ModelRegistry,
        tiled: TiledInspector,
        poll_s: float = DEFAULT_POLL_S,
        load: Callable[[ModelBundle], InspectorLike] = load_engine,
    ) -> None:
        self.registry = registry
        self.tiled = tiled
        self.poll_s = poll_s
        self.load = load
        self._seen = self._stamp()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.registry.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def check(self) -> bool:
        """Swap in the registry's served model if the registry changed and names another; True if swapped."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        try:
            bundle = self.registry.active_bundle() or ModelBundle.load()
        except Exception as exc:  # a half-edited or damaged registry: keep serving what serves
            log.error("model registry %s: %s; the current model keeps serving", self.registry.path, exc)
            return False
        if bundle.meta.version == self.tiled.model_version:
            return False
        try:
            inspector = self.load(bundle)
        except Exception as exc:
            log.error("model %s does not load (%s); the current model keeps serving", bundle.meta.version, exc)
            return False
        previous = self.tiled.swap(inspector)
        log.info("now serving model %s (was %s)", bundle.meta.version, previous.model_version)
        # the replaced engine's workers end after the images they hold, without holding up this thread
        threading.Thread(target=close_engine, args=(previous,), name="aoi-engine-close", daemon=True).start()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aoi-model-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


__all__ = ["DEFAULT_POLL_S", "RegistryFollower", "close_engine", "load_engine"]
