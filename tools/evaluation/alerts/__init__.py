"""Offline alert evaluation on real recordings (CPSC 2021) and real beat timelines (LTAFDB); see
``tools.evaluation.alerts.scoring`` for the replay and the scoring rules."""
