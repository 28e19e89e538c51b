"""Loaders of the recall evaluation, on tiny synthetic files in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import POSITIVE_EVENT_TYPES
from shoprec.generator import GeneratorConfig
from training.recall_datasets import (
    beauty_item_attributes,
    from_frame,
    generate_interactions,
    load_beauty,
    load_event_store,
    load_movielens,
)

TINY = GeneratorConfig(n_users=40, n_items=30, n_categories=3, n_shops=4, days=2,
                       sessions_per_user_day=1.0, seed=5)


def write_beauty(folder: Path, lines: list[str], attrs: dict[str, list[int]]) -> None:
    folder.mkdir(parents=True)
    (folder / "Beauty.txt").write_text("\n".join(lines) + "\n")
    (folder / "Beauty_item2attributes.json").write_text(json.dumps(attrs))


def test_beauty_sequences_and_attributes(tmp_path: Path) -> None:
    """Brand first when known; 1, 2, 3 appear after position 0 somewhere → categories."""
    attrs = {"1": [100, 1, 2], "2": [1, 3], "3": [200, 1, 3], "4": [300]}
    write_beauty(tmp_path / "amazon_beauty", ["7 1 2 3", "9 3 1"], attrs)
    data = load_beauty(tmp_path)  # found in the amazon_beauty/ subfolder
    assert data.user_ids.tolist() == [7, 9] and data.item_ids.tolist() == [1, 2, 3, 4]
    assert data.item.tolist() == [0, 1, 2, 2, 0] and data.ts.tolist() == [0, 1, 2, 0, 1]
    assert data.item_shop.tolist() == [100, -1, 200, 300]
    assert data.item_category.tolist() == [2, 3, 3, -1]
    assert not data.has_time
    table = beauty_item_attributes(attrs).set_index("item_id")
    assert table.loc[2].tolist() == [3, -1]


def test_beauty_bad_line_and_missing_files_are_named(tmp_path: Path) -> None:
    write_beauty(tmp_path / "b", ["1 2 3", "2 x 4"], {})
    with pytest.raises(ValueError, match=r"Beauty.txt:2: expected 'user item item \.\.\.'"):
        load_beauty(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="Beauty.txt"):
        load_beauty(tmp_path / "nowhere")


def test_movielens_ratings_and_first_genre(tmp_path: Path) -> None:
    folder = tmp_path / "movielens-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t10\t5\t100\n1\t20\t3\t50\n2\t10\t4\t70\n")
    genres = ["0|0|1|1", "0|0|0|0", "1|0|0|0"]
    (folder / "u.item").write_text("".join(
        f"{i}|T{i}|01-Jan-1995||url|{g}\n" for i, g in zip((10, 20, 30), genres, strict=True)),
        encoding="latin-1")
    data = load_movielens(tmp_path)
    # user 1: item 20 (ts 50) before item 10 (ts 100).
    assert data.item_ids[data.item].tolist() == [20, 10, 10]
    assert data.item_category.tolist() == [2, -1, 0] and data.has_time
    (folder / "u.data").write_text("1\t10\tfive\t100\n")
    with pytest.raises(ValueError, match="4 tab-separated integer columns"):
        load_movielens(tmp_path)


def test_generated_positive_first_occurrences(tmp_path: Path) -> None:
    data = generate_interactions(TINY, tmp_path)
    events = pd.concat([pd.read_parquet(f) for f in sorted((tmp_path / "landing" / "events")
                                                             .glob("*.parquet"))])
    pos = events[events["event_type"].isin(POSITIVE_EVENT_TYPES)]
    assert len(data) == len(pos.drop_duplicates(["user_id", "item_id"]))
    pairs = set(zip(data.user_ids[data.user], data.item_ids[data.item], strict=True))
    assert pairs == set(zip(pos["user_id"], pos["item_id"], strict=True))
    assert data.n_items == TINY.n_items and (data.item_category >= 0).all()
    assert data.has_time and np.all(np.diff(data.user) >= 0)


def test_event_store_round_trip(tmp_path: Path, settings) -> None:
    from shoprec.ingest import commit_batch

    with pytest.raises(FileNotFoundError, match="no committed events"):
        load_event_store(settings)
    landing = tmp_path / "landing"
    generated = generate_interactions(TINY, tmp_path)
    events = pd.concat([pd.read_parquet(f) for f in sorted((landing / "events").glob("*"))])
    commit_batch(settings, "b1", events.reset_index(drop=True))
    settings.tables_dir.mkdir(parents=True, exist_ok=True)
    pd.read_parquet(landing / "items.parquet").to_parquet(settings.tables_dir / "items.parquet")
    stored = load_event_store(settings)
    assert len(stored) == len(generated)
    assert stored.item_category.tolist() == generated.item_category.tolist()


def test_missing_session_ids_stay_per_user() -> None:
    frame = pd.DataFrame({"user_id": [1, 2, 1, 2], "item_id": [5, 6, 7, 8], "ts": [0, 1, 2, 3],
                          "session": [None, None, "s", None]})
    data = from_frame("x", frame, session_col="session")
    # user 1: (ts 0, no session) and (ts 2, "s"); user 2: two events without a session.
    assert data.session[0] != data.session[1] and data.session[2] == data.session[3]
    assert len(set(data.session.tolist())) == 3


def test_from_frame_errors_and_catalogue() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        from_frame("x", pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(ValueError, match="no interactions"):
        from_frame("x", pd.DataFrame({"user_id": [], "item_id": [], "ts": []}))
    data = from_frame("x", pd.DataFrame({"user_id": [5], "item_id": [9], "ts": [0]}),
                      items=pd.DataFrame({"item_id": [3, 9], "shop_id": [1, 2]}))
    assert data.item_ids.tolist() == [3, 9] and data.item_shop.tolist() == [1, 2]
    assert data.item_category.tolist() == [-1, -1]
