from tokenbrake.wire.sse import SSEParser, encode


def test_events_split_across_chunks_are_reassembled():
    parser = SSEParser()
    wire = b'event: message_start\ndata: {"a": 1}\n\ndata: [DONE]\n\n'
    events = []
    for i in range(len(wire)):
        events += parser.feed(wire[i : i + 1])
    assert [(e.event, e.data) for e in events] == [("message_start", '{"a": 1}'), (None, "[DONE]")]


def test_comments_and_crlf_are_handled():
    events = SSEParser().feed(b": keep-alive\r\ndata: x\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [(None, "x")]


def test_encode_round_trips():
    wire = encode({"k": "v"}, "ping") + encode("[DONE]")
    events = SSEParser().feed(wire)
    assert events[0].event == "ping" and events[0].json() == {"k": "v"}
    assert events[1].data == "[DONE]"


def test_events_in_our_own_shape_keep_their_wire_bytes():
    wire = b'event: ping\ndata: {"k": 1}\n\ndata: [DONE]\n\n'
    events = SSEParser().feed(wire)
    assert [e.raw for e in events] == [b'event: ping\ndata: {"k": 1}\n\n', b"data: [DONE]\n\n"]


def test_events_in_another_shape_are_parsed_without_wire_bytes():
    events = SSEParser().feed(b"data:x\n\ndata: a\ndata: b\n\ndata: y\r\n\r\n")
    assert [(e.data, e.raw) for e in events] == [("x", None), ("a\nb", None), ("y", None)]


MIXED = (b'data: {"n": 1}\n\n: keep-alive\n\nevent: ping\ndata: {}\n\n\n\ndata: a\ndata: b\n\n'
         b'data: caf\xc3\xa9\n\ndata: bad \xff\n\nevent: e\ndata: {"n": 2}\n\ndata: [DONE]\n\n')
MIXED_EVENTS = [(None, '{"n": 1}'), ("ping", "{}"), (None, "a\nb"), (None, "café"), (None, "bad \ufffd"),
                ("e", '{"n": 2}'), (None, "[DONE]")]


def test_a_stream_mixing_shapes_parses_the_same_however_it_is_cut():
    """Comments, extra blank lines, multi-line data and invalid UTF-8 between events of our
    own shape: the same events whether the bytes come at once, byte by byte or in two pieces
    cut anywhere."""
    def parsed(chunks) -> list:
        parser = SSEParser()
        return [(e.event, e.data) for chunk in chunks for e in parser.feed(chunk)]

    assert parsed([MIXED]) == MIXED_EVENTS
    assert parsed([MIXED[i:i + 1] for i in range(len(MIXED))]) == MIXED_EVENTS
    for cut in range(len(MIXED)):
        assert parsed([MIXED[:cut], MIXED[cut:]]) == MIXED_EVENTS, cut


def test_only_events_in_our_own_shape_keep_their_wire_bytes_after_another_shape():
    events = SSEParser().feed(b"data: a\n\n: comment\n\ndata: b\n\n")
    assert [(e.data, e.raw) for e in events] == [("a", b"data: a\n\n"), ("b", None)]


def test_plain_data_lines_give_their_payloads_and_anything_else_leaves_the_chunk_to_feed():
    parser = SSEParser()
    assert parser.feed_data_payloads(b'data: {"n": 1}\n\ndata: {"n"') == [b'{"n": 1}']
    assert parser.feed_data_payloads(b': 2}\n\ndata: [DONE]\n\n') == [b'{"n": 2}', b"[DONE]"]
    assert parser.feed_data_payloads(b"") == []
    for other in (b"event: ping\ndata: {}\n\n", b": keep-alive\n\n", b"data: a\ndata: b\n\n", b"data: x\r\n\r\n"):
        parser = SSEParser()
        assert parser.feed_data_payloads(b"data: 1\n\n" + other) is None  # nothing taken: all of it is feed's
        assert [e.data for e in parser.feed(b"data: 1\n\n" + other)][0] == "1"


def test_reading_data_lines_then_events_loses_nothing_across_the_switch():
    parser = SSEParser()
    assert parser.feed_data_payloads(b"data: 1\n\ndata: 2") == [b"1"]
    assert parser.feed_data_payloads(b"\n\nevent: e\ndata: 3\n\n") is None
    assert [(e.event, e.data) for e in parser.feed(b"\n\nevent: e\ndata: 3\n\n")] == [(None, "2"), ("e", "3")]


def test_reading_data_payloads_first_as_the_relay_does_gives_the_same_events_however_cut():
    """The relay asks for plain `data:` payloads and falls back to `feed` for a chunk that has
    anything else; either way, every event's data comes out once, in order."""
    def relayed(chunks) -> list:
        parser, out = SSEParser(), []
        for chunk in chunks:
            payloads = parser.feed_data_payloads(chunk)
            if payloads is None:
                out += [(e.event, e.data) for e in parser.feed(chunk)]
            else:
                out += [(None, payload.decode("utf-8", errors="replace")) for payload in payloads]
        return out

    plain = b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'
    for wire, expected in ((plain, [(None, '{"n": 1}'), (None, '{"n": 2}'), (None, "[DONE]")]), (MIXED, MIXED_EVENTS)):
        assert relayed([wire]) == expected
        assert relayed([wire[i:i + 1] for i in range(len(wire))]) == expected
        for cut in range(len(wire)):
            assert relayed([wire[:cut], wire[cut:]]) == expected, cut
