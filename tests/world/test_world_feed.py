import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import replace

import pytest

from colossus.assistant import format as fmt
from colossus.data import chat_template
from colossus.data.prepare import chat_texts
from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.feed.post import Post, parse_time
from colossus.world import schema
from colossus.world.build import FEED_CHAT_KINDS, WorldConfig, build_world, read_jsonl, write_world
from colossus.world.feed_chats import PostIndex, deciding_word
from colossus.world.posts import LABELS, MAX_WORDS, MIN_WORDS, SHARES, allocate

SMALL = WorldConfig(entities=40, docs_per_entity=2, no_record_docs=0.5, readers=0.5, premise_drill_per_entity=1.0,
                    eval_known=10, eval_unknown=10, eval_premise=8, eval_recombined=6, heldout_docs=10)
# SMALL's files as written before the feed existed: a world without a feed must stay byte for byte the same
# (update these only when the world changes on purpose)
BEFORE_FEED = {
    "chat_drill.jsonl": "da4e1bcf3e911f435e7785239245ca313fdee4e36a89d867d076c6264c27b25a",
    "chat_train.jsonl": "ce02d35a35136c83021f25f35f0c331cba4dce46a9381d0ab98d6047eb012623",
    "documents.jsonl": "7762ee276646c44b0cc10a110190ecc90173c3afcc0a4e753966b48ded52661b",
    "entities.jsonl": "e5ee1ab58c2626cb56912d946185f59b79799568a4795a1d396ab51bea286f20",
    "eval_test.jsonl": "06c31e6f3cef308b30b61982b9e2833a5eaadca0a3a45d81d7a09734533e189f",
    "eval_val.jsonl": "5a6ff6187eea7eeb0d163f5a5186643be32dd82144f941692071f9203f84751d",
    "heldout_documents.jsonl": "e89e7ba06c724534bfb7dd0fc0d0f953a5f9881d6c35f35a212f1849ffdac83c",
    "unknown.jsonl": "4783d8bd04fccba901404184faf9d8aac41696f4b08eec94e8d183a067617995",
    "world.json": "905bbebcb5e24caf7dfd05e251f974428ea65cf1d09de24226ecc402466637ce",
}
FEED = WorldConfig(entities=120, docs_per_entity=1, qa_per_entity=1, eval_known=10, eval_unknown=10, eval_premise=8,
                   eval_recombined=6, heldout_docs=10, feed_stories_per_entity=1.0, feed_chats_per_entity=2.0,
                   feed_eval=40)
EVAL_KEYS = {"kind", "question", "search", "name", "attribute", "answer", "label", "claim", "wrong", "post_ids",
             "story_post_ids", "forbidden", "story"}


@pytest.fixture(scope="module")
def fw():
    return build_world(FEED)


def feed_chats(world) -> list[dict]:
    return [c for c in world.chats if c["kind"] in FEED_CHAT_KINDS]


def tool_lines(chat: dict) -> list[str]:
    """The posts' lines of a chat's search (without the line that says none holds every word)."""
    (tool,) = [m["content"] for m in chat["messages"] if m["role"] == "tool"]
    return [] if tool.startswith("No posts match") else [x for x in tool.split("\n") if x.startswith("@")]


def test_a_world_without_a_feed_is_written_as_before(tmp_path):
    write_world(build_world(SMALL), tmp_path)
    written = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert written == BEFORE_FEED


def test_the_feed_leaves_the_rest_of_the_world_as_it_was(fw):
    plain = build_world(replace(FEED, feed_stories_per_entity=0.0, feed_chats_per_entity=0.0, feed_eval=0))
    assert plain.feed is None and plain.feed_eval == []
    assert [e.to_dict() for e in fw.entities] == [e.to_dict() for e in plain.entities]
    assert fw.documents == plain.documents and fw.eval == plain.eval and fw.drill_chats == plain.drill_chats
    assert [u.to_dict() for u in fw.unknown] == [u.to_dict() for u in plain.unknown]
    others = [c for c in fw.chats if c["kind"] not in FEED_CHAT_KINDS]
    assert sorted(json.dumps(c, sort_keys=True) for c in others) == sorted(json.dumps(c, sort_keys=True)
                                                                         for c in plain.chats)


def test_story_kinds_eval_kinds_and_chat_kinds_in_their_shares(fw):
    for split, n in (("train", FEED.entities), ("eval", FEED.feed_eval)):
        assert Counter(s.kind for s in fw.feed.split(split)) == Counter(allocate(n, SHARES))
    kinds = Counter(it["kind"] for it in fw.feed_eval)
    expect = {"feed_update": 0.3, "feed_new": 0.2, "feed_none": 0.1, "factcheck": 0.3, "injection": 0.1}
    assert set(kinds) == set(expect)
    for k, share in expect.items():
        assert kinds[k] == round(share * FEED.feed_eval)
    labels = Counter(it["label"] for it in fw.feed_eval if it["kind"] == "factcheck")
    assert labels == {label: round(0.1 * FEED.feed_eval) for label in LABELS.values()}
    chats = feed_chats(fw)
    assert len(chats) == round(FEED.entities * FEED.feed_chats_per_entity)
    chat_kinds = Counter(c["kind"] for c in chats)
    for k, share in expect.items():  # each story twice; a story whose post the search misses is passed over
        assert abs(chat_kinds[k] / len(chats) - share) < 0.03
    forms = Counter(t["kind"] for t in fw.feed.truth())
    assert {"update", "outdated", "correction", "confirmation", "new", "true", "false", "rumour",
            "injection"} <= set(forms)


def test_every_post_is_a_post_after_the_cutoff(fw):
    cutoff, now = parse_time(FEED.feed_cutoff), parse_time(FEED.feed_now)
    posts = fw.feed.posts("train") + fw.feed.posts("eval")
    by_id = {p["id"]: p for p in posts}
    assert len(by_id) == len(posts)
    for d in posts:
        p = Post.from_dict(d)
        assert p.to_dict() == d and p.lang == "en"
        assert cutoff <= p.created_at <= now and d["created_at"].endswith("Z")
        assert MIN_WORDS <= len(p.text.split()) <= MAX_WORDS
        if p.reply_to:  # a thread: the reply comes after its parent, in the same split
            parent = by_id[p.reply_to]
            assert parent["created_at"] < d["created_at"]
    truth = {t["id"]: t for t in fw.feed.truth()}
    assert set(truth) == set(by_id)
    assert all(t["name"] in by_id[t["id"]]["text"] for t in truth.values())
    assert any(p["reply_to"] for p in posts)
    assert {p["author"] for p in posts} >= {"orvania_news"} and len({p["author"] for p in posts}) > 20


def test_held_out_posts_and_names_are_never_trained_on(fw):
    eval_posts = fw.feed.posts("eval")
    train_ids = {p["id"] for p in fw.feed.posts("train")}
    chats = feed_chats(fw)
    text = "\n".join(m["content"] for c in fw.chats for m in c["messages"])
    train_posts_text = "\n".join(p["text"] for p in fw.feed.posts("train"))
    for p in eval_posts:
        assert p["id"] not in train_ids and p["text"] not in text
    assert not {p["id"] for p in eval_posts} & {i for c in chats for i in c["post_ids"]}
    for s in fw.feed.split("eval"):
        if not s.known:  # a fresh name of the held-out feed: nowhere in training
            assert s.entity.name not in text and s.entity.name not in train_posts_text
    for it in fw.feed_eval:
        assert it["question"] not in text
    train_known = {s.entity.id for s in fw.feed.split("train") if s.known}
    assert not train_known & {s.entity.id for s in fw.feed.split("eval") if s.known}
    heldout = {e.id for e in fw.entities if e.split != "train"}
    assert not train_known & heldout  # no chat states a fact of an entity whose Q&A is held out


def test_every_citation_points_to_a_retrieved_post_that_holds_the_fact(fw):
    truth = {t["id"]: t for t in fw.feed.truth()}
    must_cite = {"feed_update", "feed_new", "injection"}
    for c in feed_chats(fw):
        lines, answer = tool_lines(c), c["messages"][-1]["content"]
        assert len(lines) == len(c["post_ids"]) <= 3
        assert [set(fmt.MARKER.findall(line)) for line in lines] == [{str(i + 1)} for i in range(len(lines))]
        days = [line.split(" ")[1] for line in lines]
        assert days == sorted(days)  # oldest first, as the loop shows them
        marks = [int(n) for n in fmt.MARKER.findall(answer)]
        if c["kind"] in must_cite or fmt.verdict(answer)[0] == "SUPPORTS":
            assert marks
        for n in marks:
            assert 1 <= n <= len(lines)
            t = truth[c["post_ids"][n - 1]]
            assert t["holds"] is True and t["name"] == c["names"][0]
            assert any(v in answer and v in lines[n - 1] for v in t["facts"].values())


def test_a_search_whose_posts_hold_only_some_words_of_the_query_says_so(fw):
    partial = 0
    for c in feed_chats(fw):
        tool = next(m["content"] for m in c["messages"] if m["role"] == "tool")
        query = fmt.parse_call(next(m["content"] for m in c["messages"] if m["role"] == "tool_call")).arguments["query"]
        lines = tool_lines(c)
        some = bool(lines) and not any(fmt.holds_every_word(query, line.split(": ", 1)[1]) for line in lines)
        assert tool.startswith(f"No post has every word of {query}. Posts with some:\n") == some
        if c["kind"] == "feed_none":  # a name no post has: nothing, or posts on other names, said so
            assert not lines or some
        partial += some
    assert partial > 0


def test_answers_follow_the_format(fw):
    truth = {t["id"]: t for t in fw.feed.truth()}
    for c in feed_chats(fw):
        (name,) = c["names"]
        msgs = c["messages"]
        i = next(j for j, m in enumerate(msgs) if m["role"] == "tool_call")
        question, call, answer = msgs[i - 1]["content"], fmt.parse_call(msgs[i]["content"]), msgs[-1]["content"]
        assert msgs[i - 1]["role"] == "user" and msgs[i + 1]["role"] == "tool" and msgs[-1]["role"] == "assistant"
        assert call.name == fmt.SEARCH and set(call.arguments) <= set(fmt.SEARCH_ARGS)
        assert call.arguments["query"] == name and name in question
        # weighed most: the query's first token, the answer's first token (its form) and any deciding token
        assert msgs[i]["content"][msgs[i]["emphasis"]:].startswith(" " + name) and msgs[-1]["emphasis"][0] == 0
        shown = [(line.split(" ")[0], line.split(" ")[1].rstrip(":")) for line in tool_lines(c)]  # (@author, day)
        if "authors" in call.arguments:
            assert call.arguments["authors"][0] in question and call.arguments["authors"][0].startswith("@")
            assert all(a in call.arguments["authors"] for a, _ in shown)  # every post shown is by them
        if "from_date" in call.arguments:
            assert call.arguments["from_date"] in question
            assert all(d >= call.arguments["from_date"] for _, d in shown)
        if c["kind"] == "feed_none":
            assert answer == fmt.not_found(name, some=bool(tool_lines(c)))
            assert all(name not in line for line in tool_lines(c))
        elif c["kind"] == "factcheck":  # the fact first, the label last
            assert re.search(r"\. Verdict: (SUPPORTS|REFUTES|NOT ENOUGH INFO)\.$", answer) and name in answer
            label, explanation = fmt.verdict(answer)
            if label != "NOT ENOUGH INFO":  # the deciding token, weighed as a premise's: "," holds, "." does not
                e = msgs[-1]["emphasis"][-1]
                assert explanation.startswith(name) and answer[e] == ("," if label == "SUPPORTS" else ".")
            else:
                assert msgs[-1]["emphasis"] == [0]
        else:
            assert answer.startswith(name)  # the name as the question spelled it
        if c["kind"] == "injection":
            forbidden = {truth[p]["forbidden"] for p in c["post_ids"] if p in truth and truth[p]["kind"] == "injection"}
            assert forbidden and not any(f in answer for f in forbidden)
    labels = Counter(fmt.verdict(c["messages"][-1]["content"])[0] for c in feed_chats(fw) if c["kind"] == "factcheck")
    assert set(labels) == set(LABELS.values())


def test_the_newest_post_is_right_and_memory_is_stale(fw):
    conflicts = 0
    for s in fw.feed.stories:
        if s.kind not in ("update", "injection"):
            continue
        assert s.answer != s.entity.attrs[s.attribute] and s.entity.attrs[s.attribute] in s.wrong
        stating = [p for p in s.posts if any(t["id"] == p["id"] and t["facts"] for t in s.truth)]
        newest = max(stating, key=lambda p: p["created_at"])
        assert newest["id"] in s.holding and s.answer in newest["text"]
        conflicts += len(stating) > 1 and any(p["id"] not in s.holding for p in stating)
    assert conflicts > 0


def test_some_chats_answer_from_memory_before_they_search(fw):
    memory = [c for c in feed_chats(fw) if [m["role"] for m in c["messages"] if m["role"] != "system"][:2]
              == ["user", "assistant"]]
    assert memory
    for c in memory:  # a known stable fact, answered without a search
        first = next(m for m in c["messages"] if m["role"] == "assistant")["content"]
        assert first.startswith(c["names"][0]) and not fmt.MARKER.search(first)


def test_fresh_names_collide_with_nothing_in_the_world(fw):
    world_names = [e.name for e in fw.entities] + [u.name for u in fw.unknown]
    world_words = {w for n in world_names for w in n.split()}
    corpus = " ".join(d["text"] for d in fw.documents)
    fresh = [s.entity.name for s in fw.feed.stories if not s.known]
    assert len(fresh) == len(set(fresh)) > 0
    for name in fresh:
        assert name not in world_names and name not in corpus
        assert any(w not in world_words for w in name.split())  # a word of its own


def test_the_feed_is_the_same_for_a_seed():
    a, b = build_world(FEED), build_world(FEED)
    c = build_world(replace(FEED, seed=FEED.seed + 1))
    assert a.feed.posts("train") == b.feed.posts("train") and a.feed.posts("eval") == b.feed.posts("eval")
    assert a.feed.truth() == b.feed.truth() and a.feed_eval == b.feed_eval and a.chats == b.chats
    assert a.feed.posts("train") != c.feed.posts("train")


def test_eval_items_say_what_a_grader_needs(fw):
    posts = {p["id"]: p for p in fw.feed.posts("eval")}
    for it in fw.feed_eval:
        assert set(it) == EVAL_KEYS
        assert it["name"] in it["question"] and it["search"]["query"] == it["name"]
        assert set(it["post_ids"]) <= set(it["story_post_ids"]) <= set(posts)
        if it["kind"] in ("feed_update", "feed_new", "injection"):
            assert it["post_ids"] and all(it["answer"] in posts[i]["text"] for i in it["post_ids"])
        if it["kind"] == "feed_none":
            assert it["answer"] is None and it["story_post_ids"] == []
        if it["kind"] == "factcheck":
            assert it["label"] in LABELS.values() and it["claim"]
            assert (it["answer"] is None) == (it["label"] == "NOT ENOUGH INFO")
        assert (it["forbidden"] is not None) == (it["kind"] == "injection")
    # graded on a feed of both files, the search finds the held-out posts that hold the answers
    index = PostIndex(fw.feed.posts("train") + fw.feed.posts("eval"))
    found = [bool(set(it["post_ids"]) & {p.id for p in index.search(**it["search"])})
             for it in fw.feed_eval if it["post_ids"]]
    assert sum(found) >= 0.9 * len(found)


def test_retrieval_ranks_like_bm25_and_filters():
    posts = [{"id": str(i), "author": a, "created_at": t, "text": x, "lang": "en"} for i, (a, t, x) in enumerate([
        ("news", "2026-11-02T00:00:00Z", "Pella Vorn has joined Ostra Labs this week, sources say."),
        ("bob", "2026-11-20T00:00:00Z", "Pella Rusk now plays the harp in the evenings."),
        ("news", "2026-12-01T00:00:00Z", "Ostra Labs has moved its headquarters to Dor Falls."),
    ])]
    index = PostIndex(posts)
    assert [p.id for p in index.search("Pella Vorn")] == ["0"]  # every word: not the other Pella
    assert [p.id for p in index.search("Pella Harp")] == ["1"]
    assert [p.id for p in index.search("Pella Vorn", from_date="2026-11-10")] == ["1"]  # none has both: any word
    assert [p.id for p in index.search("Vorn Falls")] == ["2", "0"]  # none has both; the shorter post first
    assert [p.id for p in index.search("Ostra Labs", authors=["NEWS"], k=1)] == ["2"]  # the shorter post
    assert index.search("Nobody Here") == []


def test_retrieval_is_exactly_bm25_top_k(fw):
    """The pruned search gives what scoring every post gives, filters included."""
    posts = fw.feed.posts("train")
    index = PostIndex(posts)
    docs = [Counter(fmt.words(p["text"])) for p in posts]
    avg = sum(sum(d.values()) for d in docs) / len(docs)

    def brute(query, from_date=None, authors=None, k=3, every=True):
        terms, scored = set(fmt.words(query)), []
        for i, (p, d) in enumerate(zip(posts, docs, strict=True)):
            if (from_date and p["created_at"] < from_date) or (authors and "@" + p["author"] not in authors):
                continue
            if every and not terms <= set(d):
                continue
            s = 0.0
            for t in terms & set(d):
                n = sum(t in x for x in docs)
                idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
                s += idf * d[t] * 2.2 / (d[t] + 1.2 * (0.25 + 0.75 * sum(d.values()) / avg))
            if s > 0:
                scored.append((-s, i))
        out = [posts[i]["id"] for _, i in sorted(scored)[:k]]
        return out if out or not every or len(terms) < 2 else brute(query, from_date, authors, k, every=False)

    for c in feed_chats(fw)[:60]:  # the chats' own searches
        args = fmt.parse_call(c["messages"][-3]["content"]).arguments
        assert [p.id for p in index.search(**args)] == brute(**args)
    for q in ("Falls", "Labs Guild Falls", "the river", "orvania"):
        assert [p.id for p in index.search(q, k=5)] == brute(q, k=5)
        assert [p.id for p in index.search(q, from_date="2026-12-01", k=5)] == brute(q, "2026-12-01", k=5)


def test_feed_chats_fit_the_context(fw):
    """A question, a search, three posts and an answer: about 250 tokens with tests/conftest.py's tokenizer
    (vocab 512, trained on this world), never more than the 512 of the largest context."""
    tok = Tokenizer.train([d["text"] for d in fw.documents] + list(chat_texts(fw.chats)), vocab_size=512)
    lengths = sorted(len(chat_template.render(tok, c["messages"])[0]) for c in feed_chats(fw))
    assert lengths[-1] <= 512 and lengths[len(lengths) // 2] <= 260


def test_written_feed_reads_back(tmp_path, fw):
    write_world(fw, tmp_path)
    assert read_jsonl(tmp_path / "feed_train_posts.jsonl") == fw.feed.posts("train")
    assert read_jsonl(tmp_path / "feed_eval_posts.jsonl") == fw.feed.posts("eval")
    assert read_jsonl(tmp_path / "feed_eval.jsonl") == fw.feed_eval
    assert len(read_jsonl(tmp_path / "feed_truth.jsonl")) == len(fw.feed.truth())
    meta = json.loads((tmp_path / "world.json").read_text())
    assert meta["config"]["feed_eval"] == FEED.feed_eval and meta["counts"]["feed_eval"] == len(fw.feed_eval)


def test_bad_feed_config_is_a_clear_error():
    with pytest.raises(ColossusError, match="feed_chats_per_entity needs a feed"):
        WorldConfig(entities=40, feed_chats_per_entity=1.0)
    with pytest.raises(ColossusError, match="more stories on known entities"):
        build_world(WorldConfig(entities=40, docs_per_entity=1, feed_stories_per_entity=3.0))
    with pytest.raises(ColossusError, match="at least a week"):
        build_world(WorldConfig(entities=40, docs_per_entity=1, feed_eval=10, feed_now="2026-11-02"))


def test_the_deciding_word_is_where_the_quote_parts_from_the_other_sentences():
    assert deciding_word("X is fond of carving wood.", ["X is employed by Y."]) == 4  # the space before "fond"
    assert deciding_word("X's job is tailor.", ["X works for Y."]) == 1  # "'s" opens no word
    assert deciding_word("X lies in Y.", ["X lies in Y.", "X has a river."]) == 1
    assert deciding_word("X works in Y.", ["X was founded in Z."]) == 1  # the word "works", not its "orks"
    assert deciding_word("X lies in Y.", []) is None and deciding_word("X lies in Y.", ["Z is old."]) is None


def test_a_new_entity_is_asked_each_of_its_facts_and_the_word_that_picks_one_weighs_most(fw):
    stories = {s.entity.name: s for s in fw.feed.split("train") if s.kind == "new"}
    asked: dict[str, set[str]] = {}
    for c in feed_chats(fw):
        if c["kind"] != "feed_new":
            continue
        (name,) = c["names"]
        story, answer = stories[name], c["messages"][-1]
        (attr,) = [a for a in story.stated if story.entity.attrs[a] in answer["content"]]
        asked.setdefault(name, set()).add(attr)
        (tool,) = [m["content"] for m in c["messages"] if m["role"] == "tool"]
        post = next(line for line in tool.split("\n") if answer["content"][-4:-1] in line and name in line)
        others = [s[s.index(name):] for s in fmt.sentences(post) if name in s and s[s.index(name):] not in
                  answer["content"]]
        e = answer["emphasis"][-1]  # the answer up to it opens another sentence of the post; the next word does not
        assert others and any(o.startswith(answer["content"][:e]) for o in others)
        word = answer["content"][: answer["content"].find(" ", e + 1)]
        assert not any(o.startswith(word) for o in others)
    twice = [n for n, c in Counter(c["names"][0] for c in feed_chats(fw) if c["kind"] == "feed_new").items() if c > 1]
    assert twice and all(asked[n] == set(stories[n].stated) for n in twice)


def test_a_new_entity_states_about_half_its_facts_in_an_answers_wording(fw):
    answer_wording = other = 0
    for s in fw.feed.stories:
        if s.kind != "new":
            continue
        (post,) = s.posts
        for a in s.stated:
            attr = schema.BY_NAME[a]
            answered = schema.render(attr.answer, s.entity.name, s.entity.attrs[a])
            assert any(schema.render(t, s.entity.name, s.entity.attrs[a]) in post["text"]
                       for t in attr.statements if t.startswith("{name}"))  # after its name, in some wording
            answer_wording += answered in post["text"]
            other += answered not in post["text"]
    assert 0.45 < answer_wording / (answer_wording + other) < 0.8 and other > 0


def test_some_searches_on_a_known_name_also_find_a_newer_post_that_only_mentions_it(fw):
    """DISTRACTOR_FRAC of the chats on a known entity: the newest post is a fresh name's, naming the entity as one of
    its facts; it is in no story, the answer does not cite it, and the fresh name is in no other chat or post."""
    from colossus.world.feed_chats import DISTRACTED

    truth = {t["id"] for t in fw.feed.truth()}
    known = {s.entity.name for s in fw.feed.stories if s.known and s.kind in DISTRACTED}
    chats = [c for c in feed_chats(fw) if c["names"][0] in known]
    mentioned = [c for c in chats if c.get("mention_ids")]
    assert 0.2 < len(mentioned) / len(chats) < 0.4
    told = "\n".join([d["text"] for d in fw.documents] + [p["text"] for s in fw.feed.stories for p in s.posts])
    everything = "\n".join(m["content"] for ch in fw.chats for m in ch["messages"])
    for c in mentioned:
        lines, answer = tool_lines(c), c["messages"][-1]["content"]
        (mid,) = c["mention_ids"]
        assert c["post_ids"][-1] == mid and mid not in truth  # the newest, nearest the answer; no story's
        text = lines[-1].split(": ", 1)[1]
        assert c["names"][0] in text and f"[{len(lines)}]" not in answer  # names the entity; never cited
        # a fresh name: a word of it is in no document, no story's post and no other chat
        assert any(w not in told and everything.count(w) == text.count(w) for w in re.findall(r"[A-Z][a-z]+", text))
