"""python -m training {train,recalibrate,finish,average,export,quantize,openvino,evaluate}: retrain and package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    train = verbs.add_parser("train", help="train (resumable) and export a SavedModel")
    train.add_argument("--data", required=True, help="image folders, .zip, fer2013.csv or FER+ folder")
    train.add_argument("--val-data", help="validation set (default: the data's val split, else a held-out fraction)")
    train.add_argument("--val-fraction", type=float, default=0.1)
    train.add_argument("--work-dir", help="checkpoints, logs and curves (default ~/.cache/emotion-training/default)")
    train.add_argument("--image-size", type=int, default=48, help="input crops are SIZE x SIZE grayscale")
    train.add_argument("--network-size", type=int, help="upsample crops to this size inside the model")
    train.add_argument("--weights", choices=["imagenet"], help="start from ImageNet weights (downloads once)")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--weight-decay", type=float, default=0.05)
    train.add_argument("--warmup-epochs", type=int, default=2)
    train.add_argument("--label-smoothing", type=float, default=0.1)
    train.add_argument("--dropout", type=float, default=0.2)
    train.add_argument("--class-weight", choices=["none", "balanced", "sqrt"], default="none")
    train.add_argument("--patience", type=int, default=15, help="early stopping on val accuracy")
    train.add_argument("--seed", type=int, default=1337)
    train.add_argument(
        "--precision",
        choices=["auto", "float32", "mixed"],
        default="auto",
        help="auto: mixed on GPUs, float32 on CPUs; mixed: float16 on TensorFlow GPUs, else bfloat16",
    )
    train.add_argument("--time-budget", type=float, dest="time_budget_min", help="minutes; fits the epochs to it")
    train.add_argument("--ferplus-mode", choices=["majority", "distribution"], default="majority")
    train.add_argument(
        "--augmentation",
        choices=["full", "light", "none"],
        default="full",
        help="light: shifts by pad-and-crop instead of affine warps (fast on JAX/GPU)",
    )
    train.add_argument(
        "--mixup",
        type=float,
        default=0.0,
        metavar="ALPHA",
        help="blend training pairs with Beta(ALPHA, ALPHA) weights, labels alike (0.2 is usual; default 0: off)",
    )
    train.add_argument(
        "--ema-momentum",
        type=float,
        default=0.0,
        metavar="M",
        help="validate and keep an exponential moving average of the weights (0.999 is usual; default 0: off)",
    )
    train.add_argument(
        "--init-weights",
        help="start from a finished run (its folder or classifier.weights.h5) or an exported model version folder "
        "(e.g. model/emotion/2): continue or fine-tune it",
    )
    train.add_argument(
        "--reset-last-stage",
        action="store_true",
        help="with --init-weights: draw ResNet50's last stage (conv5) and the head afresh, keep the rest",
    )
    train.add_argument(
        "--zero-init-residual",
        action="store_true",
        help="from scratch: start every residual block as the identity (its last BatchNorm scale at zero), so the "
        "network learns from its first steps",
    )
    train.add_argument(
        "--recalibration-crops",
        type=int,
        help="training crops over which BatchNorm statistics are re-estimated at the end (default 16384; 0: skip)",
    )
    train.add_argument("--no-export", action="store_true", help="stop after training (export later)")
    _export_args(train)

    recalibrate = verbs.add_parser(
        "recalibrate", help="re-estimate a finished run's BatchNorm statistics (train does it at its end)"
    )
    recalibrate.add_argument("--work-dir", required=True, help="the training run to recalibrate in place")
    recalibrate.add_argument("--crops", type=int, help="training crops to average over (default 16384)")

    finish = verbs.add_parser(
        "finish", help="end a run stopped before its last epoch from its best checkpoint, so it can be exported"
    )
    finish.add_argument("--work-dir", required=True, help="the stopped training run")
    finish.add_argument("--data", help="the dataset, where it is not at the recorded path (a run from another machine)")
    finish.add_argument("--crops", type=int, help="BatchNorm recalibration crops (default: the run's; 0: skip)")

    average = verbs.add_parser(
        "average", help="average the weights of runs that share a start (a model soup) into a new run to export"
    )
    average.add_argument(
        "sources", nargs="+", type=Path, help="finished run folders or exported versions (e.g. model/emotion/5)"
    )
    average.add_argument("--work-dir", type=Path, required=True, help="the new run folder the average is written to")
    average.add_argument(
        "--coefficients", type=float, nargs="+", metavar="C", help="one share per source (default: equal shares)"
    )
    average.add_argument("--data", help="the dataset, where it is not at the first source's recorded path")
    average.add_argument("--crops", type=int, help="BatchNorm recalibration crops (default: the first source's)")

    export = verbs.add_parser("export", help="export a training run as SavedModel (+ TFLite) with its model card")
    export.add_argument("--work-dir", required=True, help="the training run to export")
    _export_args(export)

    quantize = verbs.add_parser(
        "quantize", help="rewrite an exported version's TFLite twin from its SavedModel, measured on val"
    )
    quantize.add_argument("--model", type=Path, required=True, help="the exported version folder, e.g. model/emotion/4")
    quantize.add_argument("--tflite-quantization", choices=["dynamic", "int8"], default="int8")
    quantize.add_argument("--data", help="the training set (int8 calibration), where it is not at the card's path")
    quantize.add_argument("--export-val-data", help="measure the new twin on this set (default: the card's val)")

    openvino = verbs.add_parser(
        "openvino", help="write an exported version's OpenVINO int8 twin (faster on CPUs without AVX-512 VNNI)"
    )
    openvino.add_argument("--model", type=Path, required=True, help="the exported version folder, e.g. model/emotion/5")
    openvino.add_argument("--data", help="the training set (calibration), where it is not at the card's path")
    openvino.add_argument("--export-val-data", help="measure the twin on this set (default: the card's val)")

    evaluate = verbs.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a model")
    evaluate.add_argument("--data", required=True, help="image folders, .zip, fer2013.csv or FER+ folder")
    evaluate.add_argument(
        "--model",
        type=Path,
        help="model version folder, or a TF Serving base folder (its newest version); "
        "default: the model the service serves (EMOTION_MODEL_DIR, else the newest under model/emotion)",
    )
    evaluate.add_argument("--split", choices=["train", "val", "test"], help="only this split of the data")
    evaluate.add_argument("--runtime", choices=["savedmodel", "tflite", "openvino"], default="savedmodel")
    evaluate.add_argument("--report-dir", type=Path, help="write report.json and confusion_matrix.png here")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def _export_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, default=Path("model"), help="root of name/version folders")
    parser.add_argument("--name", default="emotion")
    parser.add_argument("--version", type=int, help="default: one more than the newest present")
    parser.add_argument("--no-tflite", dest="tflite", action="store_false", help="skip the int8 TFLite variant")
    parser.add_argument(
        "--tflite-quantization",
        choices=["dynamic", "int8"],
        help="int8: weights and activations, calibrated on training crops (default when the run's training data "
        "is at hand); dynamic: int8 weights, float activations (default otherwise)",
    )
    parser.add_argument("--flip-average", action="store_true", help="average with the mirrored crop (2x compute)")
    parser.add_argument("--export-val-data", help="measure the exported runtimes on this set (default: the run's)")
    parser.add_argument(
        "--openvino", action="store_true", help="also write the OpenVINO int8 twin (as `python -m training openvino`)"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    from training.train import TrainConfig, train

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
