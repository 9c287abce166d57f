"""Data for fusionrt training: CMU-MOSI reading (``mosi``, ``csd``), frames, torch datasets, sample data."""
