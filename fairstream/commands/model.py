"""`fairstream model train|verify|compare-heads`: rebuild, check and compare the bias models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fairstream.settings import REPO_ROOT, load_settings

KIND_CHOICES = ("fast", "quality", "all")


def register(subparsers: Any) -> None:
    """Add the `model` command with its `train` and `verify` subcommands."""
    parser = subparsers.add_parser("model", help="train or verify the bias models")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("train", _train, "rebuild the model files from the data sets (fixed seed)"),
        ("verify", _verify, "retrain into a temp dir and compare with the committed files"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--model", choices=KIND_CHOICES, default="all", help="which model")
        p.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="data folder (default: $FAIRSTREAM_DATA_DIR or ../shared/data beside the repo)",
        )
        p.add_argument(
            "--models-dir", type=Path, default=None, help="model folder (default: settings)"
        )
        p.add_argument(
            "--cache-dir",
            type=Path,
            default=None,
            help="embedding cache (default: .stack/cache under the repo; never committed)",
        )
        p.set_defaults(func=func)
    compare = sub.add_parser(
        "compare-heads",
        help="compare stereotype heads on the quality model's encoder (validation split only)",
    )
    compare.add_argument("--data-dir", type=Path, default=None, help="data folder")
    compare.set_defaults(func=_compare_heads)


def _kinds(choice: str) -> list[str]:
    return ["fast", "quality"] if choice == "all" else [choice]


def _dirs(args: argparse.Namespace) -> tuple[Path, Path]:
    settings = load_settings()
    models_dir = args.models_dir or settings.models_dir
    cache_dir = args.cache_dir or settings.stack_dir / "cache"
    return Path(models_dir), Path(cache_dir)


def _train(args: argparse.Namespace) -> int:
    from processors.bias.training.pipeline import train

    models_dir, cache_dir = _dirs(args)
    manifest = train(_kinds(args.model), models_dir, args.data_dir, cache_dir=cache_dir)
    for kind in _kinds(args.model):
        entry = manifest["models"][kind]
        s = entry["metrics"]["stereotype"]
        d = entry["metrics"]["dimension"]["stereotypes_only"]
        print(
            f"{kind}: version {entry['version']}; test stereotype macro-F1 {s['macro_f1']:.3f}, "
            f"Brier {s['calibration']['brier']:.3f}; bias-type macro-F1 (stereotypes) "
            f"{d['macro_f1']:.3f}"
        )
    print(f"wrote {models_dir} (relative to repo: {_relative(models_dir)})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from processors.bias.training.pipeline import verify

    models_dir, cache_dir = _dirs(args)
    checks = verify(
        _kinds(args.model),
        models_dir,
        args.data_dir,
        cache_dir=cache_dir,
        log=lambda m: print(m, file=sys.stderr),
    )
    failed = False
    for check in checks:
        print(f"{check.status:10s} {check.file} {check.detail}".rstrip())
        failed = failed or check.status in ("different", "missing")
    return 1 if failed else 0


def _compare_heads(args: argparse.Namespace) -> int:
    from processors.bias.training.pipeline import SEED, default_data_dir, prepare
    from processors.bias.training.variants import compare_on_splits

    data = prepare(args.data_dir or default_data_dir())
    results = compare_on_splits(data.splits, SEED, lambda m: print(m, file=sys.stderr))
    print("| head (stereotype yes/no) | validation macro-F1 | threshold |")
    print("|---|---|---|")
    for r in results:
        print(f"| {r.name} | {r.validation_macro_f1:.4f} | {r.threshold} |")
    return 0


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
