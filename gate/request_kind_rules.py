"""What one message asks, by word lists and patterns: part of :mod:`gate.request_kind`.

Every rule is a regular expression over a word list, so a decision can be explained by naming the words
that matched. :func:`read_text` takes a message already split by
:func:`~gate.request_kind_text.split_supplied` and returns the first rule that matches, surest first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gate.request_kind_text import (
    REWRITE_RULES,
    TEXT_VERB,
    WEAK_POINTER,
    Supplied,
    alternatives,
    compile_rule,
    first_match,
    words,
)

__all__ = ["CODE_IN_MESSAGE", "Reading", "Rule", "read_text", "strip_greeting"]

CODE_IN_MESSAGE = "the message contains code"  # the evidence when code was pasted rather than asked for

Rule = Literal[
    "code", "creative", "rewrite", "rewrite_previous", "chit_chat", "opinion", "advice",
    "supplied_text", "text_task", "mixed", "expository", "question", "fallback",
]  # fmt: skip

# --------------------------------------------------------------------------------------- what it asks

_LANGUAGES = alternatives(
    "python|javascript|typescript|java|c\\+\\+|c#|rust|golang|go program|ruby|php|sql|bash|shell|kotlin|swift|"
    "html|css|pandas|numpy|react|node\\.?js|django|flask|matlab|perl|scala|haskell|powershell|excel formula"
)
_CODE_NOUNS = alternatives(
    "function|functions|script|program|code|regex|regular expression|sql query|database query|snippet|"
    "unit test|unit tests|dockerfile|makefile|css rule|one-liner|decorator|lambda|stack trace|type hints|docstring"
)
_CODE_VERBS = alternatives(
    "write|create|implement|generate|give me|show me|build|code|fix|debug|refactor|optimize|optimise|convert|port"
)
# Between a verb and the thing it makes: a few words, but no preposition, article "the" or question word, so
# "write a few paragraphs about Come Play With Me" asks for paragraphs (not a play), "give me the function of
# the liver" names a thing that exists, and "what did Chekhov write a play about" is a question.
_GAP = (
    r"(?:\W+(?!(?:about|on|of|regarding|concerning|explaining|describing|the|its|his|her|their|what|who|when|"
    r"where|which|why|how|whose|is|was|are|were|did|does)\b)\w+){0,5}?\W+"
)
_CODE_RULES = (
    compile_rule(rf"\b({_CODE_VERBS})\b{_GAP}({_CODE_NOUNS})\b"),
    compile_rule(rf"\b(implement|code up|program)\b.*\b(in|using|with)\s+({_LANGUAGES})(?!\w)"),
    compile_rule(
        rf"\bhow (?:do|can|would|should|to) (?:i |you |we |one )?\w.*\b(in|with|using)\s+({_LANGUAGES})(?!\w)"
    ),
    compile_rule(rf"\b(this|the following|my)\s+({_LANGUAGES}|code|regex|query|function|script|snippet)(?!\w)"),
)

_CREATIVE_NOUNS = alternatives(
    "poem|poems|poetry|haiku|haikus|limerick|limericks|sonnet|ode|verse|verses|rhyme|lyrics|song|songs|rap|"
    "ballad|jingle|story|stories|short story|bedtime story|fairy tale|fable|tale|joke|jokes|pun|puns|riddle|"
    "knock-knock joke|slogan|tagline|motto|toast|screenplay|scene|play|skit|monologue|dialogue|diary entry|"
    "letter|email|speech|tweet|caption|fan fiction|fanfic|origin story|horror story|love letter|greeting card|"
    "dating profile|cover letter|invitation|memoir|travelogue|personal essay|character study|journal entry"
)
_CREATIVE_VERBS = alternatives(
    "write|compose|create|make up|come up with|invent|tell|give|generate|draft|pen|craft|need|want|"
    "turn|make|produce|imagine"
)
_CREATIVE_RULES = (
    compile_rule(rf"\b({_CREATIVE_VERBS})\b{_GAP}({_CREATIVE_NOUNS})\b"),
    compile_rule(
        r"\b(pretend (?:you are|you're|to be)|imagine (?:you are|you're|that|if)|role-?play|act as|"
        r"in the style of|from the perspective of|once upon a time)\b"
    ),
)
# Writing about the writer's own life ("a moment in your life", "a trip you took") is personal, not factual.
_PERSONAL = compile_rule(
    r"\b(?:write|describe|tell)\b.*\b(?:your (?:own )?(?:life|childhood|dream|dreams|younger self|experience|"
    r"family|friend|friends)|you(?:'ve| have)? (?:always )?(?:wanted|took|know well|will never forget|"
    r"you'll never forget)|you're passionate about)\b"
)
_NOT_CREATIVE = compile_rule(r"\b(the (?:life )?story of|the history of)\b")

# "translate 'good night' into French": a short quoted text to rewrite.
_SHORT_QUOTE = re.compile(r"(?<!\w)'[^']+'(?!\w)|\"[^\"]+\"|“[^”]+”")

_CHAT_PHRASES = alternatives(
    "hi|hello|hey|hey there|hi there|hello there|hiya|howdy|yo|greetings|good morning|good afternoon|"
    "good evening|good night|good day|how are you|how are you doing|how's it going|how is it going|"
    "how are things|what's up|whats up|sup|how's your day|how's your day going|how is your day going|"
    "thanks|thank you|thank you so much|thanks a lot|thank you very much|many thanks|thx|ty|cheers|"
    "much appreciated|that helped|that's helpful|that was helpful|great|cool|ok|okay|ok cool|nice|awesome|"
    "perfect|got it|i see|lol|haha|hahaha|hmm|wow|oops|never mind|nevermind|bye|goodbye|bye bye|see you|"
    "see you later|see you tomorrow|take care|nice to meet you|who are you|what's your name|what is your name|"
    "are you a robot|are you human|are you real|are you an ai|are you there|what can you do|"
    "can you be my friend|can we talk|can we just talk|i love you|you're funny|you're awesome|you're great|"
    "you're the best|you are funny|you are awesome|that's all|that's all for now|that's funny|"
    "that's hilarious|good job|well done|yes|no|sure|please|sounds good|sounds great|excellent|amazing|"
    "wonderful|fantastic|brilliant|lovely|interesting|that's great|that's cool|that's nice|that's awesome|"
    "that's interesting|that's good|that's perfect|that's it|that's right|that's amazing|great job|no problem"
)
_CHAT_SENTENCE = compile_rule(rf"^(?:(?:{_CHAT_PHRASES})\b[\s,]*)+$")
_FEELING = compile_rule(
    r"^i(?:'m| am) (?:so |very |really |a bit |feeling )*(happy|sad|bored|tired|lonely|excited|"
    r"stressed|fine|good|great|okay|ok)(?: today| now| right now)?$"
)
_GREETINGS = alternatives(
    "hi|hello|hey|hey there|hi there|hello there|greetings|good morning|good afternoon|good evening|ok|okay|"
    "thanks|thank you|please"
)
_GREETING_PREFIX = compile_rule(rf"^(?:(?:{_GREETINGS})\b[\s,!.]*)+")

_OPINION = compile_rule(
    r"\b(what do you think (?:of|about)|how do you feel about|what(?:'s| is) your (?:opinion|view|take|"
    r"favou?rite)|your favou?rite|in your (?:opinion|view)|do you (?:like|love|hate|enjoy|prefer)|"
    r"would you rather|which do you prefer|what would you (?:name|do|choose|pick|call)|overrated|underrated|"
    r"change my mind|what's your opinion|is it worth it)\b"
)
_ADVICE = compile_rule(
    r"\b((?:give|need|want|share|any|some)\s+(?:me\s+)?(?:\d+\s+|a few\s+|some\s+|good\s+)?(?:advice|tips|ideas)|"
    r"help me (?:brainstorm|decide|choose|plan|come up with|pick|name)|brainstorm|"
    r"suggest (?:some |a )?names?|name ideas|"
    r"should i (?:quit|learn|buy|move|go|start|choose|pick|get|date|tell|ask|call|text|wear|cook|eat|study|"
    r"apply|accept|stay|leave|sell)|"
    r"how (?:can|do|should) i (?:stop|be more|become more|get better at|improve my|deal with|cope with|handle|"
    r"tell my|make friends|stay motivated|overcome|motivate myself|relax|calm down)|"
    r"what should i (?:cook|eat|wear|do|name|buy|get))\b"
)

_EXPOSITORY = compile_rule(
    r"\b(?:write|give|provide|draft|compose|prepare|produce|create|need|want|craft)\b(?:\W+\w+){0,5}?\W+"
    r"(paragraph|paragraphs|essay|article|report|overview|summary|bio|biography|profile|description|history|"
    r"explanation|introduction|intro|account|entry|timeline|outline|review|synopsis|background|life story|"
    r"list|comparison|facts?)\b"
    r"|^(?:please\s+)?(tell me (?:about|a bio|the bio|the biography|an overview|the overview|everything|more|"
    r"the story of|the history of|some facts|a fact|a fun fact)|explain|describe|outline|summari[sz]e|compare|"
    r"contrast|what can you tell me|introduce|give me some background)\b"
    r"|\bi(?:'d| would) like to (?:learn|know|read|hear) (?:more )?about\b"
)
_QUESTION_START = compile_rule(
    r"^(?:and |so |but |ok |okay |also )?(who|whom|whose|what|when|where|which|why|how|is|are|was|were|do|does|"
    r"did|can|could|will|would|has|have|had|should|name|list|tell me (?:who|what|when|where|which|why|how|if|"
    r"whether))\b"
)


@dataclass(frozen=True)
class Reading:
    """What one message asks: a rule name and the words that matched it, for the reason sentence."""

    rule: Rule
    evidence: str
    overruled: str = ""  # for "mixed": the non-factual reading the factual question overruled


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


# "Write a haiku about Paris and tell me when the tower was built": the second clause is its own request.
_CLAUSE_SPLIT = compile_rule(
    r",?\s+(?:and|but|then|also|plus)\s+(?=(?:also\s+)?(?:tell me|explain|describe|who|what|"
    r"when|where|which|why|how)\b)"
)


def _clauses(text: str) -> list[str]:
    return [c.strip() for s in _sentences(text) for c in _CLAUSE_SPLIT.split(s) if c.strip()]


def _normalise(sentence: str) -> str:
    sentence = sentence.lower().replace("’", "'").replace("‘", "'")
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s',#+-]", " ", sentence)).strip()


def _is_chat(instruction: str) -> bool:
    parts = [_normalise(s) for s in _sentences(instruction)]
    parts = [p for p in parts if p]
    return bool(parts) and all(_CHAT_SENTENCE.match(p) or _FEELING.match(p) for p in parts)


def strip_greeting(instruction: str) -> str:
    """The instruction without a leading "Hi!", "Hello there." or "Please" (they carry no task)."""
    return _GREETING_PREFIX.sub("", instruction.strip()).strip()


_WH_BEFORE = compile_rule(r"\b(what|which|who|whom|whose|when|where|why|how)\b")


def _asked_for(patterns: tuple[re.Pattern[str], ...], instruction: str) -> str | None:
    """A match that is a request, not part of a question about the world ("what did Chekhov write a play about")."""
    for sentence in _sentences(instruction):
        for pattern in patterns:
            match = pattern.search(sentence)
            if match and not _WH_BEFORE.search(sentence[: match.start()]):
                return match.group(0)
    return None


def _factual_question(sentence: str) -> bool:
    """A direct question about the world ("...?" or "tell me when..."), not about taste or the user's life."""
    plain = strip_greeting(sentence)
    direct = plain.endswith("?") or plain.lower().startswith(("tell me", "also tell me"))
    asks = direct and bool(_QUESTION_START.match(plain)) and words(plain) >= 3
    return asks and not first_match(
        (_OPINION, _ADVICE, _EVALUATIVE, *_CREATIVE_RULES, *_CODE_RULES, *REWRITE_RULES), plain
    )


# "Is X better than Y?" next to "what's your opinion?" is part of the opinion, not a question of fact.
_EVALUATIVE = compile_rule(r"\b(better|worse|best|worst|nicer|cooler|more fun|prettier|overrated|underrated)\b")


def _also_asks(instruction: str, matched: str) -> str | None:
    """Another sentence or clause that asks a factual question or for an exposition: then it is factual."""
    for clause in _clauses(instruction):
        if matched not in clause and (_factual_question(clause) or _EXPOSITORY.search(strip_greeting(clause))):
            return clause
    return None


def _explicit(supplied: Supplied, instruction: str) -> Reading | None:
    """The rules whose match is sure whatever the conversation: code, creative writing, rewriting."""
    if supplied.code:
        return Reading("code", CODE_IN_MESSAGE)
    found = first_match(_CODE_RULES, instruction)
    if found:
        return Reading("code", found)
    found = _asked_for((*_CREATIVE_RULES, _PERSONAL), instruction)
    if found and not _NOT_CREATIVE.search(instruction):
        return Reading("creative", found)
    found = first_match(REWRITE_RULES, instruction)
    if found and supplied.texts:
        return Reading("rewrite", found)
    if found and WEAK_POINTER.search(instruction):
        return Reading("rewrite_previous", found)  # "make it shorter": an edit of an earlier answer
    if found and _SHORT_QUOTE.search(instruction):
        return Reading("rewrite", found)  # "translate 'good night' into French"
    return None


def read_text(supplied: Supplied) -> Reading:
    """The first rule that matches the instruction, surest first; a mixed request reads as its question."""
    instruction = strip_greeting(supplied.instruction)
    reading = _explicit(supplied, instruction)
    if reading is None and supplied.texts:
        task = TEXT_VERB.search(instruction)
        return Reading("text_task", task.group(0)) if task else Reading("supplied_text", "")
    if reading is None and (not instruction or _is_chat(supplied.instruction)):
        return Reading("chit_chat", supplied.instruction.strip())
    match = _EXPOSITORY.search(instruction)
    if reading is None and match:
        return Reading("expository", match.group(0))  # before opinion and advice: when unsure, assess
    if reading is None:
        reading = next((Reading(rule, m) for rule, p in _SOFT if (m := _asked_for((p,), instruction))), None)
    if reading is not None:
        # A question beside pasted code or text is about that material ("why does this fail?"), not the world.
        about_material = supplied.code or supplied.texts or reading.rule == "rewrite_previous"
        question = None if about_material else _also_asks(instruction, reading.evidence)
        return Reading("mixed", question, f"{reading.rule} {reading.evidence!r}") if question else reading
    if any(_QUESTION_START.match(s) or s.endswith("?") for s in _sentences(instruction)):
        return Reading("question", instruction)
    return Reading("fallback", instruction)


_SOFT: tuple[tuple[Rule, re.Pattern[str]], ...] = (("opinion", _OPINION), ("advice", _ADVICE))
