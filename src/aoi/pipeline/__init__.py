"""The capture pipeline: sources -> bounded queues -> inspect workers -> result sink.

Large panels are tiled by the inspector it is given (`aoi.detection.tiling.TiledInspector`).
"""

from aoi.pipeline.capture import CaptureConfigs, CaptureResolver, CaptureSettings
from aoi.pipeline.line import LinePipeline, PipelineBusy, PipelineConfig, PipelineStopped, StoreError, UploadReceipt
from aoi.pipeline.protocols import (
    CapturedImage,
    FrameSource,
    Outcome,
    OutcomeStatus,
    ProductRecipe,
    QueuePolicy,
    ResultSink,
    TemplateProvider,
    UnknownProductError,
    UploadExtras,
)
from aoi.pipeline.sinks import MemorySink
from aoi.pipeline.sources import DemoSource, HotFolderSource, SourceError, VideoSource
from aoi.pipeline.template_origin import InlineTemplate, ProductRef, ProductTemplate, TemplateFile, TemplateOrigin
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
    "InlineTemplate",
    "LinePipeline",
    "MemorySink",
    "Outcome",
    "OutcomeStatus",
    "PipelineBusy",
    "PipelineConfig",
    "PipelineStopped",
    "ProductRecipe",
    "ProductRef",
    "ProductTemplate",
    "QueuePolicy",
    "ResultSink",
    "SourceError",
    "StaticTemplateProvider",
    "StoreError",
    "TemplateFile",
    "TemplateOrigin",
    "TemplateProvider",
    "UnknownProductError",
    "UploadExtras",
    "UploadReceipt",
    "VideoSource",
]
