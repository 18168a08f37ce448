"""The leave-out benchmark of label-free adaptation: per camera, counts before and after adapting to it.

A camera here is a fixed viewpoint with head-annotated frames, taken from the data sets we have:
- Beijing-BRT: two bus-station cameras, named by the number before the dash of each file name.
- SCUT-HEAD Part A: classroom cameras, none named, so frames are grouped into scenes by the correlation of their
  32x24 grey thumbnails (average linkage; a fixed camera's background dominates its thumbnail; rooms of one layout
  may share a scene). Test frames join the train scene whose mean thumbnail they correlate with best; scenes with
  under `MIN_SCENE_FRAMES` train frames or `MIN_SCENE_FRAMES // 4` test frames are left out.
- ShanghaiTech Part B: street photos from many viewpoints (no two share a scene by the measure above), taken as one
  domain, the one `csrnet-lite-shtb` trained on.
- Mall (Loy et al. 2013; a shopping-mall camera, 2,000 frames): frames 1-800 are its train part, as in its papers;
  counted inside its region of interest, the only part annotated (`counting.training.importers.import_mall` writes it).

Two ways to cut each camera (`--split`), both in name (capture) order, even positions adapting and odd positions
counted (at most `EVALUATED_FRAMES`, evenly), and a camera with fewer than the rule's minimum to adapt on left out:
- "validation", for choosing a rule: the camera's train frames.
- "test", for the figures reported: its test frames, none of which any weights or reference statistics saw.

Labels are only ever used to score counts: adaptation reads images alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from counting.adaptation import (
    OWN_STATISTICS,
    AdaptationRule,
    camera_statistics,
    measure,
    mixed,
    novelty,
    own_statistics,
    read_frames,
    reference_statistics,
    set_statistics,
    thin_evenly,
)
from counting.engine import frame_density
from counting.images import load_rgb
from counting.models import load_model
from counting.progress import WorkProgress
from counting.training.datasets import AnnotatedImage, load_annotated, point_folder
from counting.training.evaluate import CountErrors, PairedChange
from counting.training.importers import region_of_interest_path

MIN_SCENE_FRAMES = 40
SCENE_DISTANCE = 0.3  # correlation distance at which thumbnails are cut into scenes
MALL_TRAIN_FRAMES = 800
MIN_ADAPT_FRAMES = AdaptationRule.min_frames
EVALUATED_FRAMES = 40  # frames counted per camera and cut, evenly thinned


@dataclass
class LeaveOutCamera:
    name: str
    data_set: str  # the set it comes from, to tell whether weights trained on it
    adapt_images: list[Path]
    evaluated: list[AnnotatedImage]
    mask: np.ndarray | None = None  # bool, at the frame's size: only people inside count


def _thumbnail(path: Path) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(load_rgb(path), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    return (small - small.mean()) / (small.std() + 1e-6)


def scenes(train: list[AnnotatedImage], test: list[AnnotatedImage]) -> list[tuple[list, list]]:
    """Train and test frames grouped into scenes (module docstring), largest first."""
    from scipy.cluster.hierarchy import fcluster, linkage

    train_thumbs = np.stack([_thumbnail(s.image_path) for s in train])
    labels = fcluster(linkage(train_thumbs, "average", metric="correlation"), SCENE_DISTANCE, "distance")
    kept = [label for label in np.unique(labels) if (labels == label).sum() >= MIN_SCENE_FRAMES]
    centroids = np.stack([train_thumbs[labels == label].mean(axis=0) for label in kept])
    centroids = (centroids - centroids.mean(axis=1, keepdims=True)) / centroids.std(axis=1, keepdims=True)
    test_labels = [kept[int(np.argmax(centroids @ _thumbnail(s.image_path)))] for s in test]
    groups = []
    for label in kept:
        scene_test = [s for s, t in zip(test, test_labels, strict=True) if t == label]
        if len(scene_test) >= MIN_SCENE_FRAMES // 4:
            groups.append(([s for s, t in zip(train, labels, strict=True) if t == label], scene_test))
    return sorted(groups, key=lambda group: -len(group[0]))


def _cut(
    name: str,
    data_set: str,
    train: list[AnnotatedImage],
    test: list[AnnotatedImage],
    split: str,
    mask: np.ndarray | None = None,
) -> LeaveOutCamera | None:
    """The camera's frames cut as `split` says (module docstring); None when it has too few frames to adapt on."""
    frames = sorted(train if split == "validation" else test, key=lambda s: s.image_path.name)
    adapt, evaluated = frames[0::2], frames[1::2]
    if len(adapt) < MIN_ADAPT_FRAMES:
        return None
    return LeaveOutCamera(name, data_set, [s.image_path for s in adapt], thin_evenly(evaluated, EVALUATED_FRAMES), mask)


def leave_out_cameras(data: Path, shanghaitech: Path, split: str) -> list[LeaveOutCamera]:
    """Every camera of the module docstring found under `data` (imported sets) and `shanghaitech`."""
    cameras = []
    brt = data / "beijing-brt"
    if brt.is_dir():
        train, test = load_annotated(brt, "train"), load_annotated(brt, "test")
        for number in sorted({s.image_path.name.split("-")[0] for s in train}):
            camera_train, camera_test = (
                [s for s in part if s.image_path.name.split("-")[0] == number] for part in (train, test)
            )
            cameras.append(_cut(f"beijing-brt {number}", "beijing-brt", camera_train, camera_test, split))
    scut = data / "scut-head-a"
    if scut.is_dir():
        groups = scenes(load_annotated(scut, "train"), load_annotated(scut, "test"))
        for scene, (train, test) in enumerate(groups, start=1):
            cameras.append(_cut(f"scut-head-a scene {scene}", "scut-head-a", train, test, split))
    part_b = shanghaitech / "part_B"
    if part_b.is_dir():
        train, test = load_annotated(part_b, "train"), load_annotated(part_b, "test")
        cameras.append(_cut("part_B (every scene)", "part_B", train, test, split))
    mall = data / "mall"
    if mall.is_dir():
        frames = point_folder(mall)
        roi = region_of_interest_path(mall)
        mask = load_rgb(roi)[:, :, 0] > 127 if roi.is_file() else None
        cameras.append(_cut("mall", "mall", frames[:MALL_TRAIN_FRAMES], frames[MALL_TRAIN_FRAMES:], split, mask))
    return [camera for camera in cameras if camera is not None]


def _counts(model: nn.Module, camera: LeaveOutCamera, precision: str) -> np.ndarray:
    counts = []
    for sample in camera.evaluated:
        density = frame_density(model, load_rgb(sample.image_path), precision)
        if camera.mask is not None:
            import cv2

            cells = cv2.resize(camera.mask.astype(np.float32), density.shape[::-1], interpolation=cv2.INTER_AREA)
            density = density * cells
        counts.append(float(density.sum(dtype=np.float64)))
    return np.array(counts)


@dataclass
class CameraResult:
    camera: str
    data_set: str
    frames: int
    mean_count: float
    novelty: float
    nearest_reference: str
    # By strength ("0": the weights as they are): counts of the evaluated frames, and the mean count of the adapted
    # frames the rule counts to decide (`AdaptationRule.counted_frames` of them).
    counts: dict[str, list[float]] = field(default_factory=dict)
    decision_mean: dict[str, float] = field(default_factory=dict)
    annotated: list[float] = field(default_factory=list)


def run_camera(
    model: nn.Module,
    weights: Path,
    camera: LeaveOutCamera,
    strengths: list[float],
    rule: AdaptationRule,
    precision: str,
) -> CameraResult:
    """What `counting.adaptation.adapt` measures to decide, for the rule and each strength in its layers, and the
    counts of the camera's evaluated frames by the weights and by each strength."""
    own = own_statistics(model)
    frames = read_frames(thin_evenly(camera.adapt_images, rule.max_frames), rule, one_size=False)
    counted = thin_evenly(frames, rule.counted_frames)
    before, seen = measure(model, counted, precision, "cpu", WorkProgress(len(counted), None), "measuring")
    distances = {name: novelty(seen, stats) for name, stats in reference_statistics(model, weights).items()}
    nearest = min(distances, key=lambda name: distances[name])
    annotated = [float(s.count) for s in camera.evaluated]
    result = CameraResult(
        camera.name, camera.data_set, len(annotated), float(np.mean(annotated)), distances[nearest], nearest
    )
    result.annotated = annotated
    result.counts["0"] = _counts(model, camera, precision).tolist()
    result.decision_mean["0"] = float(np.mean(before))
    progress = WorkProgress(len(frames), None)
    statistics = camera_statistics(model, frames, precision, "cpu", progress, rule.layers or None)
    for strength in strengths:
        set_statistics(model, mixed(own, statistics, strength, rule.layers or None))
        result.counts[f"{strength:g}"] = _counts(model, camera, precision).tolist()
        after = [frame_density(model, rgb, precision).sum(dtype=np.float64) for rgb in counted]
        result.decision_mean[f"{strength:g}"] = float(np.mean(after))
        set_statistics(model, own)
    return result


def run(
    weights: list[Path],
    cameras: list[LeaveOutCamera],
    strengths: list[float],
    rule: AdaptationRule,
    precision: str,
    report: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Every camera under every weights file, as JSON-ready dicts (each also passed to `report` as it comes)."""
    results = []
    for path in weights:
        model, _, path = load_model(None, path)
        trained_on = set(reference_statistics(model, path)) - {OWN_STATISTICS}
        for camera in cameras:
            result = run_camera(model, path, camera, strengths, rule, precision)
            record = {"weights": path.name, "trained": camera.data_set in trained_on, **result.__dict__}
            results.append(record)
            if report is not None:
                report(record)
    return results


def rule_decision(result: dict, rule: AdaptationRule) -> float:
    """The strength the rule applies to the camera of `result`, as `counting.adaptation.adapt` decides: 0 when it is
    not novel or the adapted counts move too little."""
    key = f"{rule.strength:g}"
    if not rule.is_novel(result["novelty"]):
        return 0.0
    if not rule.worth_switching(result["decision_mean"]["0"], result["decision_mean"][key]):
        return 0.0
    return rule.strength


def summary_rows(result: dict, rule: AdaptationRule) -> dict:
    """MAE and bias before and by `rule`, and the paired standard error of the change, for one camera's result."""
    truth = result["annotated"]
    strength = rule_decision(result, rule)
    before = result["counts"]["0"]
    after = result["counts"][f"{strength:g}"] if strength else before
    default, adapted = CountErrors.of(before, truth), CountErrors.of(after, truth)
    change = PairedChange.of(after, before, truth)
    return {
        "weights": result["weights"],
        "camera": result["camera"],
        "kind": "trained" if result.get("trained") else "unseen",
        "frames": result["frames"],
        "mean_count": round(result["mean_count"], 1),
        "novelty": round(result["novelty"], 3),
        "nearest": result["nearest_reference"],
        "strength": strength,
        "count_change": round(
            result["decision_mean"][f"{rule.strength:g}"] / max(result["decision_mean"]["0"], 1.0) - 1, 2
        ),
        "mae_default": round(default.mae, 2),
        "bias_default": round(default.bias, 2),
        "mae_adapted": round(adapted.mae, 2),
        "bias_adapted": round(adapted.bias, 2),
        "change": round(change.mae_change, 2),
        "paired_se": round(change.standard_error, 2),
    }


def format_table(results: list[dict], rule: AdaptationRule, strengths: list[float]) -> str:
    """One table per weights file: each camera's MAE / bias by the weights and by the rule, the paired standard
    error of the change, the MAE at each measured strength; then the medians the issue's targets name."""
    lines = [
        f"rule: past novelty {rule.novelty_threshold:g}, {rule.strength:g} of the camera's statistics in the first "
        f"{rule.layers or 'all'} batch-norm layers when that moves the mean count by {rule.min_count_change:.0%} or "
        f"more; {rule.max_frames} frames, {rule.counted_frames} of them counted"
    ]
    for weights in dict.fromkeys(result["weights"] for result in results):
        rows = [summary_rows(result, rule) for result in results if result["weights"] == weights]
        lines += [
            "",
            f"{weights}",
            "| camera | kind | frames | mean | novelty (nearest) | count moved | adapted | default MAE / bias "
            "| rule's MAE / bias | change | paired SE | "
            + " | ".join(f"s={strength:g}" for strength in strengths)
            + " |",
            "|" + "---|" * (11 + len(strengths)),
        ]
        for row, result in zip(rows, [r for r in results if r["weights"] == weights], strict=True):
            by_strength = [CountErrors.of(result["counts"][f"{s:g}"], result["annotated"]).mae for s in strengths]
            lines.append(
                f"| {row['camera']} | {row['kind']} | {row['frames']} | {row['mean_count']} "
                f"| {row['novelty']} ({row['nearest']}) | {row['count_change']:+.0%} "
                f"| {'yes' if row['strength'] else 'no'} "
                f"| {row['mae_default']} / {row['bias_default']:+} "
                f"| {row['mae_adapted']} / {row['bias_adapted']:+} | {row['change']:+} | {row['paired_se']} | "
                + " | ".join(f"{mae:.2f}" for mae in by_strength)
                + " |"
            )
        for kind in ("unseen", "trained"):
            chosen = [row for row in rows if row["kind"] == kind]
            if chosen:
                before = float(np.median([row["mae_default"] for row in chosen]))
                after = float(np.median([row["mae_adapted"] for row in chosen]))
                worse = sum(row["change"] > row["paired_se"] for row in chosen)
                lines.append(
                    f"{kind}: {len(chosen)} cameras, median MAE {before:.2f} -> {after:.2f} "
                    f"({(after - before) / before:+.0%}); worse by more than the paired SE: {worse}"
                )
    return "\n".join(lines)
