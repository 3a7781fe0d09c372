"""fadepth: FA-Depth (fast and accurate self-supervised monocular depth) reimplemented, with an
Optuna + MLflow ablation-reproduction suite.  See README.md."""
__version__ = "0.1.0"
