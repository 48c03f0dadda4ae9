"""The ROADMAP experiments' config files; their records are in ``configs/experiments/roadmap.py``."""
