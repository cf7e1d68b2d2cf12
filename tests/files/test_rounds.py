from __future__ import annotations

import json

import pytest

from seed.errors import DataError
from seed.files.rounds import ROUNDS_NAME, read_rounds, round_dir, write_rounds


def entry(r: int) -> dict:
    return {"round": r, "generator": f"g{r}", "targets": f"t{r}", "adapter": f"a{r}", "model": f"m{r}"}


def test_rounds_list_round_trips_and_drops_folders_beyond_the_last_round(tmp_path):
    for r in (2, 3):
        (round_dir(tmp_path, r) / "model").mkdir(parents=True)
    (tmp_path / "round-x").mkdir()  # not a round: removed too
    write_rounds(tmp_path, [entry(1), entry(2)])
    assert read_rounds(tmp_path) == [entry(1), entry(2)]
    assert json.loads((tmp_path / ROUNDS_NAME).read_text())["rounds"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round-2", ROUNDS_NAME]


def test_no_rounds_list_reads_as_empty(tmp_path):
    assert read_rounds(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not a rounds list"),
        ('{"entries": []}', "non-empty list"),
        (json.dumps({"entries": [entry(2)]}), "entry 1 is round 2"),
        (json.dumps({"entries": [{"round": 1}]}), "round 1 lacks generator"),
    ],
)
def test_a_broken_rounds_list_is_a_data_error_naming_the_file(tmp_path, content, message):
    (tmp_path / ROUNDS_NAME).write_text(content)
    with pytest.raises(DataError, match=message) as error:
        read_rounds(tmp_path)
    assert ROUNDS_NAME in str(error.value)


def test_writing_a_broken_list_fails_before_anything_is_removed(tmp_path):
    (round_dir(tmp_path, 3)).mkdir()
    with pytest.raises(DataError, match="entry 2 is round 3"):
        write_rounds(tmp_path, [entry(1), entry(3)])
    assert (round_dir(tmp_path, 3)).is_dir() and not (tmp_path / ROUNDS_NAME).exists()
