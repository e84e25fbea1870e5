"""The text routing reads from a request: the user turns, in either format."""

from tokenbrake.routing.prompt import prompt_text


def test_openai_user_turns_in_order_without_system_or_assistant():
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                         {"role": "assistant", "content": "ok"}, {"role": "user", "content": "second"}]}
    assert prompt_text(body) == "first\n\nsecond"


def test_openai_text_parts_are_joined_and_images_skipped():
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
        {"type": "text", "text": "what is it?"}]}]}
    assert prompt_text(body) == "look\n\nwhat is it?"


def test_anthropic_blocks_without_tool_results():
    body = {"system": "be brief", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "weather in Oslo?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "rain"}]}]}
    assert prompt_text(body) == "weather in Oslo?"  # the question behind the tool result


def test_no_messages_no_text():
    assert prompt_text({}) == "" and prompt_text({"messages": "nonsense"}) == ""
