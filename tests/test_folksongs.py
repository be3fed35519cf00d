"""``folksongs``: the Essen collection in music21's corpus is found, parsed into monophonic pieces, split by piece
with the documented fixed rule (5% test, 5% val) and yields melody windows. The full collection takes minutes to
parse, so the loader here reads a cache built from two of its smallest files (16 tunes)."""

from __future__ import annotations

import pytest

from chainrule.core.errors import DataError


def test_folksongs_load_split_by_piece_and_yield_windows(tmp_path):
    pytest.importorskip("music21")
    from chainrule.modalities.music.data.loaders import load_folksongs
    from chainrule.modalities.music.data.piece import VOICE
    from chainrule.modalities.music.data.sources import cached_pieces, essen_paths, parse_folksongs

    try:
        paths = essen_paths()
    except DataError:
        pytest.skip("the installed music21 corpus has no essenFolksong/*.abc files")
    assert len(paths) > 20  # the whole collection is listed, not one file
    small = [p for p in paths if p.name in ("testd.abc", "teste.abc")]
    pieces = cached_pieces("folksongs", lambda: parse_folksongs(small), tmp_path)
    assert len(pieces) == 16 and all(len(p.notes) and set(p.notes[:, VOICE]) == {0} for p in pieces)
    splits = {s: load_folksongs(s, encoding="melody", root=tmp_path) for s in ("train", "val", "test")}
    assert [splits[s].n_pieces for s in ("train", "val", "test")] == [14, 1, 1]  # round(5%) of 16 each held out
    again = load_folksongs("test", encoding="melody", root=tmp_path)
    assert (again.tokens == splits["test"].tokens).all()  # the split is fixed
    x, _ = splits["train"].get(range(3))
    assert tuple(x.shape) == (3, 1, 64) and int(x.max()) < splits["train"].levels
    assert int((x >= 2).sum()) > 0  # the windows hold notes, not only rests and holds
