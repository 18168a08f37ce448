from counting.csrnet.model import CSRNet, CSRNetConfig, init_frontend_from_vgg16

__all__ = ["CSRNet", "CSRNetConfig", "init_frontend_from_vgg16"]
