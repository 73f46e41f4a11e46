"""adloc: anomaly detection with localization (PatchCore, PaDiM), per-class vs model-unified.

The library behind the adloc Snakemake workflow. Importable and testable without Snakemake.
"""

__version__ = "0.1.0"
