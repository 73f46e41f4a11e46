"""Test-session settings shared by every test folder."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    """Run the Slurm tests last.

    Once Debian's slurm-client is installed, every snakemake start pays ~9 s while the SLURM
    executor plugin's import-time ``scontrol show config`` times out against a stopped
    controller; running the Slurm tests last keeps that cost away from the other workflow tests.
    """
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)
