"""Audio: waveforms as sequences of quantised samples (8-bit mu-law or 16-bit linear), WaveNet and its tools."""
