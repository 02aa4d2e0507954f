from retrain.ml.gate import quality_gate


def test_gate_passes_without_a_champion():
    assert quality_gate(0.5, None, 0.01).passed


def test_gate_passes_within_the_margin():
    result = quality_gate(0.895, 0.90, 0.01)
    assert result.passed
    assert "0.8950 >= champion 0.9000" in result.reason


def test_gate_fails_below_champion_minus_margin():
    result = quality_gate(0.88, 0.90, 0.01)
    assert not result.passed
    assert "< champion" in result.reason
