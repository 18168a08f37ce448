from counting.csrnet.model import OUTPUT_STRIDE, CSRNet, CSRNetConfig, init_frontend_from_vgg16

__all__ = ["OUTPUT_STRIDE", "CSRNet", "CSRNetConfig", "init_frontend_from_vgg16"]
