"""Synthetic 15-class analysis tables (MVTec AD's class names), to draw every figure at full
class count without running a model: confusion counts, gap rows, t-SNE coordinates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adloc.analysis.confusion import confusion_matrix
from adloc.analysis.gap import COLUMNS, GAP_METRICS

MVTEC_CLASSES = [
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill",
    "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
]


def confusion_table(classes=MVTEC_CLASSES, seed: int = 0) -> pd.DataFrame:
    """Thresholds and held-out normal scores: every class's normals on its own scale."""
    rng = np.random.default_rng(seed)
    level = {c: rng.uniform(0.5, 3.0) for c in classes}
    normals = {c: rng.normal(level[c], 0.3, size=int(rng.integers(12, 60))) for c in classes}
    thresholds = {c: level[c] + 0.6 for c in classes}
    return confusion_matrix(thresholds, normals)


def gap_rows(classes=MVTEC_CLASSES, methods=("patchcore", "padim"), seed: int = 0) -> pd.DataFrame:
    """Gap-table rows (``adloc.analysis.gap.COLUMNS``) with a macro row per metric; AU-PRO is
    N/A for one class, as for a class without masks."""
    rng = np.random.default_rng(seed)
    rows = []
    for method in methods:
        for metric in GAP_METRICS:
            gaps = []
            for cls in classes:
                g = float(rng.normal(0.03, 0.05))
                if metric == "au_pro" and cls == classes[-1]:
                    g = float("nan")
                ci = metric in ("auroc", "auprc") and np.isfinite(g)
                rows.append({
                    "method": method, "class": cls, "metric": metric, "per_class": 0.9,
                    "global": 0.9 - g, "gap": g,
                    "gap_low": g - 0.03 if ci else float("nan"),
                    "gap_high": g + 0.03 if ci else float("nan"),
                    "ci_excludes_zero": bool(ci and abs(g) > 0.03), "n_boot": 1000 if ci else 0,
                    "n_valid": 1000 if ci else 0, "n_test": 50,
                    # per-class minus absolute-unified (one threshold for all classes)
                    "unified_abs": 0.8 if metric in ("f1", "accuracy") else float("nan"),
                    "gap_abs": g + 0.05 if metric in ("f1", "accuracy") else float("nan"),
                    "n_classes": int(np.isfinite(g)),
                    # per-class minus routed (the predicted class's threshold), with its interval
                    "routed": 0.85 if metric in ("f1", "accuracy") else 0.9 - g,
                    "gap_routed": g + 0.02 if metric in ("f1", "accuracy") else g,
                    "gap_routed_low": g - 0.04 if metric in ("f1", "accuracy") or ci else float("nan"),
                    "gap_routed_high": g + 0.08 if metric in ("f1", "accuracy") or ci else float("nan"),
                })
                gaps.append(g)
            m = float(np.nanmean(gaps))
            rows.append({
                "method": method, "class": "macro", "metric": metric, "per_class": 0.9,
                "global": 0.9 - m, "gap": m, "gap_low": float("nan"), "gap_high": float("nan"),
                "ci_excludes_zero": False, "n_boot": 0, "n_valid": 0, "n_test": 50 * len(classes),
                "unified_abs": 0.8 if metric in ("f1", "accuracy") else float("nan"),
                "gap_abs": m + 0.05 if metric in ("f1", "accuracy") else float("nan"),
                "n_classes": int(np.isfinite(gaps).sum()),
                "routed": float("nan"), "gap_routed": m + 0.02 if metric in ("f1", "accuracy") else m,
                "gap_routed_low": float("nan"), "gap_routed_high": float("nan"),
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def tsne_views(classes=MVTEC_CLASSES, seed: int = 0, per_class: int = 80):
    """Two panels of clustered 2-D points, one cluster per class."""
    rng = np.random.default_rng(seed)
    views = []
    for title in ("train patches (global model input)", "memory bank"):
        pts, labels = [], []
        for k, cls in enumerate(classes):
            centre = 30 * np.array([np.cos(2 * np.pi * k / len(classes)), np.sin(2 * np.pi * k / len(classes))])
            pts.append(centre + rng.normal(0, 4, size=(per_class, 2)))
            labels += [cls] * per_class
        views.append((title, np.concatenate(pts), labels))
    return views
