"""The A/B report: statistics, the verdict rule and the report files behind `analysis/analysis.py`."""
