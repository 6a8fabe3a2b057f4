"""Names -> factories for sources and sinks, filled explicitly (no import-time side effects).

`default_source_registry()` builds a fresh registry each call; the service adds its own entries
(e.g. the database sink) to the registry it builds, never to a global one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aoi.pipeline.protocols import FrameSource, ResultSink
from aoi.pipeline.sinks import MemorySink
from aoi.pipeline.sources import DemoSource, HotFolderSource, VideoSource

T = TypeVar("T")


class UnknownComponentError(KeyError):
    """A source or sink name that no factory is registered under."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T]) -> None:
        if name in self._factories:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._factories[name] = factory

    def create(self, name: str, /, *args: Any, **options: Any) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownComponentError(f"unknown {self.kind} {name!r}; registered: {known}") from None
        return factory(*args, **options)

    def names(self) -> list[str]:
        return sorted(self._factories)


def default_source_registry() -> Registry[FrameSource]:
    registry: Registry[FrameSource] = Registry("source")
    registry.register("hotfolder", HotFolderSource)
    registry.register("video", VideoSource)
    registry.register("demo", DemoSource)
    return registry


def default_sink_registry() -> Registry[ResultSink]:
    registry: Registry[ResultSink] = Registry("sink")
    registry.register("memory", MemorySink)
    return registry
