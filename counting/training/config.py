"""A training run's recipe, each setting declared once: its name, type, default and the help text that
`python -m counting train` shows for it (the command's options are built from these fields).

Imports no torch: the command line and the run's `config.json` read it without loading a model.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Any

from counting.specs import ARCHITECTURE_NAMES

LOSSES = ("density", "bayesian")


def setting(help: str, default: Any = MISSING, **option: Any) -> Any:
    """A `TrainConfig` field with its help text; `option` adds argparse keywords (choices, metavar, required)."""
    metadata = {"help": help, "option": option}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything a run trains by. Fields without help text are filled in by the run itself, not set by hand."""

    arch: str = setting("architecture to train", choices=ARCHITECTURE_NAMES)
    data: list[str] = setting(
        "one data set or several (ShanghaiTech parts or point folders), each with a train split; with several, each "
        "is drawn as often as --set-weights says and the best model is chosen on all their validation slices together"
    )
    out: str = setting("run folder (default runs/ARCH-DATA)", required=False)
    epochs: int = setting("passes over the training frames (or --max-steps-per-epoch steps each)", 50)
    batch_size: int = setting("crops a step", 8)
    crop: tuple[int, int] = setting("crop height and width in pixels", (384, 512), metavar=("H", "W"))
    scale_range: tuple[float, float] = setting(
        "each frame is scaled by a random factor in this range before cropping", (0.8, 1.2), metavar=("LOW", "HIGH")
    )
    lr: float = setting("peak learning rate (AdamW), reached after the warm-up, then cosine decay", 5e-4)
    weight_decay: float = setting("AdamW weight decay of the weights (biases and batch-norm scales: none)", 1e-4)
    warmup_epochs: int = setting("epochs of linear learning-rate warm-up", 2)
    count_loss_weight: float = setting("weight of the count error beside the density MSE", 0.1)
    loss: str = setting(
        "density: MSE against Gaussian density maps plus the count term; bayesian: the Bayesian loss on the head "
        "points (counting.training.bayesian_loss)",
        "density",
        choices=LOSSES,
    )
    bayesian_sigma: float = setting("the Bayesian loss's Gaussian likelihood sigma in pixels", 8.0)
    bayesian_background_ratio: float = setting(
        "the background pseudo-head's distance as a fraction of the crop's shorter side (0: none)", 0.15
    )
    batch_norm_batches: int = setting("batches of training frames that re-estimate batch-norm statistics", 32)
    head_lr_scale: float = setting(
        "the density head's learning rate relative to the rest's (see counting.training.train.optimizer_groups)", 0.1
    )
    ema_decay: float = setting("decay of the exponential moving average of the weights that is validated", 0.995)
    val_fraction: float = setting("fraction of each set's train split held out for validation (seeded)", 0.1)
    val_max_frames: int | None = setting("at most this many validation frames from each data set", None)
    val_every: int = setting("validate every N epochs (and after the last)", 1)
    seed: int = setting("seed of the validation slice, the draws and the augmentation", 0)
    device: str = setting("cpu or cuda", "cpu")
    bf16: bool | None = setting("bf16 autocast (default: where the hardware computes bf16 natively)", None)
    threads: int | None = setting("torch intra-op threads (default: torch's choice)", None)
    # On a GPU one process cannot decode, scale and jitter crops as fast as the model consumes them.
    loader_workers: int = setting("processes preparing training crops beside the training loop (0: in it)", 0)
    max_steps_per_epoch: int | None = setting(
        "end each epoch after N steps (on a large mix: validate and checkpoint more often than once a pass)", None
    )
    vgg16: str | None = setting("a local torchvision VGG-16 state dict to start full CSRNet's front end from", None)
    init_weights: str | None = setting("start from these weights (a fine-tuning phase)", None)
    # With fixed statistics training and inference normalise alike, so the count no longer hangs on a fresh estimate
    # at every validation.
    freeze_batch_norm: bool = setting(
        "estimate batch-norm statistics once, at the start, and train with them fixed", False
    )
    # Weights trained under fixed statistics are tied to them: estimated afresh on the same weights, they moved a
    # fine-tune's counts before its first step (see csrnet-lite-mix.md, fifth and sixth runs).
    keep_batch_norm: bool = setting(
        "with --init-weights and --freeze-batch-norm: keep the starting weights' statistics instead of estimating them",
        False,
    )
    # An average of the points SGD visits generalises better than any one of them, and its validation MAE swings less.
    swa_start_epoch: int | None = setting(
        "from this epoch (1-based) on, average the EMA weights at the end of every epoch (SWA, swa.pt)", None
    )
    photometric: bool = setting("colour jitter, greyscale, blur and JPEG artefacts on the crops", False)
    set_weights: list[float] | None = setting(
        "with several data sets, how often each is drawn relative to the others, in --data's order (default: equally)",
        None,
        metavar="WEIGHT",
    )
    baseline_weights: str | None = setting(
        "weights the run must not fall behind (the current default): the epoch kept is the best-scoring of those "
        "worse than them on the fewest validation sets by more than the paired standard error",
        None,
    )
    val_images: list[str] = field(default_factory=list)  # "SET/IMAGE_NAME" of the validation slices, SET the folder

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers must be 0 or more, not {self.loader_workers}")
        for name in ("epochs", "batch_size", "batch_norm_batches", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("threads", "val_max_frames", "max_steps_per_epoch", "swa_start_epoch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 when given, not {getattr(self, name)}")
        if self.keep_batch_norm and not (self.init_weights and self.freeze_batch_norm):
            raise ValueError("keep_batch_norm needs init_weights and freeze_batch_norm: no statistics to keep")
        if self.set_weights is not None and (len(self.set_weights) != len(self.data) or min(self.set_weights) <= 0):
            raise ValueError(f"set weights {self.set_weights}: give one positive weight for each of {self.data}")

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> TrainConfig:
        """The config of a run's checkpoint or `config.json` (JSON turned the tuples into lists)."""
        return cls(**{**saved, "crop": tuple(saved["crop"]), "scale_range": tuple(saved["scale_range"])})


# What may differ when a run resumes: where it runs and how long it lasts, not how it trains.
RESUMABLE_CHANGES = {"epochs", "device", "threads", "loader_workers", "out", "val_images"}
