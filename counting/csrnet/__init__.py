from counting.csrnet.model import CSRNet, CSRNetConfig, init_frontend_from_vgg16
from counting.csrnet.widen import widen_csrnet

__all__ = ["CSRNet", "CSRNetConfig", "init_frontend_from_vgg16", "widen_csrnet"]
