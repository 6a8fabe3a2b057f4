"""aoi: automated optical inspection of PCBs and package substrates."""

__version__ = "0.1.0"
