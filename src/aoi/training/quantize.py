"""An 8-bit copy of a bundle's network for serving: about 1.6x faster classification on the CPU.

Static quantisation (onnxruntime's QDQ format: int8 weights per channel, uint8 activations) needs
example inputs to fix each activation's range: the crops of candidates the engine finds on training
pairs, the very inputs serving will see. The float `model.onnx` stays in the bundle: fine-tuning and
any later quantisation start from it; `bundle.json`'s `inference_model` names the graph serving runs.
Check the quantised bundle with `aoi eval` on pairs it was not calibrated on before shipping it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from aoi.data.annotations import AnnotatedPair, DatasetError
from aoi.data.images import read_image
from aoi.detection.bundle import ModelBundle
from aoi.detection.inspector import analyse_pair

INT8_MODEL = "model.int8.onnx"
CALIBRATION_BATCH = 64


class _Crops(CalibrationDataReader):
    def __init__(self, input_name: str, crops: np.ndarray) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: np.ascontiguousarray(crops[i : i + CALIBRATION_BATCH], np.float32)}
            for i in range(0, len(crops), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_bundle(bundle: ModelBundle, crops: np.ndarray, *, max_crops: int = 2048, seed: int = 0) -> ModelBundle:
    """Write `INT8_MODEL` beside the float network, calibrated on (up to `max_crops` of) `crops`, and make it
    the bundle's inference model. Returns the updated bundle (its bundle.json is rewritten)."""
    if crops.ndim != 4 or len(crops) == 0:
        raise DatasetError("quantisation needs candidate crops to calibrate on; none were given")
    if len(crops) > max_crops:
        crops = crops[np.random.default_rng(seed).choice(len(crops), max_crops, replace=False)]
    import onnxruntime as ort

    input_name = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(bundle.onnx_path), str(prepared))
        quantize_static(
            str(prepared),
            str(bundle.path / INT8_MODEL),
            _Crops(input_name, crops),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    quantized = ModelBundle(bundle.path, replace(bundle.meta, inference_model=INT8_MODEL))
    quantized.save_meta()
    return quantized


def crops_of_pairs(bundle: ModelBundle, pairs: Sequence[AnnotatedPair]) -> np.ndarray:
    """The candidate crops the engine finds on `pairs` with the bundle's own settings."""
    found = []
    for pair in pairs:
        analysed = analyse_pair(
            read_image(pair.test_path),
            read_image(pair.template_path),
            bundle.meta.registration,
            bundle.meta.candidates,
        )
        if len(analysed.candidates.crops):
            found.append(analysed.candidates.crops)
    if not found:
        raise DatasetError("the calibration pairs give no candidates to quantise with")
    return np.concatenate(found)
