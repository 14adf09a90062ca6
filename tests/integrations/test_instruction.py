"""What the agent is told from GitHub: the people's comments, never Autan's own, and the
request that started the task kept whole when the rest must be cut."""

from __future__ import annotations

from integrations.github.instruction import LIMIT, Comment, instruction
from integrations.text import marker
from tests.integrations.conftest import Wired
from tests.integrations.drive import tasks
from tests.integrations.fake_github import Issue
from tests.integrations.test_github import post

ASK = "@autan the fix broke subtraction, please look again"


def comment_event(body: str, sender: str = "octocat") -> dict[str, object]:
    return {
        "action": "created",
        "issue": {"number": 7, "title": "add() subtracts"},
        "comment": {"body": body, "user": {"login": sender}},
        "repository": {"full_name": "acme/app"},
        "sender": {"login": sender, "type": "User"},
    }


def test_autan_s_comments_are_left_out_and_the_trigger_is_marked_as_the_request(
    wired: Wired,
) -> None:
    w = wired
    w.github.permissions["octocat"] = "write"
    failed = f"Task failed: the tests did not pass\n\nDetails: http://x\n\n{marker('t1')}"
    w.github.issues[7] = Issue(
        "add() subtracts",
        "2 + 2 gives 0",
        [
            {"id": 1, "body": "see calc.py", "user": {"login": "hubot"}},
            {"id": 2, "body": failed, "user": {"login": "someone-s-token"}},
            {"id": 3, "body": "On it", "user": {"login": "autan-app[bot]"}},
            {"id": 4, "body": ASK, "user": {"login": "octocat"}},
        ],
    )
    w.github_settings.bot_login = "autan-app[bot]"
    assert post(w, "issue_comment", comment_event(ASK), delivery="d-7").json()["status"] == (
        "accepted"
    )
    [task] = tasks(w.services)
    assert task.instruction == (
        "# add() subtracts\n\n2 + 2 gives 0\n\n"
        "## @hubot wrote\n\nsee calc.py\n\n"
        f"## The request, from @octocat\n\n{ASK}"
    )


def test_the_newest_request_is_kept_whole_and_the_oldest_comments_go_first() -> None:
    said = [Comment(f"user{i}", f"comment {i} " + "x" * 9_000) for i in range(30)]
    request = "@autan " + "y" * 20_000
    told = instruction("Title", "Body", said, asked=request, sender="octocat")
    assert len(told) <= LIMIT
    assert told.endswith(f"## The request, from @octocat\n\n{request}")
    assert told.startswith("# Title\n\nBody\n\n[")
    assert "comment 29 " in told and "comment 0 " not in told
    kept = [i for i in range(30) if f"comment {i} " in told]
    assert kept == list(range(30 - len(kept), 30))  # the newest, in order
    assert f"[{30 - len(kept)} earlier comments left out: too long]" in told


def test_a_huge_issue_body_is_cut_before_the_request() -> None:
    told = instruction("T", "b" * 200_000, [Comment("a", "hi")], asked="@autan go", sender="o")
    assert len(told) <= LIMIT
    assert told.endswith("## The request, from @o\n\n@autan go")
    assert "[... cut: too long]" in told
    assert "## @a wrote" not in told


def test_a_request_alone_over_the_limit_is_cut_at_its_end() -> None:
    told = instruction("T", "B", [], asked="z" * 200_000, sender="o")
    assert len(told) == LIMIT
    assert told.startswith("## The request, from @o\n\nzzz")
    assert told.endswith("[... cut: too long]")


def test_a_labelled_issue_has_no_request_section_and_keeps_the_newest_comments() -> None:
    said = [Comment("p", f"c{i} " + "x" * 40_000) for i in range(4)]
    told = instruction("T", "B", said)
    assert len(told) <= LIMIT
    assert "The request" not in told
    assert "c3 " in told and "c2 " in told and "c0 " not in told
    assert "[2 earlier comments left out: too long]" in told


def test_comments_that_carry_autan_s_markers_are_left_out_whoever_posted_them() -> None:
    said = [
        Comment("octocat", "a real comment"),
        Comment("octocat", "Pull request body\n<!-- autan:issue:acme/app#7 -->"),
        Comment("AUTAN-APP[BOT]", "anything"),
    ]
    told = instruction("T", "B", said, bot_login="autan-app[bot]")
    assert told == "# T\n\nB\n\n## @octocat wrote\n\na real comment"
