"""Offline alert evaluation on real recordings (CPSC 2021) and real beat timelines (LTAFDB); see
``streams.evaluate_alerts`` for the replay and the scoring rules."""
