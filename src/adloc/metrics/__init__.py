"""Evaluation metrics: a functional core, arrays in, floats out.

* :mod:`adloc.metrics.image`: ``auroc``, ``auprc``, ``confusion_at``, ``image_metrics``
  (prediction ``score >= threshold``; 0/0 ratios are NaN (N/A in tables, null in JSON); NaN ranking metrics for one class).
* :mod:`adloc.metrics.threshold`: ``calibrate_threshold`` -> ``ThresholdResult`` (exact
  F1 maximum, largest threshold among ties; or the study's 1000-point grid).
* :mod:`adloc.metrics.pixel`: exact ``pixel_auroc``, reference ``au_pro`` / ``pro_curve``
  (8-connected regions, FPR over all normal pixels, exact curve, interpolated limit) and the
  study's ``au_pro_study``; ``pixel_metrics`` computes pixel AUROC, AP, F1-max + AU-PRO from one sorted copy;
  ``ap_f1max_sorted``: exact AP and F1-max (image or pixel).
* :mod:`adloc.metrics.bootstrap`: seeded percentile ``bootstrap_ci`` and paired
  ``paired_gap_ci`` over resampled images.
"""

from adloc.metrics.bootstrap import bootstrap_ci, paired_gap_ci, resample_indices
from adloc.metrics.image import check_labels_scores, auprc, auroc, confusion_at, image_metrics, rank_auroc
from adloc.metrics.pixel import ap_f1max_sorted, au_pro, au_pro_at, au_pro_study, pixel_auroc, pixel_metrics, pro_curve
from adloc.metrics.threshold import ThresholdResult, calibrate_threshold

__all__ = [
    "ThresholdResult",
    "ap_f1max_sorted",
    "check_labels_scores",
    "au_pro",
    "au_pro_at",
    "au_pro_study",
    "auprc",
    "auroc",
    "bootstrap_ci",
    "calibrate_threshold",
    "confusion_at",
    "image_metrics",
    "paired_gap_ci",
    "pixel_auroc",
    "pixel_metrics",
    "pro_curve",
    "rank_auroc",
    "resample_indices",
]
