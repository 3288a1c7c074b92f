"""POST /v1/factcheck against a live server whose model was trained to check (tests/tool_model.py)."""

from __future__ import annotations

import httpx
import pytest
import tool_model as tm


@pytest.fixture(scope="module")
def url(live_server, tool_model_dir):
    with live_server(model=tool_model_dir) as u:
        for post in (tm.POST, tm.FALSE_POST):
            assert httpx.post(f"{u}/v1/posts", json=post.to_dict()).status_code == 200
        yield u


def check(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/factcheck", json=body, timeout=60)


def test_a_true_post_is_supported_by_its_evidence_and_gets_no_note(url):
    r = check(url, post_id=tm.POST.id)
    assert r.status_code == 200, r.text
    v = r.json()
    assert (v["object"], v["label"], v["verdict_given"]) == ("factcheck", "SUPPORTS", True)
    assert v["explanation"] == "Pella Vorn works at Ostra Labs, as the post says [1]." and v["claim"] == tm.POST.text
    assert [(e["number"], e["id"], e["url"]) for e in v["evidence"]] == [(1, tm.POST.id, f"{url}/posts/{tm.POST.id}")]
    assert v["note"] is None


def test_a_claim_is_checked_without_a_post(url):
    v = check(url, text=tm.CHECK_CLAIM).json()
    assert v["label"] == "REFUTES" and v["post_id"] is None and v["note"] is None
    assert [e["id"] for e in v["evidence"]] == [tm.POST.id]


def test_a_false_post_gets_one_community_note_shown_with_the_post(url):
    v = check(url, post_id=tm.FALSE_POST.id).json()
    assert v["label"] == "REFUTES" and [e["id"] for e in v["evidence"]] == [tm.POST.id]
    note = v["note"]
    assert note["postId"] == tm.FALSE_POST.id and note["classification"] == "MISINFORMED_OR_POTENTIALLY_MISLEADING"
    assert note["summary"] == v["explanation"] and note["sources"] == [f"{url}/posts/{tm.POST.id}"]
    assert note["status"] == "NEEDS_MORE_RATINGS" and note["author"] == "colossus"
    again = check(url, post_id=tm.FALSE_POST.id).json()
    assert again["note"]["noteId"] == note["noteId"]  # checked twice, noted once
    shown = httpx.get(f"{url}/v1/posts/{tm.FALSE_POST.id}").json()
    assert [n["noteId"] for n in shown["notes"]] == [note["noteId"]]


def test_note_false_checks_without_writing(url, live_server, tool_model_dir):
    with live_server(model=tool_model_dir) as other:
        for post in (tm.POST, tm.FALSE_POST):
            assert httpx.post(f"{other}/v1/posts", json=post.to_dict()).status_code == 200
        v = check(other, post_id=tm.FALSE_POST.id, note=False).json()
        assert v["label"] == "REFUTES" and v["note"] is None
        assert httpx.get(f"{other}/v1/posts/{tm.FALSE_POST.id}").json()["notes"] == []


@pytest.mark.parametrize(("body", "status", "param"), [
    ({}, 400, "post_id"),
    ({"post_id": tm.POST.id, "text": "x"}, 400, "post_id"),
    ({"post_id": "no-such-post"}, 404, "post_id"),
    ({"post_id": "bad id!"}, 400, "post_id"),
    ({"text": "   "}, 400, "text"),
    ({"text": "x" * 100_000}, 400, "text"),
    ({"text": 3}, 400, "text"),
    ({"text": "x", "note": "yes"}, 400, "note"),
    ({"text": "x", "model": "another"}, 404, "model"),
])
def test_bad_requests_answer_4xx_naming_the_field(url, body, status, param):
    r = check(url, **body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param
