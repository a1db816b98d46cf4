"""Command line for the emotion model: train, ensemble, evaluate, predict, prepare."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from ..settings import get_settings
from .model import ARCHITECTURES, DEFAULT_ARCH
from .model_file import STORAGES


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    from ..cli.common import JsonArgumentParser  # usage errors under --json are one JSON object too

    parser = JsonArgumentParser(prog="python -m engine.emotion")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train the CNN on FER2013")
    p.add_argument("--data", required=True, help="fer2013.zip, its folder, or fer2013.csv")
    p.add_argument("--out", default=str(settings.emotion_model_dir))
    p.add_argument("--epochs", type=int, default=45)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=42, help="weights, shuffling and augmentation")
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="the validation split (default: --seed); keep it to compare or ensemble runs",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--learning-rate", type=float, default=2e-3, help="peak learning rate")
    p.add_argument(
        "--init-from", default=None, help="start from this .keras model's weights (a new learning-rate cycle)"
    )
    p.add_argument(
        "--average-last",
        type=int,
        default=0,
        metavar="N",
        help="keep the last N epochs' weights; ship their average if it wins on validation "
        "(such runs never stop early)",
    )
    p.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        default=DEFAULT_ARCH,
        help="network: vgg (1.7 M parameters) or res (residual, 1.2 M), mixed in an ensemble; "
        "small (0.43 M, a quarter of the arithmetic; distil it with --teacher)",
    )
    p.add_argument(
        "--teacher",
        default=None,
        metavar="MODEL",
        help="distil from this emotion.keras (e.g. the shipped ensemble), trained on the same "
        "images and validation split",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=0.7,
        metavar="W",
        help="share of the teacher's scores in the targets; the rest is the true labels",
    )
    p.add_argument(
        "--patience", type=int, default=15, metavar="N", help="stop after N epochs without a validation gain (0: never)"
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=0,
        metavar="SECONDS",
        help="train at most this long: after two epochs the run is shortened to the epochs "
        "that fit (--epochs is then the most it runs) and its schedule follows",
    )
    p.add_argument(
        "--no-test",
        dest="evaluate_test",
        action="store_false",
        help="the data has no test images (e.g. a GPU machine given the training images "
        "alone): pick on validation, then run `finish` where the test images are",
    )
    p = sub.add_parser("finish", help="evaluate on test a run trained with --no-test")
    p.add_argument("--out", required=True, help="the run's output folder")
    p.add_argument("--data", required=True, help="FER2013 with the run's training images and the test images")
    p = sub.add_parser("average", help="re-pick a finished run's model with a weight average")
    p.add_argument("--last", type=int, required=True, metavar="N", help="average the last N epochs")
    p.add_argument("--out", default=str(settings.emotion_model_dir), help="the run's output folder")
    p.add_argument("--data", default=None, help="FER2013 (default: the path the run was trained on)")
    p = sub.add_parser("ensemble", help="average independently trained models; ship it if it wins on validation")
    p.add_argument(
        "--members",
        nargs="+",
        required=True,
        metavar="MODEL",
        help="emotion.keras files (each with its metrics.json) trained with one --split-seed",
    )
    p.add_argument("--data", required=True, help="fer2013.zip, its folder, or fer2013.csv")
    p.add_argument("--out", default=str(settings.emotion_model_dir))
    p.add_argument(
        "--storage",
        choices=STORAGES,
        default="float16",
        help="weights in the file: float16 (half the size; loaded back as float32, scored as stored) or float32",
    )
    p = sub.add_parser("evaluate", help="accuracy of the shipped model on a test split")
    p.add_argument("--data", required=True, help="folder/zip with test/<emotion>/..., or fer2013.csv")
    p.add_argument("--model", default=str(settings.emotion_model_dir))
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "prepare",
        help="load the model once, so that its LiteRT conversion is cached "
        "before the app's first visit (make run does this)",
    )
    p.add_argument("--model", default=str(settings.emotion_model_dir))
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("predict", help="faces and emotions in an image file")
    p.add_argument("image")
    p.add_argument("--model", default=str(settings.emotion_model_dir))
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from .dataset import FerDataError

    if args.command == "average":
        from .runs import WarmStartError
        from .train import average_run

        try:
            metrics = average_run(args.out, args.last, args.data)
        except (FerDataError, WarmStartError) as exc:
            return _fail(args, str(exc), 2)
        print(json.dumps({k: metrics[k] for k in ("accuracy", "n_images", "selection")}))
        return 0
    if args.command == "finish":
        from .runs import WarmStartError, finish_run

        try:
            metrics = finish_run(args.out, args.data)
        except (FerDataError, WarmStartError) as exc:
            return _fail(args, str(exc), 2)
        print(json.dumps({k: metrics[k] for k in ("accuracy", "accuracy_single_pass", "n_images")}))
        return 0
    if args.command == "ensemble":
        from .ensemble import EnsembleNotBetter, make_ensemble
        from .runs import WarmStartError

        try:
            metrics = make_ensemble(args.members, args.data, args.out, args.storage)
        except (FerDataError, WarmStartError) as exc:
            return _fail(args, str(exc), 2)
        except EnsembleNotBetter as exc:
            print(json.dumps({"written": False, "selection": exc.selection}))
            return _fail(args, str(exc), 1)
        print(json.dumps({"written": True, **{k: metrics[k] for k in ("accuracy", "n_images", "selection")}}))
        return 0
    if args.command == "train":
        from .runs import WarmStartError
        from .train import TrainConfig, train

        try:
            metrics = train(
                TrainConfig(
                    data=args.data,
                    out_dir=args.out,
                    epochs=args.epochs,
                    batch_size=args.batch_size,
                    seed=args.seed,
                    split_seed=args.split_seed,
                    resume=args.resume,
                    learning_rate=args.learning_rate,
                    init_from=args.init_from,
                    average_last=args.average_last,
                    patience=args.patience,
                    arch=args.arch,
                    time_budget=args.time_budget,
                    teacher=args.teacher,
                    teacher_weight=args.teacher_weight,
                    evaluate_test=args.evaluate_test,
                )
            )
        except (FerDataError, WarmStartError) as exc:
            return _fail(args, str(exc), 2)
        print(json.dumps({k: metrics.get(k) for k in ("accuracy", "n_images", "per_class")}))
        return 0
    from .detector import EmotionRecognizer
    from .images import EmotionInputError

    try:
        if args.command == "predict":  # the image first: a wrong path is told before the model loads
            path = Path(args.image)
            if path.is_dir():
                raise EmotionInputError(f"{path} is a folder: give one image file (JPEG, PNG, ...).")
            if not path.is_file():
                raise EmotionInputError(f"{path}: no such file.")
        started = time.perf_counter()
        recognizer = EmotionRecognizer.load(args.model)
        if args.command == "prepare":
            payload = {
                "model": str(args.model),
                "networks": recognizer.n_members,
                "runtime": recognizer.runtime,
                "seconds": round(time.perf_counter() - started, 1),
            }
            text = (
                f"emotion model ready: {payload['networks']} network(s) on {payload['runtime']}, "
                f"loaded in {payload['seconds']} s"
            )
        elif args.command == "evaluate":
            payload = evaluate(recognizer, args.data)
            text = f"accuracy {payload['accuracy']:.4f} on {payload['n_images']} test images\n" + "\n".join(
                f"  {k:>9}: precision {v['precision']:.3f} recall {v['recall']:.3f}"
                for k, v in payload["per_class"].items()
            )
        else:
            path = Path(args.image)
            faces = recognizer.analyze(path.read_bytes())
            payload = {"image": str(path), "faces": [f.as_dict() for f in faces]}
            text = "\n".join(f"{f.label} {f.confidence:.0%} at {f.box}" for f in faces) or "no face found"
    except (FerDataError, EmotionInputError) as exc:
        return _fail(args, str(exc), 2)
    except (FileNotFoundError, RuntimeError) as exc:
        return _fail(args, str(exc), 3)
    print(json.dumps(payload) if args.json else text)
    return 0


def _fail(args, message: str, code: int) -> int:
    from ..cli.common import print_error

    return print_error(message, code, getattr(args, "json", False))


def evaluate(recognizer, data: str, batch: int = 512) -> dict:
    """Accuracy, per-class precision/recall and confusion matrix on the test split."""
    import numpy as np

    from .dataset import load_split
    from .evaluation import metrics_from_predictions

    split = load_split(data, "test")
    probs = np.concatenate([recognizer.classify(split.images[i : i + batch]) for i in range(0, len(split), batch)])
    return {
        **metrics_from_predictions(split.labels, probs.argmax(1)),
        "data": str(data),
        "data_fingerprint": split.fingerprint,
    }


if __name__ == "__main__":
    sys.exit(main())
