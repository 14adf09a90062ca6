"""The Mistral normalisation as a pure function: ids of 9 alphanumerics, tool -> user bridged."""

from __future__ import annotations

from serving.base import Message, ToolCall
from serving.mistral import BRIDGE, VALID_ID, normalize, restore_ids, short_id


def conversation(*ids: str) -> list[Message]:
    calls = tuple(ToolCall(i, "bash", '{"command": "ls"}') for i in ids)
    return [
        Message("system", "be brief"),
        Message("user", "list files"),
        Message("assistant", None, calls),
        *(Message("tool", f"out {i}", tool_call_id=i) for i in ids),
        Message("user", "and now?"),
    ]


def test_long_ids_are_rewritten_consistently_and_restored() -> None:
    messages = conversation("call_0123456789abcdef", "toolu_X")
    result = normalize(messages)

    new_ids = [c.id for c in result.messages[2].tool_calls]
    assert all(VALID_ID.fullmatch(i) for i in new_ids)
    assert len(set(new_ids)) == 2
    assert [m.tool_call_id for m in result.messages if m.role == "tool"] == new_ids
    assert result.restore == {new_ids[0]: "call_0123456789abcdef", new_ids[1]: "toolu_X"}
    assert restore_ids(result.messages[2], result.restore) == messages[2]
    # Contents, names and arguments are untouched.
    assert [c.arguments for c in result.messages[2].tool_calls] == ['{"command": "ls"}'] * 2


def test_same_input_gives_same_output() -> None:
    messages = conversation("call_0123456789abcdef")
    assert normalize(messages) == normalize(messages)
    assert short_id("x") == short_id("x") != short_id("y")


def test_valid_ids_are_kept() -> None:
    messages = conversation("abcDEF123")
    result = normalize(messages)
    assert result.messages[2] == messages[2]
    assert result.restore == {}


def test_rewritten_id_never_collides_with_an_existing_valid_one() -> None:
    taken = short_id("call_1")
    result = normalize(conversation(taken, "call_1"))
    ids = [c.id for c in result.messages[2].tool_calls]
    assert ids[0] == taken
    assert ids[1] != taken and VALID_ID.fullmatch(ids[1])
    assert result.restore == {ids[1]: "call_1"}


def test_user_after_tool_gets_a_bridge_and_nothing_else_moves() -> None:
    messages = conversation("abcDEF123")
    result = normalize(messages)
    roles = [m.role for m in result.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert result.messages[4] == BRIDGE
    assert result.messages[5] == messages[-1]


def test_a_conversation_without_sharp_edges_is_unchanged() -> None:
    messages = [Message("user", "hi"), Message("assistant", "hello"), Message("user", "bye")]
    assert normalize(messages).messages == messages


def test_new_ids_in_a_reply_stay_as_the_server_made_them() -> None:
    reply = Message("assistant", None, (ToolCall("zzzzzzzz9", "bash", "{}"),))
    assert restore_ids(reply, {"abcdefghi": "call_1"}) == reply
