# Freeze the firmware into a board image (code in flash, not on the heap):
#   make -C ports/rp2 FROZEN_MANIFEST=/path/to/firmware/manifest.py
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821
package("insitu_node", opt=3)  # noqa: F821  (what the 64 KB heap probe compiles with)
