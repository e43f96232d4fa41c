# Freeze the firmware into a board image (code in flash, not on the heap):
#   make -C ports/rp2 FROZEN_MANIFEST=/path/to/firmware/manifest.py
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821
package("insitu_node")  # noqa: F821
