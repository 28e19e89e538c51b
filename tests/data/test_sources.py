"""Source adapters on tiny files the tests write: what each format becomes in the store/tables.

Staging is checked directly (no GX); the full stage → gate → commit path runs where the
outcome depends on it (idempotence, chunked streaming, the CLI).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shoprec.cli import main
from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from shoprec.ingest import read_events, stage_files
from shoprec.quarantine import read_quarantine
from shoprec.settings import ENV_HOME, Settings
from shoprec.sources_base import get_source
from tests.data.validation_cases import RUN_NOW, TB_T0, event_row, tb_line, write_lines
from validation.run import run_batch


def staged(settings: Settings, batch_id: str = "b1") -> pd.DataFrame:
    return pd.read_parquet(settings.staging_dir / f"{batch_id}.parquet")


def table(settings: Settings, name: str) -> pd.DataFrame:
    return pd.read_parquet(settings.tables_dir / f"{name}.parquet")


def utc(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def test_taobao_lines_become_contract_events_and_tables(settings: Settings,
                                                        tmp_path: Path) -> None:
    f = write_lines(tmp_path / "UserBehavior.csv", [
        f"1,10,500,pv,{TB_T0}", f"1,11,500,cart,{TB_T0 + 1}", f"2,10,501,fav,{TB_T0 + 2}",
        f"2,12,502,buy,{TB_T0 + 3}"])
    report = stage_files([f], settings, "b1", fmt="taobao")
    assert (report.read, report.staged, report.quarantined) == (4, 4, 0)
    df = staged(settings)
    assert list(df.columns) == [*EVENT_SCHEMA.names, "source_file", "source_line"]
    assert df["event_id"].tolist() == [f"tb:1:10:pv:{TB_T0}", f"tb:1:11:cart:{TB_T0 + 1}",
                                       f"tb:2:10:fav:{TB_T0 + 2}", f"tb:2:12:buy:{TB_T0 + 3}"]
    assert df["event_type"].tolist() == ["click", "cart", "fav", "purchase"]
    assert df["event_ts"].iloc[0] == pd.Timestamp("2017-11-24T17:21:10Z")
    assert df["strength"].tolist() == [1.0] * 4 and df["device"].isna().all()
    items = table(settings, ITEM_SCHEMA.name)
    assert list(items.columns) == ITEM_SCHEMA.names
    # item 10 is seen with category 500 then 501: its last line wins; launch = first event
    assert items[["item_id", "category_id"]].values.tolist() == [[10, 501], [11, 500], [12, 502]]
    assert items["launch_ts"].tolist() == [utc(TB_T0), utc(TB_T0 + 1), utc(TB_T0 + 3)]
    assert (items[["shop_id", "stock"]] == 0).all().all() and (items["price"] == 0.0).all()
    users = table(settings, USER_SCHEMA.name)
    assert users.values.tolist() == [[1, 0, 0, utc(TB_T0)], [2, 0, 0, utc(TB_T0 + 2)]]
    assert report.tables["items"]["rows"] == 3 and report.tables["users"]["read"] == 2


def test_a_later_taobao_batch_keeps_first_seen_times(settings: Settings, tmp_path: Path) -> None:
    stage_files([write_lines(tmp_path / "a.csv", [f"1,10,500,pv,{TB_T0 + 50}"])], settings,
                "b1", fmt="taobao")
    stage_files([write_lines(tmp_path / "b.csv", [f"1,10,600,pv,{TB_T0 + 99}",
                                                  f"3,13,700,pv,{TB_T0 + 99}"])], settings,
                "b2", fmt="taobao")
    items = table(settings, ITEM_SCHEMA.name).set_index("item_id")
    assert items.loc[10, "category_id"] == 600  # newer attribute wins
    assert items.loc[10, "launch_ts"] == utc(TB_T0 + 50)  # the earlier first sighting stays
    assert items.loc[13, "launch_ts"] == utc(TB_T0 + 99)


def test_movielens_udata_with_item_and_user_tables(settings: Settings, tmp_path: Path) -> None:
    flags = ["0"] * 19
    flags[3], flags[5] = "1", "1"  # Animation and Comedy: the first one counts
    write_lines(tmp_path / "u.item", [
        "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(flags),
        "2|GoldenEye (1995)||||" + "|".join(["0"] * 19)])
    write_lines(tmp_path / "u.user", ["1|24|M|technician|85711", "2|17|F|other|94043",
                                      "3|60|M|writer|32067"])
    write_lines(tmp_path / "u.data", [f"1\t1\t5\t{TB_T0}", f"2\t1\t3\t{TB_T0 + 9}",
                                       f"3\t2\t4\t{TB_T0 + 5}", f"3\t2\t9\t{TB_T0 + 7}"])
    write_lines(tmp_path / "u1.base", [f"1\t1\t5\t{TB_T0}"])  # a split of u.data
    write_lines(tmp_path / "README", ["MovieLens"])
    folder = sorted(tmp_path.iterdir())  # a whole folder, as the pipeline passes it
    report = stage_files(folder, settings, "b1", fmt="movielens")
    assert report.notes == ["ignored 2 file(s) that are not movielens files: ['README', "
                            "'u1.base']"]
    assert (report.files, report.read, report.staged, report.quarantined) == (1, 4, 3, 1)
    assert read_quarantine(settings, "b1")["reason"].tolist() == [
        "rating: not a rating in [0.5, 5]: '9'"]
    df = staged(settings)
    assert df["event_id"].tolist() == [f"ml:1:1:{TB_T0}", f"ml:2:1:{TB_T0 + 9}",
                                       f"ml:3:2:{TB_T0 + 5}"]
    assert df["event_type"].tolist() == ["purchase", "click", "purchase"]
    assert df["strength"].tolist() == [5.0, 3.0, 4.0]
    items = table(settings, ITEM_SCHEMA.name)
    assert items["category_id"].tolist() == [3, 0]  # Animation; no genre → 0
    # release date when known, else the movie's first rating
    assert items["launch_ts"].tolist() == [pd.Timestamp("1995-01-01", tz="UTC"),
                                           utc(TB_T0 + 5)]
    users = table(settings, USER_SCHEMA.name)
    assert users["age_band"].tolist() == [2, 1, 6]  # 18-24, <18, 55+
    assert users["signup_ts"].tolist() == [utc(TB_T0), utc(TB_T0 + 9), utc(TB_T0 + 5)]


def test_movielens_ratings_csv_and_movies_csv(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,"Toy Story (1995)",Adventure|Animation\n'
        '2,Jumanji (1995),(no genres listed)\n')
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(f"userId,movieId,rating,timestamp\n7,1,4.5,{TB_T0}\n7,2,0.5,{TB_T0}\n")
    report = stage_files([ratings], settings, "b1", fmt="movielens")
    assert (report.staged, report.quarantined) == (2, 0)
    assert staged(settings)["event_type"].tolist() == ["purchase", "click"]
    assert table(settings, ITEM_SCHEMA.name)["category_id"].tolist() == [2, 0]
    assert table(settings, USER_SCHEMA.name)["user_id"].tolist() == [7]


def test_amazon_sequences_get_ordered_synthesized_times(settings: Settings,
                                                        tmp_path: Path) -> None:
    seq = write_lines(tmp_path / "Beauty.txt", ["1 5 6 7", "2 6", "3"])
    (tmp_path / "Beauty_item2attributes.json").write_text(
        json.dumps({"5": [40, 41], "6": [], "7": [42]}))
    write_lines(tmp_path / "Beauty_sample.txt", ["1 99 98"])  # sampled negatives: not events
    report = stage_files([seq, tmp_path / "Beauty_sample.txt"], settings, "b1",
                         fmt="amazon-seq")
    assert report.notes == ["ignored 1 file(s) that are not amazon-seq files: "
                            "['Beauty_sample.txt']"]
    assert (report.read, report.staged, report.quarantined) == (5, 4, 1)
    assert read_quarantine(settings, "b1")["reason"].tolist() == ["sequence line without items"]
    df = staged(settings)
    assert df["event_id"].tolist() == ["az:1:0", "az:1:1", "az:1:2", "az:2:0"]
    end = pd.Timestamp("2014-07-31T00:00:00Z")
    day = pd.Timedelta(days=1)
    assert df["event_ts"].tolist() == [end - 2 * day, end - day, end, end]
    assert set(df["event_type"]) == {"purchase"}
    assert df["source_line"].tolist() == [1, 1, 1, 2]
    items = table(settings, ITEM_SCHEMA.name)
    assert items[["item_id", "category_id"]].values.tolist() == [[5, 40], [6, 0], [7, 42]]
    assert items["launch_ts"].tolist() == [end - 2 * day, end - day, end]
    assert table(settings, USER_SCHEMA.name)["user_id"].tolist() == [1, 2]


def test_events_with_a_mapping_file(settings: Settings, tmp_path: Path) -> None:
    mapping = tmp_path / "shop.yaml"
    mapping.write_text("columns: {user_id: customer, item_id: sku, event_type: action, "
                       "event_ts: time}\nvalues: {event_type: {view: click, order: purchase}}\n"
                       "defaults: {strength: 2.0}\ntimestamp_unit: ms\ndelimiter: ';'\n")
    log = tmp_path / "shop.csv"
    log.write_text(f"customer;sku;action;time\n1;10;view;{TB_T0}000\n2;11;order;{TB_T0}500\n"
                   f"3;12;teleport;{TB_T0}000\n")
    report = stage_files([log], settings, "b1", mapping=mapping)
    assert (report.read, report.staged) == (3, 3)
    df = staged(settings)
    assert df["event_id"].tolist() == [f"ev:1:10:click:{TB_T0}", f"ev:2:11:purchase:{TB_T0}",
                                       f"ev:3:12:teleport:{TB_T0}"]  # validation rejects the last
    assert df["event_ts"].tolist() == [utc(TB_T0), utc(TB_T0) + pd.Timedelta("500ms"),
                                       utc(TB_T0)]
    assert df["strength"].tolist() == [2.0] * 3


def test_bad_mappings_and_formats_are_named(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"columns": {"colour": "c"}, "values": {"event_type": {"v": "x"}},
                               "timestamp_unit": "days", "extra": 1}))
    with pytest.raises(ValueError, match=r"invalid column mapping: unknown key 'extra'; "
                       r"columns: 'colour' is not a contract column .*values: event_type maps "
                       r"to \['x'\].*timestamp_unit must be one of"):
        get_source("events", bad)
    with pytest.raises(ValueError, match=r"unknown source format 'csv'; known: \['amazon-seq'"):
        stage_files([], settings, "b1", fmt="csv")
    with pytest.raises(ValueError, match="mapping applies to the 'events' format only"):
        get_source("taobao", bad)


def test_reingest_is_idempotent_and_chunking_changes_nothing(settings: Settings,
                                                            tmp_path: Path) -> None:
    lines = [tb_line(u, i, b) for u in range(1, 8) for i, b in ((10, "pv"), (11, "buy"))]
    plain = write_lines(tmp_path / "a.csv", [*lines, lines[3]])  # one repeated line
    zipped = write_lines(tmp_path / "a.csv.gz", lines)
    first = run_batch([plain], settings, "b1", fmt="taobao", now=RUN_NOW, chunk_rows=3)
    assert (first.commit.stored, first.commit.in_batch) == (14, 1)
    store = {p: p.read_bytes() for p in settings.events_dir.rglob("*.parquet")}
    again = run_batch([zipped, plain], settings, "b2", fmt="taobao", now=RUN_NOW)
    assert (again.commit.stored, again.commit.in_batch, again.commit.in_store) == (0, 15, 14)
    assert {p: p.read_bytes() for p in settings.events_dir.rglob("*.parquet")} == store
    assert again.ledger["balanced"] is True
    other = Settings(home=tmp_path / "other")  # one big chunk gives the same store
    run_batch([plain], other, "b1", fmt="taobao", now=RUN_NOW)
    pd.testing.assert_frame_equal(read_events(other), read_events(settings))
    assert first.validation.valid_rows == 15 and first.validation.notes[0].startswith(
        "volume check skipped")


def test_multi_chunk_gate_merges_row_results(settings: Settings, tmp_path: Path) -> None:
    rows = [event_row(i) for i in range(1, 21)]
    rows[4]["event_type"] = rows[15]["event_type"] = "view"
    from tests.data.validation_cases import write_events_csv

    f = write_events_csv(tmp_path / "e.csv", rows)
    run = run_batch([f], settings, "b1", now=RUN_NOW, chunk_rows=6)
    assert run.validation.failed_rows == {"expect_column_values_to_be_in_set(event_type)": 2}
    assert sorted(read_quarantine(settings, "b1")["source_line"].astype(int)) == [5, 16]
    results = list((settings.reports_dir / "validation" / "results").rglob("*.json"))
    rows_result = json.loads(next(p for p in results if "events_rows" in str(p)).read_text())
    by_key = {(r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column")):
              r for r in rows_result["results"]}
    count = by_key[("expect_table_row_count_to_be_between", None)]
    assert count["result"]["observed_value"] == 20 and count["success"] is True
    in_set = by_key[("expect_column_values_to_be_in_set", "event_type")]
    assert in_set["result"]["unexpected_count"] == 2 and in_set["result"]["element_count"] == 20
    assert in_set["result"]["unexpected_index_list"] == [4, 15]


def test_cli_ingest_format_taobao(settings: Settings, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(ENV_HOME, str(settings.home))
    f = write_lines(tmp_path / "ub.csv", [*(tb_line(u, 10) for u in range(1, 6)), "6,12,9,pv,"])
    assert main(["ingest", "--format", "taobao", "--batch-id", "t1", str(f)]) == 0
    out = capsys.readouterr().out
    assert ("batch t1: read 6 = stored 5 + duplicates 0 + quarantined 1 (ingest 1, "
            "validation 0); duplicates: 0 repeated within the batch, 0 already stored") in out
    assert read_quarantine(settings, "t1")["reason"].tolist() == ["event_ts: missing value"]
    with pytest.raises(SystemExit, match="--mapping applies to --format events only"):
        main(["ingest", "--format", "taobao", "--mapping", str(f), str(f)])
