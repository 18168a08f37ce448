"""`python -m counting COMMAND`: the counting library's command line, one subcommand each (its `cmd_*` function, with
`_declare_*` just above it declaring its arguments).

- count: count people in images (a line each, or JSON), with --overlay writing each frame with its heatmap.
- evaluate: MAE, MSE and GAME on an annotated split (a ShanghaiTech part or a point folder), per image to --csv.
- train: train on the train split, a validation slice held out; --resume continues a run from its last checkpoint.
- compare: the shipping rule on a run's validation slices, old weights against new, with paired standard errors.
- export: shipping weights from a checkpoint (float16, a fitted count scale), or an ONNX graph (float or int8).
- widen: start a wider CSRNet from trained narrower weights (Net2Net), counting the same.
- import: copy a head-annotated public set (SCUT-HEAD, Beijing BRT, Mall, Pascal VOC boxes, .mat points) into the
  point folders that train and evaluate read.
- bench: images/s and test MAE per architecture and precision, and with --calibration-frames a calibration job.
- adapt: adapt weights to one camera's unlabeled frames (batch-norm statistics) when the adaptation rule calls for it.
- adapt-references: write beside weights the statistics of the sets they trained on, which adapt compares with.
- adapt-bench: adaptation's leave-out benchmark, per camera MAE and bias before and after.

`main` returns the command's exit status: 0, 1 when `count` could not read some images, 2 on bad input (a missing or
unreadable path, unusable weights or images, a bad value), which it reports as `error: ...` on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, Field, asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

from counting.engine import PRECISIONS, CountingEngine, configure_threads
from counting.images import IMAGE_SUFFIXES, ImageError, load_rgb
from counting.models import ARCHITECTURES, WeightsError
from counting.training.config import TrainConfig
from counting.training.train import saved_config, train

if TYPE_CHECKING:
    from torch import nn

    from counting.adaptation import AdaptationRule


# What add_subparsers returns: each command's `_declare_*` adds its parser there (argparse names the class privately).
Subcommands = argparse._SubParsersAction


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
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto", help="auto: bf16 where the device computes it natively"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strength", type=float, help="share of the camera's statistics (default: the rule's)")
    parser.add_argument("--novelty-threshold", type=float, help="adapt only past this novelty (default: the rule's)")


def _engine(args: argparse.Namespace) -> CountingEngine:
    configure_threads(args.threads)
    return CountingEngine(args.arch, args.weights, args.precision, args.device)


def _declare_count(commands: Subcommands) -> None:
    count = commands.add_parser("count", help="count people in images")
    count.add_argument("images", nargs="+", metavar="IMAGE")
    _add_model_options(count)
    count.add_argument("--overlay", metavar="OUT_DIR", help="write each frame with its density heatmap here")
    count.add_argument("--json", action="store_true", help="one JSON object a line")
    count.set_defaults(run=cmd_count)


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


def _declare_evaluate(commands: Subcommands) -> None:
    evaluate = commands.add_parser("evaluate", help="MAE, MSE and GAME on an annotated split")
    evaluate.add_argument("--data", required=True, help="ShanghaiTech part folder or a labelled point folder")
    evaluate.add_argument("--split", default="test")
    _add_model_options(evaluate)
    evaluate.add_argument("--limit", type=positive_int, help="only the first N images")
    evaluate.add_argument("--csv", help="write per-image results here")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from counting.training.datasets import load_annotated
    from counting.training.evaluate import evaluate_images, summarise, write_csv

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


def _declare_compare(commands: Subcommands) -> None:
    compare = commands.add_parser(
        "compare",
        help="the shipping rule on a run's validation slices: each set's MAE for old and new weights, fp32, frames "
        "whole, the paired standard error, and whether the new weights are better overall and worse on no set",
    )
    compare.add_argument(
        "run_folder", metavar="RUN", help="a training run's folder (its last.pt names the sets and the slices)"
    )
    compare.add_argument("--old", required=True, help="the weights now shipped")
    compare.add_argument("--new", required=True, help="the candidate weights")
    compare.add_argument("--threads", type=positive_int)
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(run=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    """The shipping rule's check on a run's validation slices: both weights count every frame whole, as workers do."""
    from counting.training.evaluate import CountErrors, PairedChange, mix_score
    from counting.training.train import run_frames

    config = saved_config(args.run_folder)
    if config is None:
        raise ValueError(f"{args.run_folder} holds no training run (no last.pt)")
    configure_threads(args.threads)
    _, slices = run_frames(config.data, config.val_fraction, config.seed, config.val_max_frames)
    slices = {name: samples for name, samples in slices.items() if samples}
    # Each file counts with the architecture it records: a wider candidate is judged against the shipped weights.
    engines = {which: CountingEngine(None, getattr(args, which), "fp32") for which in ("old", "new")}
    annotated = {name: [sample.count for sample in samples] for name, samples in slices.items()}
    counted: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for name, samples in slices.items():
        frames = [load_rgb(sample.image_path) for sample in samples]
        for which, engine in engines.items():
            counted[which][name] = [engine.count(rgb).count for rgb in frames]
    sets = []
    for name in slices:
        change = PairedChange.of(counted["new"][name], counted["old"][name], annotated[name])
        sets.append(
            {
                "set": name,
                "frames": len(annotated[name]),
                "mean_count": sum(annotated[name]) / len(annotated[name]),
                "old_mae": CountErrors.of(counted["old"][name], annotated[name]).mae,
                "new_mae": CountErrors.of(counted["new"][name], annotated[name]).mae,
                "paired_se": change.standard_error,
                "worse": change.worse,
            }
        )
    scores = {which: mix_score(counted[which], annotated) for which in counted}
    holds = scores["new"] < scores["old"] and not any(row["worse"] for row in sets)
    if args.json:
        print(json.dumps({"sets": sets, "old_score": scores["old"], "new_score": scores["new"], "rule_holds": holds}))
        return 0
    print(f"{'set':<14}{'frames':>7}{'mean':>8}{'old MAE':>9}{'new MAE':>9}{'paired SE':>10}  worse by more than SE")
    for row in sets:
        print(
            f"{row['set']:<14}{row['frames']:>7}{row['mean_count']:>8.1f}{row['old_mae']:>9.2f}{row['new_mae']:>9.2f}"
            f"{row['paired_se']:>10.2f}  {'yes' if row['worse'] else 'no'}"
        )
    verdict = "holds" if holds else "fails"
    print(f"validation score: old {scores['old']:.3f}, new {scores['new']:.3f}; the rule {verdict}")
    return 0


def _declare_train(commands: Subcommands) -> None:
    train_cmd = commands.add_parser("train", help="train on the train split (a validation slice is held out)")
    _add_train_options(train_cmd)
    train_cmd.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train_cmd.add_argument("--stop-after-epochs", type=int, help="end this invocation after N epochs (then --resume)")
    train_cmd.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    given = {item.name: getattr(args, item.name) for item in _train_settings() if getattr(args, item.name) is not None}
    out = given.setdefault("out", f"runs/{args.arch}-{'+'.join(Path(data).name for data in args.data)}")
    saved = saved_config(out) if args.resume else None
    try:
        # Resuming, what is not given is the run's own; train() says which given settings it cannot change.
        config = replace(saved, **given) if saved else TrainConfig(**given)
        best = train(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"run": out, "best": best}))
    return 0


def _train_settings() -> list[Field]:
    return [item for item in fields(TrainConfig) if "help" in item.metadata]


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option for each `TrainConfig` setting, typed by its annotation, with its help text and default.

    Every option defaults to None, so that only what was given overrides the recipe (the defaults, or the saved run's
    when resuming).
    """
    hints = get_type_hints(TrainConfig)
    for item in _train_settings():
        kind = hints[item.name]
        optional = type(None) in get_args(kind)
        if optional:
            kind = next(arg for arg in get_args(kind) if arg is not type(None))
        option: dict[str, Any] = {"default": None, "help": item.metadata["help"]}
        if item.default is not MISSING and item.default not in (None, False):
            option["help"] += (
                f" (default: {' '.join(map(str, item.default)) if isinstance(item.default, tuple) else item.default})"
            )
        elif item.default is MISSING and item.default_factory is MISSING:
            option["required"] = True
        if kind is bool:
            option["action"] = argparse.BooleanOptionalAction if optional else "store_true"
        elif get_origin(kind) is tuple:
            option |= {"type": get_args(kind)[0], "nargs": len(get_args(kind))}
        elif get_origin(kind) is list:
            option |= {"type": get_args(kind)[0], "nargs": "+"}
        else:
            option["type"] = positive_int if kind is int and optional else kind
        parser.add_argument(f"--{item.name.replace('_', '-')}", **(option | item.metadata["option"]))


def _declare_export(commands: Subcommands) -> None:
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


def cmd_export(args: argparse.Namespace) -> int:
    from counting.models import load_model, read_checkpoint, save_weights
    from counting.training.count_scale import scale_counts_to_run

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


def _declare_widen(commands: Subcommands) -> None:
    widen = commands.add_parser(
        "widen",
        help="start a wider CSRNet from trained weights: the same density map, with room to learn more (Net2Net)",
    )
    widen.add_argument("weights", help="trained weights of a narrower CSRNet (csrnet-lite)")
    widen.add_argument("out")
    widen.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES), help="the wider architecture")
    widen.add_argument("--noise", type=float, default=0.01, help="noise on the copied channels, relative to each layer")
    widen.add_argument("--seed", type=int, default=0)
    widen.set_defaults(run=cmd_widen)


def cmd_widen(args: argparse.Namespace) -> int:
    from counting.csrnet import CSRNet, widen_csrnet
    from counting.models import build, load_model, read_checkpoint, save_weights

    model, arch, _ = load_model(None, args.weights)
    target = build(args.arch)
    if not isinstance(model, CSRNet) or not isinstance(target, CSRNet):
        raise ValueError(f"widen takes CSRNet architectures, not {arch!r} to {args.arch!r}")
    if model.config.batch_norm != target.config.batch_norm:
        raise ValueError(f"{arch!r} and {args.arch!r} differ in batch norm: widening keeps the layers as they are")
    wide = widen_csrnet(model, target.config.width, noise=args.noise, seed=args.seed)
    meta = read_checkpoint(args.weights).get("meta", {}) | {"widened_from": f"{arch} {Path(args.weights).name}"}
    save_weights(wide, args.arch, args.out, **meta)
    print(f"wrote {args.out} ({args.arch}, {sum(p.numel() for p in wide.parameters()):,} parameters, from {arch})")
    return 0


def _export_int8(model: nn.Module, metadata: dict[str, str], args: argparse.Namespace) -> int:
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


def _declare_import(commands: Subcommands) -> None:
    import_cmd = commands.add_parser(
        "import",
        help="copy a head-annotated set into point folders (IMAGE beside NAME.json) that train and evaluate read",
        description="scut-head SOURCE OUT and beijing-brt SOURCE OUT read those sets' public layouts and write "
        "OUT/<set>/{train,test}; mall SOURCE OUT (frames/ and mall_gt.mat) writes one point folder; voc and mat "
        "read a folder of images (SOURCE) with Pascal VOC head boxes or .mat point files of the same names "
        "(--annotations, default SOURCE) and write the point folder OUT.",
    )
    import_cmd.add_argument("format", choices=("scut-head", "beijing-brt", "mall", "voc", "mat"))
    import_cmd.add_argument("source")
    import_cmd.add_argument("out")
    import_cmd.add_argument("--annotations", help="voc, mat: the folder of NAME.xml or NAME.mat (default: SOURCE)")
    import_cmd.add_argument("--labels", nargs="+", default=["head"], help="voc: the box names that are heads")
    import_cmd.add_argument("--variable", default="loc", help="mat: the variable holding the N x 2 points")
    import_cmd.set_defaults(run=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from counting.training import importers

    if args.format == "scut-head":
        summaries = importers.import_scut_head(args.source, args.out)
    elif args.format == "beijing-brt":
        summaries = importers.import_beijing_brt(args.source, args.out)
    elif args.format == "mall":
        summaries = [importers.import_mall(args.source, args.out)]
    elif args.format == "voc":
        summaries = [importers.import_voc(args.source, args.annotations or args.source, args.out, args.labels)]
    else:
        summaries = [importers.import_mat(args.source, args.annotations or args.source, args.out, args.variable)]
    for summary in summaries:
        print(json.dumps(asdict(summary)), flush=True)
    return 0


def _rule(args: argparse.Namespace) -> AdaptationRule:
    """The rule's defaults, with the --strength and --novelty-threshold given."""
    from counting.adaptation import AdaptationRule

    given = {name: getattr(args, name) for name in ("strength", "novelty_threshold") if getattr(args, name) is not None}
    return replace(AdaptationRule(), **given)


def _declare_adapt(commands: Subcommands) -> None:
    adapt = commands.add_parser(
        "adapt",
        help="adapt weights to one camera from its unlabeled frames (batch-norm statistics), when it needs it",
        description="Reads every image of --frames (one camera, one size; at least the rule's minimum) and writes "
        "--out when the rule adapts; nothing is written when the weights already fit the camera.",
    )
    adapt.add_argument("--frames", required=True, metavar="DIR", help="unlabeled images of one camera")
    adapt.add_argument("--out", required=True, metavar="OUT.pt")
    _add_model_options(adapt)
    _add_rule_options(adapt)
    adapt.add_argument("--json", action="store_true")
    adapt.set_defaults(run=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    from counting.adaptation import adapt

    folder = Path(args.frames)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of frames")
    images = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    outcome = adapt(args.arch, args.weights, images, args.out, _rule(args), args.precision, args.device, args.threads)
    out = str(outcome.weights) if outcome.weights else None
    if args.json:
        rule = outcome.rule | {
            "novelty": outcome.novelty,
            "nearest_reference": outcome.nearest_reference,
            "strength_applied": outcome.strength,
        }
        record = {"frames": outcome.frames, "rule": rule, "out": out}
        record |= {"mean_count_before": outcome.mean_count_before, "mean_count_after": outcome.mean_count_after}
        print(json.dumps(record))
    else:
        print(f"{outcome.reason} ({outcome.seconds:.0f} s)" + (f"; wrote {out}" if out else "; nothing written"))
    return 0


def _declare_adapt_references(commands: Subcommands) -> None:
    references = commands.add_parser(
        "adapt-references",
        help="write beside weights the statistics of each set they trained on (adaptation's references)",
    )
    references.add_argument("--weights", required=True)
    references.add_argument("--set", action="append", required=True, metavar="NAME=DATA", help="a set and its data")
    references.add_argument("--split", default="train")
    references.add_argument("--frames", type=positive_int, default=100, help="frames of each set, evenly thinned")
    references.add_argument("--precision", choices=PRECISIONS, default="auto")
    references.add_argument("--threads", type=positive_int)
    references.set_defaults(run=cmd_adapt_references)


def cmd_adapt_references(args: argparse.Namespace) -> int:
    from counting.adaptation import references_path, save_references, set_references, thin_evenly
    from counting.models import load_model
    from counting.training.datasets import load_annotated

    configure_threads(args.threads)
    model, _, weights = load_model(None, args.weights)
    sets = {}
    for item in args.set:
        name, _, data = item.partition("=")
        if not name or not data:
            raise ValueError(f"--set takes NAME=DATA, not {item!r}")
        images = sorted(sample.image_path for sample in load_annotated(data, args.split))
        sets[name] = thin_evenly(images, args.frames)
    out = references_path(weights)
    save_references(set_references(model, sets, args.precision), out)
    print(json.dumps({"weights": str(weights), "references": str(out), "sets": {n: len(i) for n, i in sets.items()}}))
    return 0


def _declare_adapt_bench(commands: Subcommands) -> None:
    adapt_bench = commands.add_parser(
        "adapt-bench", help="the leave-out benchmark of adaptation: per camera, MAE and bias before and after"
    )
    adapt_bench.add_argument(
        "--data", required=True, help="the folder of imported sets: beijing-brt, scut-head-a, mall (`import`)"
    )
    adapt_bench.add_argument("--shanghaitech", required=True)
    adapt_bench.add_argument("--split", choices=("validation", "test"), default="test")
    adapt_bench.add_argument("--weights", nargs="+", required=True)
    adapt_bench.add_argument("--strengths", type=float, nargs="*", default=[], help="further strengths to measure")
    _add_rule_options(adapt_bench)
    adapt_bench.add_argument("--precision", choices=PRECISIONS, default="auto")
    adapt_bench.add_argument("--threads", type=positive_int)
    adapt_bench.add_argument("--out", help="write every camera's counts here, a JSON object a line")
    adapt_bench.set_defaults(run=cmd_adapt_bench)


def cmd_adapt_bench(args: argparse.Namespace) -> int:
    from counting.training import adaptation_bench

    configure_threads(args.threads)
    cameras = adaptation_bench.leave_out_cameras(Path(args.data), Path(args.shanghaitech), args.split)
    if not cameras:
        raise ValueError(f"no leave-out cameras under {args.data} or {args.shanghaitech}")
    rule = _rule(args)
    strengths = sorted(set(args.strengths) | {rule.strength})
    results = adaptation_bench.run(
        [Path(w) for w in args.weights],
        cameras,
        strengths,
        rule,
        args.precision,
        lambda result: print(f"{result['weights']}: {result['camera']} measured", file=sys.stderr, flush=True),
    )
    if args.out:
        Path(args.out).write_text("".join(json.dumps(result) + "\n" for result in results))
    print(adaptation_bench.format_table(results, rule, strengths))
    return 0


def _declare_bench(commands: Subcommands) -> None:
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


def cmd_bench(args: argparse.Namespace) -> int:
    from counting.training.bench import format_table, run_bench

    if args.calibration_frames and not args.data:
        print("error: --calibration-frames needs --data (frames of its train split)", file=sys.stderr)
        return 2
    configure_threads(args.threads)
    accuracy = None
    if args.data:
        from counting.onnx_export import calibration_frames
        from counting.training.bench import Accuracy
        from counting.training.datasets import load_annotated

        test = load_annotated(args.data, "test")[: args.mae_images]
        accuracy = Accuracy(test, calibration_frames(args.data, 16))
    image_path = args.image or (accuracy.test[0].image_path if accuracy else None)
    rows = run_bench(load_rgb(image_path) if image_path else None, args.arch, args.repeats, accuracy)
    print(json.dumps(rows) if args.json else format_table(rows), flush=True)
    if args.calibration_frames:
        from counting.training.bench import bench_calibration, format_calibration
        from counting.training.calibration import CalibrationConfig

        config = CalibrationConfig(epochs=args.calibration_epochs or CalibrationConfig.epochs, threads=args.threads)
        row = bench_calibration(args.data, args.calibration_frames, config)
        print(json.dumps({"calibration": row}) if args.json else format_calibration(row))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m counting", description="CrowdScope crowd counting")
    commands = root.add_subparsers(dest="command", required=True)
    for declare in (
        _declare_count,
        _declare_evaluate,
        _declare_train,
        _declare_compare,
        _declare_export,
        _declare_widen,
        _declare_import,
        _declare_bench,
        _declare_adapt,
        _declare_adapt_references,
        _declare_adapt_bench,
    ):
        declare(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (WeightsError, ImageError, OSError, ValueError) as error:  # OSError: missing or unreadable paths
        print(f"error: {error}", file=sys.stderr)
        return 2
