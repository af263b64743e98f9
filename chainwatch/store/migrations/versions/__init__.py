"""One file per schema revision, applied in order; never edit one that has been released."""
