from counting.skynet.model import SkyNet, SkyNetConfig, reorg

__all__ = ["SkyNet", "SkyNetConfig", "reorg"]
