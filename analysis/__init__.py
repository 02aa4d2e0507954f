"""The A/B report behind `analysis/analysis.py`: the log analysis, the customer-level and always-valid
statistics of the verdict (`inference`, `sequential`), the rule and the report files."""
