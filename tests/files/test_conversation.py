from __future__ import annotations

import json

import pytest

from seed.errors import DataError
from seed.files.conversation import load_conversations, to_messages

GOOD = [
    {
        "id": "a",
        "image": "a.png",
        "conversations": [
            {"from": "human", "value": "<image>\nIs there a fork?"},
            {"from": "gpt", "value": "Yes"},
            {"from": "human", "value": "What color is it?"},
            {"from": "gpt", "value": "Gray"},
        ],
    }
]


def write(tmp_path, data, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_to_messages_puts_the_image_first_in_the_first_user_turn():
    messages = to_messages(GOOD[0]["conversations"])
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "Is there a fork?"}]
    assert messages[2]["content"] == [{"type": "text", "text": "What color is it?"}]


def test_load_accepts_good_file(tmp_path):
    assert load_conversations(write(tmp_path, GOOD))[0]["id"] == "a"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("{not json", "not valid JSON"),
        ({"id": 1}, "top level must be a list"),
        ([{"id": "a", "image": "a.png"}], "row 0, field 'conversations'"),
        ([{"id": "a", "image": "a.png", "conversations": [{"from": "bot", "value": "x"}]}], "from"),
        (
            [
                {
                    "id": "a",
                    "image": "a.png",
                    "conversations": [{"from": "human", "value": "no image"}, {"from": "gpt", "value": "x"}],
                }
            ],
            "<image>",
        ),
        (
            [{"id": "a", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nq"}]}],
            "no gpt",
        ),
    ],
)
def test_load_rejects_bad_files_naming_file_and_field(tmp_path, data, match):
    path = write(tmp_path, data)
    with pytest.raises(DataError, match=match) as err:
        load_conversations(path)
    assert str(path) in str(err.value)


def test_unlabelled_split_must_not_hold_answers(tmp_path):
    with pytest.raises(DataError, match="human turns only"):
        load_conversations(write(tmp_path, GOOD), require_answers=False)
