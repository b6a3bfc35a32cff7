"""python -m training {train,recalibrate,finish,average,export,quantize,openvino,evaluate}: retrain and package."""

from __future__ import annotations

import argparse
from pathlib import Path


def parser() -> argparse.ArgumentParser:
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
        "--teacher",
        action="append",
        dest="teachers",
        metavar="MODEL_DIR",
        help="distil: train on the labels blended with this exported model's answers (repeat: an ensemble)",
    )
    train.add_argument(
        "--teacher-weight", type=float, default=0.5, help="the teachers' share of each target, in (0, 1]"
    )
    train.add_argument(
        "--recalibration-crops",
        type=int,
        help="training crops over which BatchNorm statistics are re-estimated at the end (default 16384; 0: skip)",
    )
    train.add_argument("--no-export", action="store_true", help="stop after training (export later)")
    export_args(train)

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
    export_args(export)

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


def export_args(parser: argparse.ArgumentParser) -> None:
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
