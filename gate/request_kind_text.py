"""Text a user supplies inside a message (a pasted passage, a quoted sentence, code), told apart from the ask.

Part of :mod:`gate.request_kind`. :func:`split_supplied` returns the instruction and the supplied texts;
a text is recognised by its markup (code fences, triple quotes, ``<context>`` tags), a label ("Passage:"),
an instruction that points at it ("the article below", "summarise this", "Translate into French:"), or its
length (a line of 40+ words among several lines). Words alone never make a text: "what is this?" points at
nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "REWRITE_RULES",
    "TEXT_VERB",
    "WEAK_POINTER",
    "Supplied",
    "alternatives",
    "compile_rule",
    "first_match",
    "points_at_text",
    "split_supplied",
    "words",
]

LONG_LINE_WORDS = 40  # in a message of several lines, a line this long is pasted text, not an instruction
INSTRUCTION_WORDS = 30  # a line or sentence that points at text ("Summarise the article below:") is this short
QUOTED_WORDS = 6  # a quoted span this long, that the instruction points at, is supplied text
LONG_QUOTE_WORDS = 20  # a quoted span this long is supplied text even when nothing points at it
COLON_TAIL_WORDS = 4  # "Translate this: <tail>" takes the tail as supplied text from this many words


def words(text: str) -> int:
    return len(text.split())


def alternatives(items: str) -> str:
    """A regex alternation of the ``|``-separated phrases, longest first so the longest phrase wins."""
    return "|".join(sorted((p.strip() for p in items.split("|")), key=len, reverse=True))


def compile_rule(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def first_match(patterns: tuple[re.Pattern[str], ...], text: str) -> str | None:
    """The text matched by the first pattern that matches, or None."""
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match.group(0)
    return None


# Labels that introduce supplied text ("Passage: ...", "### Document") and the task ("Question: ...").
_LABELS = (
    "passage|context|text|article|document|documents|notes|input|paragraph|sentence|email|excerpt|transcript|"
    "source|sources|content|knowledge|information|facts|story|review|data|reference|references"
)
_TEXT_LABEL = compile_rule(rf"^\s*(?:#+\s*({_LABELS})\s*:?|({_LABELS})\s*:)\s*(.*)$")
_TASK_LABEL = compile_rule(r"^\s*(?:question|q|task|instruction|query)\s*:\s*(.*)$")
_ANSWER_LABEL = compile_rule(r"^\s*(?:answer|a)\s*:\s*$")
_FENCE = re.compile(r"```[^\n]*\n?(.*?)(?:```|$)", re.DOTALL)
_TRIPLE_QUOTE = re.compile(r'"""(.*?)"""', re.DOTALL)
_XML_BLOCK = re.compile(r"<(context|document|text|passage|article|source|knowledge)>(.*?)</\1>", re.I | re.DOTALL)
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”')
# How an instruction points at text it was given: "the passage below" on its own, "this" only with a verb
# that works on text ("summarise this"), since "what is this?" points at nothing.
WEAK_POINTER = compile_rule(r"\b(this|these|that|it|above|below|following)\b")
_STRONG_POINTER = compile_rule(
    r"\b(above|below|following|(?:the|this|that|these|my|your)\s+(?:\w+\s+)?(?:text|texts|passage|passages|"
    r"article|paragraph|paragraphs|sentence|sentences|document|documents|notes|story|email|essay|letter|excerpt|"
    r"transcript|information|context|facts|knowledge|data|code|snippet))\b"
)
# Verbs of a task done to a given text; "Translate into French: <text>" needs no pointer word.
_TEXT_TASK = compile_rule(
    r"\b(summari[sz]e|summary|tl;?dr|gist|condense|extract|translate|rewrite|rephrase|paraphrase|proofread|"
    r"correct|edit|shorten|simplify|reword|polish|key points|takeaways|main point|pull out|grammar|spelling|"
    r"punctuation|typos|proof-?read)\b"
)
# Words that work on a text only when something points at it ("read this", "according to it").
TEXT_VERB = compile_rule(rf"{_TEXT_TASK.pattern}|\b(read|analy[sz]e|according to|based on)\b")
_INTRO = compile_rule(
    r"\b(?:paste|pasted|pasting)\b|\bhere(?:'s| is| are)\s+(?:a|an|my|some|the)\s+(?:\w+\s+)?"
    r"(?:text|passage|article|paragraph|document|notes|story|email|essay|letter|excerpt|transcript)\b"
)
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |return\b|function\b|const |let |var |#include|public |private |"
    r"print\(|console\.\w+|for\s*\(|for \w+ in .*:|while .*:|if .*:\s*$|elif |else:|SELECT\b|\}|\{\s*$|.*;\s*$|"
    r"[\w.\[\]]+\s*[+\-*/]?=\s*\S)"
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?:])\s+")


@dataclass(frozen=True)
class Supplied:
    """One message split into what it asks and the text it supplies; ``code`` when that text is code."""

    instruction: str
    texts: tuple[str, ...]
    code: bool


def points_at_text(instruction: str) -> bool:
    """Whether an instruction refers to a text ("the passage below", "summarise this")."""
    if _STRONG_POINTER.search(instruction) or _INTRO.search(instruction):
        return True
    if not WEAK_POINTER.search(instruction):
        return False
    return bool(TEXT_VERB.search(instruction) or first_match(REWRITE_RULES, instruction))  # "make this shorter"


def _introduces_text(line: str) -> bool:
    """A line that points at text, or names a text task and ends with a colon ("Translate into French:")."""
    return points_at_text(line) or (line.rstrip().endswith(":") and bool(_TEXT_TASK.search(line)))


def split_supplied(text: str, *, marked_only: bool = False) -> Supplied:
    """Separate supplied text from the instruction; ``marked_only`` takes only labelled or fenced text.

    System prompts use ``marked_only``: a long persona prompt is instructions, not a reference, unless it
    marks a block as context ("Context:", "<document>", "### Document", "use these facts: ...").
    """
    texts: list[str] = []
    code = False
    for pattern, is_code in ((_FENCE, True), (_TRIPLE_QUOTE, False), (_XML_BLOCK, False)):
        for match in pattern.finditer(text):
            texts.append(match.group(match.lastindex or 1).strip())
            code = code or is_code
        text = pattern.sub("\n", text)
    lines, labelled, code_lines = _labelled(text, marked_only=marked_only)
    texts += labelled
    code = code or code_lines >= 2
    if marked_only:
        instruction, tail = _split_colon("\n".join(lines), strong=True)
        return Supplied(instruction.strip(), tuple(t for t in [*texts, *tail] if t), code)
    if not texts:
        lines, unmarked = _unmarked(lines)
        texts += unmarked
    instruction = "\n".join(lines)
    instruction, quoted = _split_quoted(instruction)
    texts += quoted
    if not texts:
        instruction, tail = _split_colon(instruction, strong=False)
        texts += tail
    return Supplied(instruction.strip(), tuple(t for t in texts if t), code)


def _labelled(text: str, *, marked_only: bool) -> tuple[list[str], list[str], int]:
    """Lines under a text label ("Passage:") and, unless ``marked_only``, lines of code; the rest is asked."""
    instruction: list[str] = []
    texts: list[str] = []
    code_lines = 0
    in_text = False  # after a bare "Passage:" label, the lines up to the next label are the text
    for line in (line.strip() for line in text.splitlines()):
        label, task = _TEXT_LABEL.match(line), _TASK_LABEL.match(line)
        if not line:
            continue
        if task:
            instruction.append(task.group(1))
            in_text = False
        elif _ANSWER_LABEL.match(line):
            in_text = False
        elif label:
            texts.append(label.group(3))
            in_text = not label.group(3)
        elif in_text:
            texts.append(line)
        elif not marked_only and _CODE_LINE.match(line) and not line.endswith("?"):
            texts.append(line)
            code_lines += 1
        else:
            instruction.append(line)
    return instruction, texts, code_lines


def _unmarked(lines: list[str]) -> tuple[list[str], list[str]]:
    """Pasted text with no label: the other lines when the first or last points at text, else long lines."""
    if not lines:  # everything was a label ("Text:" with nothing after it): nothing is asked, nothing pasted
        return [], []
    if len(lines) == 1:
        return _peel(lines[0])
    for index in (0, len(lines) - 1):
        if words(lines[index]) <= INSTRUCTION_WORDS and _introduces_text(lines[index]):
            return [lines[index]], [line for i, line in enumerate(lines) if i != index]
    long = [line for line in lines if words(line) >= LONG_LINE_WORDS]
    return [line for line in lines if line not in long], long


def _peel(line: str) -> tuple[list[str], list[str]]:
    """One line that starts or ends with a sentence pointing at the rest ("Can you rephrase this? <text>")."""
    parts = _SENTENCE_SPLIT.split(line)
    if len(parts) >= 2:
        for head, rest in ((parts[0], " ".join(parts[1:])), (parts[-1], " ".join(parts[:-1]))):
            if words(head) <= INSTRUCTION_WORDS and words(rest) >= COLON_TAIL_WORDS and _introduces_text(head):
                return [head], [rest]
    return [line], []


def _split_quoted(instruction: str) -> tuple[str, list[str]]:
    """Quoted text is supplied when the instruction points at it or it is long; short quotes are titles."""
    spans = [a or b for a, b in _QUOTED.findall(instruction) if words(a or b) >= QUOTED_WORDS]
    rest = instruction
    for span in spans:
        rest = rest.replace(span, "")
    kept = [span for span in spans if points_at_text(rest) or words(span) >= LONG_QUOTE_WORDS]
    for span in kept:
        instruction = instruction.replace(f'"{span}"', "").replace(f"“{span}”", "")
    return instruction, kept


def _split_colon(instruction: str, *, strong: bool) -> tuple[str, list[str]]:
    """ "Translate this into Spanish: <text>": a head that points at text, then the text itself."""
    head, colon, tail = instruction.partition(":")
    if not colon or words(tail) < COLON_TAIL_WORDS or words(head) > INSTRUCTION_WORDS:
        return instruction, []
    points = _STRONG_POINTER.search(head) or _FACTS_HEAD.search(head) if strong else _introduces_text(head + ":")
    return (head, [tail.strip()]) if points else (instruction, [])


_FACTS_HEAD = compile_rule(r"\b(these|the following|this) (facts|information|knowledge|context|documents?)\b")

# Rewriting a text the user gives keeps it (an edit, a translation): no new claim to check.
REWRITE_RULES = (
    compile_rule(
        r"\b(rewrite|re-write|rephrase|paraphrase|reword|proofread|proof-read|edit|polish|translate|shorten|"
        r"simplify|restructure|reformat|tidy up|clean up)\b"
    ),
    compile_rule(
        r"\b(correct|fix|check)\b(?:\W+\w+){0,3}?\W+(grammar|spelling|punctuation|typos|mistakes|errors|"
        r"wording)\b"
    ),
    compile_rule(
        r"\bmake (?:this|it|that|the \w+)(?: sound)? (?:more |less |a bit |much )?(formal|professional|polite|"
        r"friendly|friendlier|casual|concise|shorter|longer|clearer|simpler|better|funnier|rhyme)\b"
    ),
    compile_rule(
        r"\b(convert|turn|change|put)\b.*\b(into|to|in) (?:the )?(passive|active|past|present|future|"
        r"bullet points|a tweet|plain english|simple english|first person|third person)\b"
    ),
    compile_rule(r"\bhow (?:would|do) (?:you|i) say (?:this|that|it)\b"),
)
