"""How the embedded provider cuts an answer into stream chunks (no model needed)."""

from hypothesis import given
from hypothesis import strategies as st

from estimators.base import Generation, TokenLogprob
from gate.litellm_local import stream_pieces


def generation(*tokens: str) -> Generation:
    text = "".join(tokens).strip()
    return Generation(text=text, tokens=tuple(TokenLogprob(token=t, logprob=-0.5) for t in tokens))


def test_one_piece_per_token_with_the_answers_outer_spaces_stripped():
    pieces = stream_pieces(generation(" William", " Shakespeare", " "))
    assert [text for text, _ in pieces] == ["William", " Shakespeare"]
    assert [len(tokens) for _, tokens in pieces] == [1, 2]  # the trailing space rides with its neighbour


def test_without_tokens_the_whole_text_is_one_piece_and_nothing_is_no_piece():
    assert stream_pieces(Generation(text="Paris")) == [("Paris", None)]
    assert stream_pieces(Generation(text="")) == []


@given(st.lists(st.text(alphabet=" ab\n", max_size=3), min_size=1, max_size=8))
def test_pieces_join_to_the_answer_and_keep_every_token(tokens):
    made = generation(*tokens)
    pieces = stream_pieces(made)
    assert "".join(text for text, _ in pieces) == made.text
    if made.text:
        assert tuple(token for _, group in pieces for token in group) == made.tokens
