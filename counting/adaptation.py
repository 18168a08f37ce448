"""Label-free adaptation of a model to one camera: its batch-norm statistics, re-estimated from the camera's frames.

A model normalises each feature channel by statistics (mean and variance) gathered on the frames it trained on. A
camera unlike them (another lens, light, viewpoint, compression) shifts those statistics, and the model counts off:
the default weights counted about half of the people of one CCTV camera none of our data covers. Re-estimating the
statistics on the camera's own unlabeled frames corrects much of that (Li et al. 2016, "Revisiting Batch
Normalization for Practical Domain Adaptation"), and mixing them with the weights' own by a strength works better
than replacing them (Schneider et al. 2020): `running = (1 - strength) * weights' + strength * camera's`.

The same step can make a camera worse whose frames the weights already know: weights fine-tuned with frozen
statistics (the default, `csrnet-lite-mix3`) learned to count every training set through one set of statistics, and
a trained-on camera's own statistics undo that. So the rule first measures how NOVEL the camera is: the distance of
its statistics, as the unadapted model sees them, from the nearest of the weights' references, which are the weights'
own running statistics and, where the weights ship them (`REFERENCE_SUFFIX` beside the weights file), the statistics
of each set they trained on (`reference_statistics`). Below `AdaptationRule.novelty_threshold` the camera keeps its
weights; above it, the statistics of the first `AdaptationRule.layers` batch-norm layers are mixed by
`AdaptationRule.strength`. Only the first layers, because the statistics of deeper layers describe what a frame
shows, not only how the camera sees it: a classroom camera's deep statistics, taken as its own, normalised its full
rows of heads into "an average frame" and tripled its count, while the first layers carry the colour, contrast and
blur that set cameras apart (`counting/weights/adaptation.md` has the measurements).

The distance (`novelty`) is per channel the squared 2-Wasserstein distance of two normal distributions over the
reference variance, `((mu_a - mu_b)^2 + (sigma_a - sigma_b)^2) / sigma_b^2`, averaged over each layer's channels and
then over the layers: 0 for the same statistics, about 1 when the camera's features sit a standard deviation away.

Adapting takes three passes, each counting whole frames as the engine does (`frame_density`, at the working size):
the weights as they are on `counted_frames` of the frames (counts before, and the statistics for the novelty); the
statistics pass over all of them, where every layer normalises each frame by that frame's own statistics, as batch
norm does in training, so each layer's statistics are measured with the layers before it adapted (Li et al.'s
estimate); then the adapted weights on the counted frames again (counts after).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from counting.engine import configure_threads, frame_density, predict_density
from counting.images import ImageError, load_rgb, to_working_size
from counting.models import WeightsError, load_model, save_weights_atomically
from counting.progress import WorkProgress

# Beside a weights file NAME.pt: NAME.references.npz, the statistics of each set the weights trained on.
REFERENCE_SUFFIX = ".references.npz"
# The weights' own running statistics, always a reference.
OWN_STATISTICS = "weights"
_EPSILON = 1e-5
SAMPLED_PIXELS = 16384


class AdaptationError(ValueError):
    """An adaptation that cannot run: too few or unreadable frames, frames of mixed sizes, a model without batch
    norm. The message says what is missing; nothing is written."""


@dataclass(frozen=True)
class AdaptationRule:
    """When and how much a camera's own statistics replace the weights'. Chosen on the validation cut of the
    leave-out benchmark and committed before its test cut was read (`counting/weights/adaptation.md`)."""

    min_frames: int = 20
    max_frames: int = 100  # more frames are thinned evenly in the order given (callers spread them over the hours)
    # Of those, the frames counted before and after and whose statistics measure the novelty: the statistics pass
    # alone needs every frame, and three passes over 100 frames of 1280x720 took 90 s on 2 cores.
    counted_frames: int = 30
    # A camera no farther than this from a reference keeps its weights: cameras of the sets the default trained on
    # measured 0.002 to 0.039 from their set, the cameras it never saw 0.15 and more.
    novelty_threshold: float = 0.05
    layers: int = 2  # the batch-norm layers adapted, counted from the input (module docstring); 0: all of them
    strength: float = 0.5  # share of the camera's statistics in those layers, 0..1
    # A switch must move the mean count by at least this share of it: smaller moves were as often worse as better.
    min_count_change: float = 0.15

    def is_novel(self, novelty: float) -> bool:
        return novelty > self.novelty_threshold

    def worth_switching(self, mean_before: float, mean_after: float) -> bool:
        """Whether adapted counts differ enough from the weights' (relative to at least one person a frame)."""
        return abs(mean_after - mean_before) >= self.min_count_change * max(mean_before, 1.0)


@dataclass(frozen=True)
class AdaptationOutcome:
    frames: int
    frame_names: list[str]
    rule: dict  # the rule's fields
    novelty: float  # distance to the nearest reference
    nearest_reference: str
    strength: float  # applied: 0 when not adapted
    adapted: bool  # False: the camera keeps its weights (`reason` says why); nothing written
    mean_count_before: float
    mean_count_after: float  # by the adapted statistics, also when they moved the count too little; else as before
    reason: str
    seconds: float
    weights: Path | None  # `out` when adapted


# Statistics of each batch-norm layer by its name in the model: (mean, variance) per channel, float64.
Statistics = dict[str, tuple[np.ndarray, np.ndarray]]


def norm_layers(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """The model's batch-norm layers by name; raises AdaptationError when it has none."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not layers:
        raise AdaptationError(
            f"{type(model).__name__} has no batch-norm layers: there are no statistics to adapt "
            "(adaptation works for csrnet-lite, csrnet-half and skynet-count)"
        )
    return layers


def running_statistics(layer: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's running mean and variance (the tensors themselves); raises AdaptationError when it keeps none
    (built with track_running_stats=False)."""
    if layer.running_mean is None or layer.running_var is None:
        raise AdaptationError("a batch-norm layer keeps no running statistics: there are none to adapt")
    return layer.running_mean, layer.running_var


def own_statistics(model: nn.Module) -> Statistics:
    statistics = {}
    for name, layer in norm_layers(model).items():
        mean, variance = running_statistics(layer)
        statistics[name] = (mean.double().cpu().numpy(), variance.double().cpu().numpy())
    return statistics


class _Accumulator:
    """Per-channel sums of one layer's inputs over every pixel of every frame seen."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None
        self.pixels = 0

    def add(self, frame_sum: torch.Tensor, frame_squares: torch.Tensor, pixels: int) -> None:
        if self.total is None or self.squares is None:
            self.total, self.squares = frame_sum.clone(), frame_squares.clone()
        else:
            self.total += frame_sum
            self.squares += frame_squares
        self.pixels += pixels

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean and variance per channel; raises AdaptationError when no frame reached the layer."""
        if self.total is None or self.squares is None:
            raise AdaptationError("no frame reached a batch-norm layer: there are no statistics to measure")
        mean = self.total / self.pixels
        variance = (self.squares / self.pixels - mean**2).clamp_min(0.0)
        return mean.cpu().numpy(), variance.cpu().numpy()


@contextmanager
def recording(model: nn.Module, each_frame_its_own: bool = False) -> Iterator[dict[str, _Accumulator]]:
    """Record the per-channel statistics of every batch-norm layer's input while the model runs.

    With `each_frame_its_own` each layer also normalises each input by the input's own statistics, as batch norm
    does in training (the statistics pass of the module docstring); the weights' statistics are restored on
    leaving. Without it the model runs unchanged.
    """
    accumulators: dict[str, _Accumulator] = {}
    saved: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []

    def hook_for(name: str) -> Callable:
        def hook(layer: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor]) -> None:
            x = inputs[0].detach()
            # A regular grid of at most about SAMPLED_PIXELS pixels a frame: reducing every pixel of the full-size
            # layers cost seven forward passes, and a frame's statistics barely move on a grid.
            step = max(1, math.isqrt(x.shape[2] * x.shape[3] // SAMPLED_PIXELS))
            x = x[:, :, ::step, ::step]
            pixels = x.shape[0] * x.shape[2] * x.shape[3]
            # In fp32 (a frame's sums are stable enough there), accumulated over frames in float64.
            variance, mean = torch.var_mean(x.float(), dim=(0, 2, 3), correction=0)
            mean, variance = mean.double(), variance.double()
            accumulators[name].add(mean * pixels, (variance + mean**2) * pixels, pixels)
            if each_frame_its_own:
                running_mean, running_var = running_statistics(layer)
                running_mean.copy_(mean)
                running_var.copy_(variance)

        return hook

    for name, layer in norm_layers(model).items():
        accumulators[name] = _Accumulator()
        running_mean, running_var = running_statistics(layer)
        saved[name] = (running_mean.clone(), running_var.clone())
        handles.append(layer.register_forward_pre_hook(hook_for(name)))
    try:
        yield accumulators
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for name, layer in norm_layers(model).items():
                running_mean, running_var = running_statistics(layer)
                running_mean.copy_(saved[name][0])
                running_var.copy_(saved[name][1])


def novelty(camera: Statistics, reference: Statistics) -> float:
    """Mean over layers of the mean over channels of the squared 2-Wasserstein distance over the reference variance
    (module docstring). Both must describe the same layers."""
    if camera.keys() != reference.keys():
        raise AdaptationError("the reference statistics describe other layers than the model's")
    per_layer = []
    for name, (mean, variance) in camera.items():
        ref_mean, ref_variance = reference[name]
        spread = (np.sqrt(variance) - np.sqrt(ref_variance)) ** 2
        per_layer.append(float(np.mean(((mean - ref_mean) ** 2 + spread) / (ref_variance + _EPSILON))))
    return float(np.mean(per_layer))


def mixed(own: Statistics, camera: Statistics, strength: float, layers: int | None = None) -> Statistics:
    """The weights' statistics with the camera's mixed in by `strength` in the first `layers` batch-norm layers
    (counted from the input, in the model's order; None: all of them; `camera` needs only those)."""
    return {
        name: (
            ((1 - strength) * mean + strength * camera[name][0], (1 - strength) * var + strength * camera[name][1])
            if layers is None or index < layers
            else (mean, var)
        )
        for index, (name, (mean, var)) in enumerate(own.items())
    }


def set_statistics(model: nn.Module, statistics: Statistics) -> None:
    with torch.no_grad():
        for name, layer in norm_layers(model).items():
            mean, variance = statistics[name]
            running_mean, running_var = running_statistics(layer)
            running_mean.copy_(torch.from_numpy(mean).to(running_mean))
            running_var.copy_(torch.from_numpy(variance).to(running_var))


def references_path(weights: str | Path) -> Path:
    weights = Path(weights)
    return weights.with_name(weights.stem + REFERENCE_SUFFIX)


def save_references(references: dict[str, Statistics], path: str | Path) -> None:
    """Write reference statistics by set name (`reference_statistics` reads them back)."""
    arrays = {}
    for reference, statistics in references.items():
        for layer, (mean, variance) in statistics.items():
            arrays[f"{reference}|{layer}|mean"] = mean.astype(np.float32)
            arrays[f"{reference}|{layer}|var"] = variance.astype(np.float32)
    # numpy's stub lets a keyword array fill savez_compressed's allow_pickle flag; these keys all hold "|".
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def reference_statistics(model: nn.Module, weights: str | Path) -> dict[str, Statistics]:
    """The references of weights (module docstring): their own running statistics, and each training set's
    statistics from the file beside them when there is one."""
    references = {OWN_STATISTICS: own_statistics(model)}
    path = references_path(weights)
    if path.is_file():
        halves: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        with np.load(path) as arrays:
            for key in arrays.files:
                reference, layer, which = key.split("|")
                halves.setdefault((reference, layer), {})[which] = arrays[key].astype(np.float64)
        for (reference, layer), both in halves.items():
            if both.keys() != {"mean", "var"}:
                raise AdaptationError(f"{path}: {reference}'s statistics of {layer} lack their mean or variance")
            references.setdefault(reference, {})[layer] = (both["mean"], both["var"])
    return references


def spread_over_hours(times: Sequence[datetime], limit: int) -> list[int]:
    """Up to `limit` indices into `times`, spread over the hours of the day so that day and night both count: the
    frames are grouped by hour of day and taken in turn from each hour, each hour's frames evenly over its span."""
    by_hour: dict[int, list[int]] = {}
    for index in sorted(range(len(times)), key=lambda i: times[i]):
        by_hour.setdefault(times[index].hour, []).append(index)
    queues = [_evenly(indices) for indices in by_hour.values()]
    chosen: list[int] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def _evenly(indices: list[int]) -> list[int]:
    """`indices` reordered so that any prefix of the result is spread evenly over them (bisection order)."""
    order: list[int] = []
    seen: set[int] = set()
    steps = 1
    while len(order) < len(indices):
        for k in range(steps):
            position = (2 * k + 1) * len(indices) // (2 * steps)
            if position not in seen:
                seen.add(position)
                order.append(indices[position])
        steps *= 2
        if steps > 2 * len(indices):
            order += [index for position, index in enumerate(indices) if position not in seen]
            break
    return order


def thin_evenly(items: list, limit: int) -> list:
    """At most `limit` of `items`, evenly spaced, in their order."""
    if len(items) <= limit:
        return list(items)
    return [items[math.floor(i * len(items) / limit)] for i in range(limit)]


def read_frames(images: list[Path], rule: AdaptationRule, one_size: bool = True) -> list[np.ndarray]:
    """The frames as RGB arrays; raises AdaptationError for fewer than `rule.min_frames`, an unreadable one, or
    (with `one_size`: a camera's frames) frames of mixed sizes."""
    if len(images) < rule.min_frames:
        raise AdaptationError(
            f"too few frames: {len(images)}, at least {rule.min_frames} unlabeled frames of the camera are needed"
        )
    frames: list[np.ndarray] = []
    sizes: dict[tuple[int, ...], str] = {}
    for path in images:
        try:
            rgb = load_rgb(path)
        except ImageError as error:
            raise AdaptationError(str(error)) from error
        sizes.setdefault(rgb.shape[:2], Path(path).name)
        frames.append(rgb)
    if one_size and len(sizes) > 1:
        described = ", ".join(f"{w}x{h} ({name})" for (h, w), name in list(sizes.items())[:3])
        raise AdaptationError(f"frames of mixed sizes: {described}; adapt on frames of one camera at one size")
    return frames


def _count_all(
    model: nn.Module, frames: list[np.ndarray], precision: str, device: str, progress: WorkProgress, label: str
) -> list[float]:
    counts = []
    for index, rgb in enumerate(frames, start=1):
        counts.append(float(frame_density(model, rgb, precision, device).sum(dtype=np.float64)))
        progress.advance(f"{label}: frame {index}/{len(frames)}")
    return counts


def measure(
    model: nn.Module, frames: list[np.ndarray], precision: str, device: str, progress: WorkProgress, label: str
) -> tuple[list[float], Statistics]:
    """Counts of `frames` by `model` as it is, and its batch-norm layers' input statistics over them."""
    with recording(model) as accumulators:
        counts = _count_all(model, frames, precision, device, progress, label)
    return counts, {name: accumulator.result() for name, accumulator in accumulators.items()}


class _Measured(Exception):
    """Raised past the last layer whose statistics are wanted: the rest of the forward pass would be wasted."""


def _stop_here(*_: object) -> None:
    raise _Measured


def camera_statistics(
    model: nn.Module,
    frames: list[np.ndarray],
    precision: str,
    device: str,
    progress: WorkProgress,
    layers: int | None = None,
) -> Statistics:
    """The statistics pass of the module docstring: each layer's input statistics over `frames` (each at the working
    size, whole), each frame normalised by its own statistics in every layer before. With `layers`, only the first
    `layers` are measured and each forward pass stops there: with 2 of csrnet-lite's 16, about a twentieth of it."""
    names = list(norm_layers(model))
    stop = None
    if layers:
        last = dict(model.named_modules())[names[min(layers, len(names)) - 1]]
        stop = last.register_forward_hook(_stop_here)
    try:
        with recording(model, each_frame_its_own=True) as accumulators:
            for index, rgb in enumerate(frames, start=1):
                with suppress(_Measured):
                    predict_density(model, to_working_size(rgb), precision, device)
                progress.advance(f"measuring the camera's statistics: frame {index}/{len(frames)}")
    finally:
        if stop is not None:
            stop.remove()
    return {name: accumulator.result() for name, accumulator in accumulators.items() if accumulator.pixels}


def adapt(
    arch: str | None,
    base_weights: str | Path | None,
    images: list[Path],
    out: str | Path,
    rule: AdaptationRule = AdaptationRule(),
    precision: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> AdaptationOutcome:
    """Adapt `base_weights` (None: `arch`'s default weights) to the camera whose unlabeled frames are `images`, by
    `rule` (module docstring), and write the adapted weights to `out` when the rule adapts (atomically; nothing is
    written otherwise). The checkpoint's meta records the rule, the frames, the novelty and the counts.

    `progress(fraction, message)` is called after every frame of every pass. Raises AdaptationError for too few,
    unreadable or mixed-size frames and for a model without batch norm, before anything is written.
    """
    started = time.perf_counter()
    configure_threads(threads)
    images = thin_evenly([Path(image) for image in images], rule.max_frames)
    frames = read_frames(images, rule)
    try:
        model, arch, base_path = load_model(arch, base_weights)
    except WeightsError as error:
        raise AdaptationError(str(error)) from error
    model = model.to(device)
    references = reference_statistics(model, base_path)
    # Three passes when the camera is novel; when it is not, the progress jumps to the end after the first.
    tracker = WorkProgress(len(frames) + 2 * min(len(frames), rule.counted_frames), progress)
    counted = thin_evenly(frames, rule.counted_frames)
    before, seen = measure(model, counted, precision, device, tracker, "counting with the current weights")
    distances = {name: novelty(seen, statistics) for name, statistics in references.items()}
    nearest = min(distances, key=lambda name: distances[name])
    mean_before = float(np.mean(before))
    described = f"novelty {distances[nearest]:.3f} (nearest: {nearest})"
    weights, mean_after, adapted = None, mean_before, False
    if not rule.is_novel(distances[nearest]):
        reason = (
            f"{described} is within {rule.novelty_threshold:g}: the weights already know frames like these, "
            "so the camera keeps them"
        )
    else:
        statistics = camera_statistics(model, frames, precision, device, tracker, rule.layers or None)
        set_statistics(model, mixed(own_statistics(model), statistics, rule.strength, rule.layers or None))
        mean_after = float(np.mean(_count_all(model, counted, precision, device, tracker, "counting adapted")))
        moved = f"mean count {mean_before:.1f} -> {mean_after:.1f} on {len(counted)} of {len(frames)} frames"
        adapted = rule.worth_switching(mean_before, mean_after)
        if not adapted:
            reason = (
                f"{described} over {rule.novelty_threshold:g}, but adapting moved the {moved}, under "
                f"{rule.min_count_change:.0%}: too little to switch, so the camera keeps its weights"
            )
        else:
            reason = (
                f"{described} over {rule.novelty_threshold:g}: adapted with {rule.strength:g} of the camera's "
                f"statistics in the first {rule.layers or 'all'} batch-norm layers; {moved}"
            )
            meta = {
                "adaptation": {
                    "base_weights": str(base_path),
                    "rule": asdict(rule),
                    "frames": [image.name for image in images],
                    "novelty": distances[nearest],
                    "nearest_reference": nearest,
                    "strength": rule.strength,
                    "mean_count_before": mean_before,
                    "mean_count_after": mean_after,
                }
            }
            weights = Path(out)
            save_weights_atomically(model, arch, weights, **meta)
    tracker.finish(reason)
    return AdaptationOutcome(
        frames=len(frames),
        frame_names=[image.name for image in images],
        rule=asdict(rule),
        novelty=distances[nearest],
        nearest_reference=nearest,
        strength=rule.strength if adapted else 0.0,
        adapted=adapted,
        mean_count_before=mean_before,
        mean_count_after=mean_after,
        reason=reason,
        seconds=time.perf_counter() - started,
        weights=weights,
    )


def set_references(
    model: nn.Module, sets: dict[str, list[Path]], precision: str = "auto", device: str = "cpu"
) -> dict[str, Statistics]:
    """The statistics of each named set of frames (any sizes) as `model` sees them unadapted: what
    `save_references` writes beside weights trained on those sets."""
    references = {}
    for name, images in sets.items():
        frames = [load_rgb(path) for path in images]
        _, references[name] = measure(model, frames, precision, device, WorkProgress(len(frames), None), name)
    return references
