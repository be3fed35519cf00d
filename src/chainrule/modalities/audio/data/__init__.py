"""Audio data: reading and resampling recordings, quantisation, the datasets and their fixed splits."""
