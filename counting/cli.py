"""`python -m counting {count,evaluate,train,export,import,bench}`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from counting.engine import PRECISIONS, CountingEngine, configure_threads
from counting.images import ImageError, load_rgb
from counting.models import ARCHITECTURES, WeightsError
from counting.train import LOSSES, TrainConfig, saved_config, train


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch",
        choices=sorted(ARCHITECTURES),
        help="architecture (default: the one recorded in the weights, else csrnet-lite)",
    )
    parser.add_argument(
        "--weights",
        help="checkpoint: ours, or a public CSRNet state dict / .pth.tar (default: our trained weights for --arch)",
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")


def _engine(args: argparse.Namespace) -> CountingEngine:
    configure_threads(args.threads)
    return CountingEngine(args.arch, args.weights, args.precision, args.device)


def cmd_count(args: argparse.Namespace) -> int:
    from counting.overlay import write_overlay

    engine = _engine(args)
    failures = 0
    overlay_names: set[str] = set()
    for path in args.images:
        try:
            rgb = load_rgb(path)
        except ImageError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        result = engine.count(rgb)
        record = {
            "path": path,
            "count": round(result.count, 3),
            "arch": engine.arch,
            "weights": str(engine.weights),
            "ms": round(result.ms, 1),
        }
        if args.overlay:
            # Frames from different folders may share a name; number the repeats rather than overwrite.
            name = Path(path).stem
            while name in overlay_names:
                name = f"{Path(path).stem}-{len(overlay_names)}"
            overlay_names.add(name)
            overlay = write_overlay(rgb, result.density, result.count, Path(args.overlay) / f"{name}.png")
            record["overlay"] = str(overlay)
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            print(f"{path}: {result.count:.1f} people ({engine.arch}, {result.ms:.0f} ms)", flush=True)
    return 1 if failures else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from counting.datasets import load_annotated
    from counting.evaluate import evaluate_images, summarise, write_csv

    engine = _engine(args)
    samples = load_annotated(args.data, args.split)[: args.limit]
    results = evaluate_images(engine, samples, progress=not args.json)
    summary = {
        "data": args.data,
        "split": args.split,
        "arch": engine.arch,
        "weights": str(engine.weights),
        "precision": engine.precision,
        **summarise(results),
    }
    if args.csv:
        write_csv(results, args.csv)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['images']} images of {args.data} ({args.split}) with {engine.arch} ({engine.weights})")
        print(
            f"MAE {summary['mae']:.2f}  MSE {summary['mse']:.2f}  "
            + "  ".join(f"GAME({level}) {summary[f'game{level}']:.2f}" for level in range(4))
        )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    out = args.out or f"runs/{args.arch}-{'+'.join(Path(data).name for data in args.data)}"
    saved = saved_config(out) if args.resume else None
    config = TrainConfig(
        arch=args.arch,
        data=args.data,
        out=out,
        epochs=args.epochs or (saved.epochs if saved else TrainConfig.epochs),
        batch_size=args.batch_size,
        crop=(args.crop[0], args.crop[1]),
        scale_range=(args.scale_range[0], args.scale_range[1]),
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        bf16=False if args.no_bf16 else None,
        threads=args.threads,
        max_steps_per_epoch=args.max_steps_per_epoch,
        vgg16=args.vgg16,
        init_weights=args.init_weights,
        freeze_batch_norm=args.freeze_batch_norm,
        batch_norm_batches=args.batch_norm_batches,
        head_lr_scale=args.head_lr_scale,
        warmup_epochs=args.warmup_epochs,
        count_loss_weight=args.count_loss_weight,
        loss=args.loss,
        bayesian_sigma=args.bayesian_sigma,
        bayesian_background_ratio=args.bayesian_background_ratio,
        swa_start_epoch=args.swa_start_epoch,
        val_max_frames=args.val_max_frames,
        photometric=args.photometric,
        set_weights=args.set_weights,
    )
    best = train(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    print(json.dumps({"run": out, "best": best}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from counting.count_scale import scale_counts_to_run
    from counting.models import load_model, read_checkpoint, save_weights

    model, arch, weights = load_model(args.arch, args.checkpoint)
    meta = read_checkpoint(args.checkpoint).get("meta", {})
    if args.fit_count_scale:
        try:
            fitted = scale_counts_to_run(model, Path(args.checkpoint).parent)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(json.dumps({"count_scale": fitted}), flush=True)
        meta["count_scale"] = {"scale": fitted["scale"], "frames": fitted["frames"]}
    if args.onnx or args.int8:
        from counting.onnx_export import export_onnx
        from counting.versions import weights_version

        metadata = {"arch": arch, "weights": weights_version(weights)}
        if not args.int8:
            export_onnx(model, args.out, metadata)
            print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB, {arch}, ONNX, float32)")
            return 0
        return _export_int8(model, metadata, args)
    save_weights(model, arch, args.out, half=args.half, **meta)
    size_mb = Path(args.out).stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.2f} MB, {arch}, {'float16' if args.half else 'float32'})")
    return 0


def _export_int8(model, metadata: dict[str, str], args: argparse.Namespace) -> int:
    import tempfile

    from counting.onnx_export import calibration_frames, export_onnx, quantise_int8

    if not args.calibrate:
        print("error: --int8 needs --calibrate with frames to calibrate on", file=sys.stderr)
        return 2
    try:
        frames = calibration_frames(args.calibrate, args.calibration_frames)
    except (ValueError, ImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not frames:
        print(f"error: no images in {args.calibrate}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = export_onnx(model, Path(scratch) / "fp32.onnx", metadata)
        quantise_int8(fp32, args.out, frames)
    size_mb = Path(args.out).stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.2f} MB, {metadata['arch']}, ONNX, int8, calibrated on {len(frames)} frames)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from counting import importers

    if args.format == "scut-head":
        summaries = importers.import_scut_head(args.source, args.out)
    elif args.format == "beijing-brt":
        summaries = importers.import_beijing_brt(args.source, args.out)
    elif args.format == "voc":
        summaries = [importers.import_voc(args.source, args.annotations or args.source, args.out, args.labels)]
    else:
        summaries = [importers.import_mat(args.source, args.annotations or args.source, args.out, args.variable)]
    for summary in summaries:
        print(json.dumps(asdict(summary)), flush=True)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from counting.bench import format_table, run_bench

    if args.calibration_frames and not args.data:
        print("error: --calibration-frames needs --data (frames of its train split)", file=sys.stderr)
        return 2
    configure_threads(args.threads)
    accuracy = None
    if args.data:
        from counting.bench import Accuracy
        from counting.datasets import load_annotated
        from counting.onnx_export import calibration_frames

        test = load_annotated(args.data, "test")[: args.mae_images]
        accuracy = Accuracy(test, calibration_frames(args.data, 16))
    image_path = args.image or (accuracy.test[0].image_path if accuracy else None)
    rows = run_bench(load_rgb(image_path) if image_path else None, args.arch, args.repeats, accuracy)
    print(json.dumps(rows) if args.json else format_table(rows), flush=True)
    if args.calibration_frames:
        from counting.bench import bench_calibration, format_calibration
        from counting.calibration import CalibrationConfig

        config = CalibrationConfig(epochs=args.calibration_epochs or CalibrationConfig.epochs, threads=args.threads)
        row = bench_calibration(args.data, args.calibration_frames, config)
        print(json.dumps({"calibration": row}) if args.json else format_calibration(row))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m counting", description="CrowdScope crowd counting")
    commands = root.add_subparsers(dest="command", required=True)

    count = commands.add_parser("count", help="count people in images")
    count.add_argument("images", nargs="+", metavar="IMAGE")
    _add_model_options(count)
    count.add_argument("--overlay", metavar="OUT_DIR", help="write each frame with its density heatmap here")
    count.add_argument("--json", action="store_true", help="one JSON object a line")
    count.set_defaults(run=cmd_count)

    evaluate = commands.add_parser("evaluate", help="MAE, MSE and GAME on an annotated split")
    evaluate.add_argument("--data", required=True, help="ShanghaiTech part folder or a labelled point folder")
    evaluate.add_argument("--split", default="test")
    _add_model_options(evaluate)
    evaluate.add_argument("--limit", type=positive_int, help="only the first N images")
    evaluate.add_argument("--csv", help="write per-image results here")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=cmd_evaluate)

    train_cmd = commands.add_parser("train", help="train on the train split (a validation slice is held out)")
    train_cmd.add_argument("--arch", choices=sorted(ARCHITECTURES), required=True)
    train_cmd.add_argument(
        "--data", nargs="+", required=True, help="one or more data sets (ShanghaiTech parts or point folders)"
    )
    train_cmd.add_argument(
        "--val-max-frames", type=positive_int, help="at most this many validation frames from each data set"
    )
    train_cmd.add_argument(
        "--photometric", action="store_true", help="colour jitter, greyscale, blur and JPEG artefacts on the crops"
    )
    train_cmd.add_argument(
        "--set-weights",
        type=float,
        nargs="+",
        metavar="WEIGHT",
        help="how often each data set is drawn relative to the others, in --data's order (default: equally)",
    )
    train_cmd.add_argument("--out", help="run folder (default runs/ARCH-DATA)")
    train_cmd.add_argument(
        "--epochs", type=int, help=f"default {TrainConfig.epochs}, or the run's own when resuming (give it to extend)"
    )
    train_cmd.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    train_cmd.add_argument("--crop", type=int, nargs=2, default=TrainConfig.crop, metavar=("H", "W"))
    train_cmd.add_argument(
        "--scale-range", type=float, nargs=2, default=TrainConfig.scale_range, metavar=("LOW", "HIGH")
    )
    train_cmd.add_argument("--lr", type=float, default=TrainConfig.lr)
    train_cmd.add_argument("--seed", type=int, default=TrainConfig.seed)
    train_cmd.add_argument("--device", default="cpu")
    train_cmd.add_argument("--threads", type=positive_int)
    train_cmd.add_argument(
        "--no-bf16",
        action="store_true",
        help="train in fp32 (default: bf16 autocast where the hardware computes bf16 natively)",
    )
    train_cmd.add_argument("--init-weights", help="start from these weights (a fine-tuning phase)")
    train_cmd.add_argument(
        "--freeze-batch-norm", action="store_true", help="estimate batch-norm statistics once and train with them fixed"
    )
    train_cmd.add_argument("--batch-norm-batches", type=positive_int, default=TrainConfig.batch_norm_batches)
    train_cmd.add_argument(
        "--head-lr-scale",
        type=float,
        default=TrainConfig.head_lr_scale,
        help="the density head's learning rate relative to the rest's",
    )
    train_cmd.add_argument("--warmup-epochs", type=int, default=TrainConfig.warmup_epochs)
    train_cmd.add_argument(
        "--count-loss-weight", type=float, default=TrainConfig.count_loss_weight, help="weight of the count error term"
    )
    train_cmd.add_argument(
        "--loss",
        choices=LOSSES,
        default=TrainConfig.loss,
        help="density: MSE against Gaussian maps plus the count term; bayesian: Bayesian loss on the head points",
    )
    train_cmd.add_argument(
        "--bayesian-sigma", type=float, default=TrainConfig.bayesian_sigma, help="the Bayesian loss's sigma in pixels"
    )
    train_cmd.add_argument(
        "--bayesian-background-ratio",
        type=float,
        default=TrainConfig.bayesian_background_ratio,
        help="the background pseudo-head's distance as a fraction of the crop's shorter side (0: none)",
    )
    train_cmd.add_argument(
        "--swa-start-epoch", type=positive_int, help="average the weights of every epoch from this one on (swa.pt)"
    )
    train_cmd.add_argument("--vgg16", help="local torchvision VGG-16 state dict for full CSRNet's front end")
    train_cmd.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train_cmd.add_argument("--stop-after-epochs", type=int, help="end this invocation after N epochs (then --resume)")
    train_cmd.add_argument(
        "--max-steps-per-epoch",
        type=positive_int,
        help="end each epoch after N steps (on a large mix: validate and checkpoint more often than once a pass)",
    )
    train_cmd.set_defaults(run=cmd_train)

    export = commands.add_parser("export", help="write shipping weights (or an ONNX graph) from a checkpoint")
    export.add_argument("checkpoint")
    export.add_argument("out")
    export.add_argument("--arch", choices=sorted(ARCHITECTURES))
    export.add_argument("--half", action="store_true", help="store float16")
    export.add_argument(
        "--fit-count-scale",
        action="store_true",
        help="scale the counts to the training frames of the run whose folder holds the checkpoint (not its "
        "validation slice), folded into the density head",
    )
    export.add_argument("--onnx", action="store_true", help="write an ONNX graph for onnxruntime instead")
    export.add_argument("--int8", action="store_true", help="with --onnx: quantise to int8 (needs --calibrate)")
    export.add_argument("--calibrate", help="frames for int8 calibration: a folder of images or a ShanghaiTech part")
    export.add_argument("--calibration-frames", type=positive_int, default=16)
    export.set_defaults(run=cmd_export)

    import_cmd = commands.add_parser(
        "import",
        help="copy a head-annotated set into point folders (IMAGE beside NAME.json) that train and evaluate read",
        description="scut-head SOURCE OUT and beijing-brt SOURCE OUT read those sets' public layouts and write "
        "OUT/<set>/{train,test}; voc and mat read a folder of images (SOURCE) with Pascal VOC head boxes or .mat "
        "point files of the same names (--annotations, default SOURCE) and write the point folder OUT.",
    )
    import_cmd.add_argument("format", choices=("scut-head", "beijing-brt", "voc", "mat"))
    import_cmd.add_argument("source")
    import_cmd.add_argument("out")
    import_cmd.add_argument("--annotations", help="voc, mat: the folder of NAME.xml or NAME.mat (default: SOURCE)")
    import_cmd.add_argument("--labels", nargs="+", default=["head"], help="voc: the box names that are heads")
    import_cmd.add_argument("--variable", default="loc", help="mat: the variable holding the N x 2 points")
    import_cmd.set_defaults(run=cmd_import)

    bench = commands.add_parser("bench", help="images/s at 1024x768 and test MAE per architecture and precision")
    bench.add_argument("--arch", action="append", choices=sorted(ARCHITECTURES))
    bench.add_argument("--image", help="a frame to time (default: the first test image of --data, else random pixels)")
    bench.add_argument("--data", help="a ShanghaiTech part: test MAE on its test split, int8 calibrated on train")
    bench.add_argument("--mae-images", type=positive_int, help="only the first N test images (default: all)")
    bench.add_argument("--repeats", type=positive_int, default=5)
    bench.add_argument("--threads", type=positive_int)
    bench.add_argument("--json", action="store_true")
    bench.add_argument(
        "--calibration-frames",
        type=positive_int,
        help="also time a calibration job (k-fold fine-tune) on N frames of --data's train split, with its MAE",
    )
    bench.add_argument(
        "--calibration-epochs", type=positive_int, help="the calibration job's epochs (default: its own)"
    )
    bench.set_defaults(run=cmd_bench)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (WeightsError, ImageError, OSError, ValueError) as error:  # OSError: missing or unreadable paths
        print(f"error: {error}", file=sys.stderr)
        return 2
