"""How the local container stand-in packs a command's output into log records
(local/containers.py): whole lines per record, a reader's "\\n".join gives the output back,
and a flood of short lines makes few records."""

from __future__ import annotations

from taskfn.local.containers import RECORD_CHARS, pack_lines


def test_complete_lines_go_out_and_a_partial_one_waits():
    assert pack_lines("a\nb\npart", final=False) == (["a\nb"], "part")
    assert pack_lines("part", final=False) == ([], "part")
    assert pack_lines("a\nb\nend", final=True) == (["a\nb", "end"], "")


def test_records_joined_as_a_reader_joins_them_give_the_lines_back():
    text = "".join(f"line {n}\n" if n % 7 else "\n" for n in range(20_000))
    records, rest = pack_lines(text, final=False)
    assert rest == "" and "\n".join(records) == text[:-1]
    assert all(len(record) <= RECORD_CHARS for record in records)


def test_a_flood_of_empty_lines_makes_few_records():
    records, rest = pack_lines("\n" * 4_000_000, final=False)
    assert len(records) <= 4_000_000 // RECORD_CHARS + 1 and rest == ""
    assert "\n".join(records) == "\n" * 3_999_999


def test_a_line_longer_than_a_record_is_cut_as_awslogs_cuts_it():
    long = "x" * (2 * RECORD_CHARS + 5)
    records, rest = pack_lines(long + "\nnext\n", final=False)
    assert records[:2] == ["x" * RECORD_CHARS] * 2 and "".join(records[:3]).startswith(long)
    assert records[2:] == ["xxxxx\nnext"] and rest == ""
    # a partial line that long is not held back either, however long it is
    records, rest = pack_lines(long, final=False)
    assert records == ["x" * RECORD_CHARS] * 2 and rest == "xxxxx"
    records, rest = pack_lines("y" * (64 * RECORD_CHARS + 1), final=False)
    assert len(records) == 64 and rest == "y"
