"""The A/B report behind `analysis/analysis.py`: the log analysis, the verdict rule and the report files
(the statistics themselves live in `retrain.ml.stats`, shared with retraining)."""
