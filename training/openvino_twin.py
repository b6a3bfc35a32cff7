"""The OpenVINO twin of an exported SavedModel: int8 weights and activations, quantized with NNCF.

On CPUs without AVX-512 VNNI, TFLite's int8 kernels run no faster than its float ones, and OpenVINO runs the same
int8 network ~2x faster (version 5 on a 2-core AVX2-only EPYC: 193 against 87 faces/s at batch 32, 8.5 against 12.1
ms at batch 1). Two things make its accuracy hold:
- NNCF's activation ranges (the mean over calibration crops of each crop's minimum and maximum) are not stretched
  by the few crops whose activations are outliers (see training.quantize), so no screening is needed;
- int8 convolutions on AVX2 sum pairs of u8 x s8 products into 16 bits, which saturate with full 8-bit weights:
  OpenVINO running version 5's own full-int8 TFLite file measured 62.1 % on val against TFLite's 64.1 %. NNCF's
  overflow fix quantizes the weights to 7 bits so that the sums fit (63.9 %, SavedModel 64.0 %).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from training import data as datasets
from training.labels import EMOTIONS
from training.quantize import training_crops

CALIBRATION_CROPS = 300  # NNCF's default subset size; training crops, seeded, never validation data
FOLDER = "openvino"  # inside the version folder: model.xml + model.bin


def write_openvino_twin(model_dir: Path, data: str | None = None, val_data: str | None = None) -> dict[str, Any]:
    """Quantizes ``model_dir``'s SavedModel for OpenVINO, measures it on val and records both in the card; a twin
    that loses more than the TFLite check allows against the SavedModel is removed again. Returns the card."""
    from training.evaluate import evaluate_arrays
    from training.export import INT8_MAX_LOSS, exported_version, int8_acceptable

    try:
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    except ImportError as exc:
        raise datasets.DataError(f"the OpenVINO twin needs openvino and nncf (make install has both): {exc}") from exc
    card, record, val = exported_version(model_dir, "OpenVINO", data, val_data)
    crops = training_crops(record, CALIBRATION_CROPS)
    calibration = nncf.Dataset([crop[None, ..., None] for crop in crops])
    quantized = nncf.quantize(
        ov.convert_model(str(model_dir)),
        calibration,
        subset_size=len(crops),
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE),
    )
    out = model_dir / FOLDER
    shutil.rmtree(out, ignore_errors=True)
    ov.save_model(quantized, str(out / "model.xml"))  # compresses float weights to float16; int8 ones stay int8
    card["runtimes"]["openvino"] = f"{FOLDER}/model.xml"
    card["runtimes"]["openvino_calibration"] = {"crops": len(crops), "overflow_fix": "7-bit weights"}
    card.pop("openvino_rejected", None)
    card["validation"]["openvino"] = evaluate_arrays(model_dir, "openvino", val.images, val.classes, EMOTIONS)
    if not int8_acceptable(card["validation"], "openvino"):
        shutil.rmtree(out)
        for key in ("openvino", "openvino_calibration"):
            card["runtimes"].pop(key)
        rejected = {k: card["validation"][k]["accuracy"] for k in ("savedmodel", "openvino")}
        del card["validation"]["openvino"]
        card["openvino_rejected"] = {"validation_accuracy": rejected, "max_loss": INT8_MAX_LOSS}
    (model_dir / "model_card.json").write_text(json.dumps(card, indent=2))
    return card
