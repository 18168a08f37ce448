"""Queue names: a counting queue per model, so GPU hosts can take full CSRNet and CPU hosts the compact one."""


def count_queue(arch: str) -> str:
    return f"count.{arch}"
