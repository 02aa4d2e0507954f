import pandas as pd
import pytest

from ticket_ab.schema import TicketDataError, load_tickets, save_tickets, validate_tickets


def test_missing_text_column_names_file_rows_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"body": ["a", "b"], "topic": ["x", "y"]}).to_csv(path, index=False)
    with pytest.raises(TicketDataError) as err:
        load_tickets(path)
    message = str(err.value)
    assert str(path) in message and "2 rows" in message and "'text'" in message


def test_empty_text_is_reported_with_row_numbers(tmp_path):
    path = tmp_path / "empty.csv"
    pd.DataFrame({"text": ["ok", "  ", ""], "topic": ["a", "b", "c"]}).to_csv(path, index=False)
    with pytest.raises(TicketDataError, match=r"2 tickets have empty 'text' \(rows 1, 2\)"):
        load_tickets(path)


def test_training_requires_topic_column():
    with pytest.raises(TicketDataError, match="missing column 'topic'"):
        validate_tickets(pd.DataFrame({"text": ["a"]}), require_topic=True)


def test_training_requires_a_topic_on_every_row():
    df = pd.DataFrame({"text": ["a", "b"], "topic": ["x", None]})
    with pytest.raises(TicketDataError, match="1 tickets have no 'topic'"):
        validate_tickets(df, require_topic=True)


def test_unknown_labels_are_listed_with_the_known_ones():
    df = pd.DataFrame({"text": ["a", "b"], "topic": ["access", "weather"]})
    with pytest.raises(TicketDataError, match=r"unknown labels \['weather'\]"):
        validate_tickets(df, topics=["access", "billing"])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TicketDataError, match="no such file"):
        load_tickets(tmp_path / "nope.csv")


def test_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "binary.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(TicketDataError, match="cannot be read as tickets"):
        load_tickets(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".csv.gz"])
def test_round_trip_keeps_text_and_topic(tmp_path, suffix):
    df = pd.DataFrame({"text": ["VPN down, code 0x80070005", "NA"], "topic": ["network", "billing"]})
    back = load_tickets(save_tickets(df, tmp_path / f"t{suffix}"), require_topic=True)
    assert back["text"].tolist() == df["text"].tolist()
    assert back["topic"].tolist() == df["topic"].tolist()
