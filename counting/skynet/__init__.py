from counting.skynet.model import OUTPUT_STRIDE, SkyNet, SkyNetConfig, reorg

__all__ = ["OUTPUT_STRIDE", "SkyNet", "SkyNetConfig", "reorg"]
