"""The load generator behind `load_test/testing.py`: what to send, how to send it, what came back."""
