"""Golden-template defect detection: candidates from the aligned difference, classified by a small CNN."""
