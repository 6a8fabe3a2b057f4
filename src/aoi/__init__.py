"""aoi: automated optical inspection of PCBs and package substrates."""

import os as _os

__version__ = "0.1.0"

# OpenCV reads its decode limit once, when cv2 is first loaded, so it is set here, before any aoi module
# imports cv2. A second line only: aoi.data.images refuses oversized headers itself (its MAX_PIXELS).
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(16384 * 16384 + 1))
