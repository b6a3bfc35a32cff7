"""python -m training: retrain the classifier and package it (the verbs and their options: training.options)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.options import parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from training.data import DataError

    try:
        if args.verb == "train":
            return _train(args)
        if args.verb == "recalibrate":
            from training.batchnorm import recalibrate_run

            recalibrate_run(Path(args.work_dir), args.crops)
            return 0
        if args.verb == "finish":
            from training.finish import finish_run

            record = finish_run(Path(args.work_dir), args.data, args.crops)
            print(f"finished {args.work_dir}: val accuracy {record['validation']['accuracy']:.4f}; export it next")
            return 0
        if args.verb == "average":
            return _average(args)
        if args.verb == "export":
            return _export(args)
        if args.verb == "quantize":
            return _quantize(args)
        if args.verb == "openvino":
            return _openvino(args)
        return _evaluate(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    # Options are checked before TensorFlow is imported and the data read: a mistake costs no wait.
    if not 0 <= args.ema_momentum < 1:
        print(f"error: --ema-momentum must be in [0, 1), got {args.ema_momentum}", file=sys.stderr)
        return 2
    if args.reset_last_stage and not args.init_weights:
        print("error: --reset-last-stage resets part of --init-weights, and none was given", file=sys.stderr)
        return 2
    if args.zero_init_residual and (args.init_weights or args.weights):
        print(
            "error: --zero-init-residual sets how a network from scratch starts; it cannot go with --init-weights "
            "or --weights",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.teacher_weight <= 1:
        print(f"error: --teacher-weight must be in (0, 1], got {args.teacher_weight}", file=sys.stderr)
        return 2
    from training.teacher import check_teacher

    for model_dir in args.teachers or []:
        check_teacher(Path(model_dir).expanduser(), args.image_size)  # a DataError: exit 2 with its message
    from training.train import TrainConfig, train

    cfg = TrainConfig.known(vars(args))
    record = train(cfg)
    print(f"validation accuracy {record['validation']['accuracy']:.4f} -> {cfg.run_dir}", file=sys.stderr)
    if not args.no_export:
        args.work_dir = str(cfg.run_dir)
        return _export(args)
    return 0


def _average(args: argparse.Namespace) -> int:
    from training.average import average_runs

    record = average_runs(args.sources, args.work_dir, args.coefficients, args.data, args.crops)
    flip = record["validation_flip_averaged"]["accuracy"]
    print(
        f"averaged {len(args.sources)} runs into {args.work_dir}: val accuracy {record['validation']['accuracy']:.4f} "
        f"({flip:.4f} flip-averaged); export it next",
        file=sys.stderr,
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from training.export import export

    out = export(
        Path(args.work_dir),
        args.model_dir,
        args.name,
        args.version,
        tflite=args.tflite,
        quantization=args.tflite_quantization,
        flip_average=args.flip_average,
        val_data=args.export_val_data,
    )
    print(f"exported {out}", file=sys.stderr)
    return _write_openvino(out, None, args.export_val_data) if args.openvino else 0


def _openvino(args: argparse.Namespace) -> int:
    if not (args.model / "model_card.json").is_file():
        print(f"error: {args.model} is not an exported model version (no model_card.json)", file=sys.stderr)
        return 2
    return _write_openvino(args.model, args.data, args.export_val_data)


def _write_openvino(model: Path, data: str | None, val_data: str | None) -> int:
    from training.openvino_twin import write_openvino_twin

    card = write_openvino_twin(model, data, val_data)
    saved = card["validation"]["savedmodel"]["accuracy"]
    if "openvino_rejected" in card:
        lost = card["openvino_rejected"]["validation_accuracy"]["openvino"]
        print(
            f"OpenVINO twin measured {lost:.4f} on val against the SavedModel's {saved:.4f}: not kept", file=sys.stderr
        )
        return 1
    kept = card["validation"]["openvino"]["accuracy"]
    print(
        f"{model}/{card['runtimes']['openvino']}: val accuracy {kept:.4f} (SavedModel {saved:.4f})",
        file=sys.stderr,
    )
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from training.export import requantize

    if not (args.model / "model_card.json").is_file():
        print(f"error: {args.model} is not an exported model version (no model_card.json)", file=sys.stderr)
        return 2
    card = requantize(args.model, args.tflite_quantization, args.data, args.export_val_data)
    validation = card["validation"]
    print(
        f"{args.model}/model.tflite: {card['runtimes']['tflite_quantization']}, val accuracy "
        f"{validation['tflite']['accuracy']:.4f} (SavedModel {validation['savedmodel']['accuracy']:.4f})",
        file=sys.stderr,
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate, served_model

    model = served_model(args.model)
    report = evaluate(args.data, model, split=args.split, runtime=args.runtime, report_dir=args.report_dir)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"accuracy {report['accuracy']:.4f} on {report['n']} images ({args.data})")
        for name in report["class_names"]:
            print(
                f"  {name:9s} precision {report['precision'][name]:.3f}  recall {report['recall'][name]:.3f}"
                f"  f1 {report['f1'][name]:.3f}  support {report['support'][name]}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
