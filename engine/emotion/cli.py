"""Command line for the emotion model: train, evaluate, predict."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from ..settings import get_settings


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m engine.emotion")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train the CNN on FER2013")
    p.add_argument("--data", required=True, help="fer2013.zip, its folder, or fer2013.csv")
    p.add_argument("--out", default=str(settings.emotion_model_dir))
    p.add_argument("--epochs", type=int, default=45)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.command == "train":
        from .train import TrainConfig, train
        metrics = train(TrainConfig(data=args.data, out_dir=args.out, epochs=args.epochs,
                                    batch_size=args.batch_size, seed=args.seed,
                                    resume=args.resume))
        print(json.dumps({k: metrics[k] for k in ("accuracy", "n_images", "per_class")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
