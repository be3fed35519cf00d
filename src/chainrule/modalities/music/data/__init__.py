"""Music data: pieces as note lists, their sources (music21 corpus, MIDI folders) and the windowed dataset."""
