"""The capture pipeline: sources -> bounded queues -> inspect workers -> result sink; large-panel tiling."""

from aoi.pipeline.capture import CaptureConfigs, CaptureResolver, CaptureSettings
from aoi.pipeline.line import LinePipeline, PipelineBusy, PipelineConfig, PipelineStopped, StoredInspection, StoreError
from aoi.pipeline.panels import PanelError, inspect_panel, merge_tile_defects, plan_tiles
from aoi.pipeline.protocols import (
    CapturedImage,
    FrameSource,
    InspectorLike,
    Outcome,
    OutcomeStatus,
    ProductRecipe,
    QueuePolicy,
    ResultSink,
    TemplateProvider,
    UnknownProductError,
)
from aoi.pipeline.sinks import MemorySink
from aoi.pipeline.sources import DemoSource, HotFolderSource, SourceError, VideoSource
from aoi.pipeline.templates import CachingTemplateProvider, StaticTemplateProvider

__all__ = [
    "CachingTemplateProvider",
    "CaptureConfigs",
    "CaptureResolver",
    "CaptureSettings",
    "CapturedImage",
    "DemoSource",
    "FrameSource",
    "HotFolderSource",
    "InspectorLike",
    "LinePipeline",
    "MemorySink",
    "Outcome",
    "OutcomeStatus",
    "PanelError",
    "PipelineBusy",
    "PipelineConfig",
    "PipelineStopped",
    "ProductRecipe",
    "QueuePolicy",
    "ResultSink",
    "SourceError",
    "StaticTemplateProvider",
    "StoreError",
    "StoredInspection",
    "TemplateProvider",
    "UnknownProductError",
    "VideoSource",
    "inspect_panel",
    "merge_tile_defects",
    "plan_tiles",
]
