"""Everything after the per-class metrics: tables, gap analysis, cross-class thresholds, t-SNE,
figures, the study's reference numbers and summary.md.

Every function takes loaded data (dicts, arrays, DataFrames) and returns a DataFrame, a
matplotlib Figure or text; ``write_*`` variants and :func:`figures.savefig` write atomically.
Submodules: :mod:`.tables`, :mod:`.gap` (+ :mod:`.gap_pairs` its inputs, :mod:`.gap_panels` its figures), :mod:`.repeats`, :mod:`.confusion`, :mod:`.tsne`, :mod:`.figures`,
:mod:`.study_reference`, :mod:`.summary`.
"""

from . import confusion, figures, gap, repeats, study_reference, summary, tables, tsne
from .confusion import (
    confusion_matrix, normal_scores_from_npz, plot_confusion, read_confusion, write_confusion,
)
from .figures import examples_figure, savefig, select_examples, style
from .gap import gap_table, load_pair, load_pairs, read_gap_table, write_gap_table
from .gap_panels import plot_gap
from .repeats import read_gap_across, read_metrics_across
from .study_reference import (
    embedded_class_map, load_study_reference, published_anchors, side_by_side,
)
from .summary import default_figures, render_summary, write_summary
from .tables import metrics_table, read_metrics_table, write_metrics_table
from .tsne import (
    bank_by_source, embed_view, memory_bank_composition, plot_tsne, pooled_backbone_features,
    read_bank_composition, tsne_embed, write_bank_composition,
)

__all__ = [
    "confusion", "figures", "gap", "study_reference", "summary", "tables", "tsne",
    "confusion_matrix", "normal_scores_from_npz", "plot_confusion", "examples_figure", "savefig",
    "select_examples", "style", "gap_table", "load_pair", "load_pairs", "plot_gap", "load_study_reference",
    "published_anchors", "side_by_side", "render_summary", "write_summary", "metrics_table",
    "write_metrics_table", "embed_view", "memory_bank_composition", "plot_tsne", "tsne_embed",
    "read_confusion", "write_confusion", "read_gap_table", "write_gap_table", "default_figures",
    "read_metrics_table", "read_bank_composition", "write_bank_composition", "bank_by_source",
    "pooled_backbone_features", "embedded_class_map", "repeats",
    "read_gap_across", "read_metrics_across",
]
