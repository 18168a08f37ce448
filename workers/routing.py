"""Queue names: a counting queue per model, so GPU hosts can take full CSRNet and CPU hosts the compact one."""


def count_queue(arch: str) -> str:
    return f"count.{arch}"


# The LLM is heavy: reports have a queue of their own, so counting never waits behind one.
REPORTS_QUEUE = "reports"

# Calibration fine-tunes for minutes: its own queue, so counting never waits behind a tuning job.
CALIBRATE_QUEUE = "calibrate"
