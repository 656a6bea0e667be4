"""Throughput measurement, side by side with the peer libraries (behind ``augkit bench``)."""
