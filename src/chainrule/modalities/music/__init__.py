"""Symbolic music: scores and MIDI files as token sequences for the text language models and the sequence VAE.

``data/`` reads pieces (music21's Bach chorales and Essen folksongs, any MIDI folder) into :class:`Piece` note
lists, cached once; :mod:`tokenizer` turns pieces into tokens and back (miditok REMI, or a 16th-note melody
grid); :mod:`midi` writes MIDI and renders WAV; :mod:`pianoroll` draws piano rolls.
"""
