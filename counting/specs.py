"""What the rest of the project needs to know about the counting models without loading them: the architectures'
names, the default one, and the stride of their density maps. Imports nothing, so a process that only stores and
shows counts (the web server) never loads torch.

`counting.models` builds each architecture named here; every one writes its density map at 1/OUTPUT_STRIDE of the
frame's sides.
"""

CSRNET = "csrnet"
CSRNET_LITE = "csrnet-lite"
CSRNET_HALF = "csrnet-half"
SKYNET_COUNT = "skynet-count"

ARCHITECTURE_NAMES: tuple[str, ...] = (CSRNET, CSRNET_LITE, CSRNET_HALF, SKYNET_COUNT)
# What a camera counts with unless told otherwise; `counting.models.load_model` loads its default weights when
# given neither an architecture nor a weights file.
DEFAULT_ARCH = CSRNET_LITE

# Each cell of a density map covers OUTPUT_STRIDE x OUTPUT_STRIDE pixels of the frame (three 2x2 poolings).
OUTPUT_STRIDE = 8
