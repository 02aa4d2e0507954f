"""How the report writes numbers (`analysis.fmt`)."""

import math

from analysis import fmt


def test_a_likelihood_ratio_is_readable_however_large_it_grows():
    assert fmt.likelihood_ratio(6.3) == "6.3" and fmt.likelihood_ratio(1234.5) == "1,234.5"
    assert fmt.likelihood_ratio(20.0, 0) == "20"
    assert fmt.likelihood_ratio(2.4e28) == "> 10^6" and fmt.likelihood_ratio(1e6) == "> 10^6"
    assert fmt.likelihood_ratio(math.nan) == "n/a" and fmt.likelihood_ratio(None) == "n/a"
