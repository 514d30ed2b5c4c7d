"""The development split of the request-kind evaluation: the templates and sources the rules were tuned on.

Its templates, tool schemas and most sources differ from the held-out split's
(:mod:`benchmarks.request_kind_heldout`); files both read are split by row parity.
"""

from __future__ import annotations

import random
from functools import partial

from benchmarks.request_kind_data import (
    Example,
    Family,
    Sources,
    assistant,
    choose,
    first_words,
    function_tool,
    half,
    is_name_like,
    lower_first,
    pick_sentences,
    system,
    tool_call_message,
    tool_result,
    unquote,
    user,
)

SPLIT = "dev"

# ------------------------------------------------------------------------------------------- factual

SHORT_WRAPPERS = (
    "{q}",
    "{q}?",
    "{q}",
    "Question: {q}",
    "Hi! {q}",
    "Do you happen to know {ql}?",
    "I need to know {ql} - can you help?",
    "{q} Thanks in advance.",
    "Pub quiz question: {q}",
    "Please tell me {ql}.",
    "Hello there. {q}",
)

SYSTEM_PROMPTS = (
    "You are a helpful, honest assistant.",
    "You are ChatBot, a large language model. Answer as concisely as possible.",
    "Respond in a friendly tone. Use markdown when helpful.",
    "You are a trivia expert.",
)

EXPOSITORY = (
    "Write a short paragraph about the history of {e}.",
    "Tell me about {e}.",
    "Explain what {e} is.",
    "Describe {e} in a few sentences.",
    "Write an overview of {e}.",
    "Give me some background on {e}.",
    "Write a detailed explanation of {e} for a general audience.",
    "Can you write a few paragraphs about {e}?",
    "Explain how {e} came to be well known.",
    "I'd like to learn about {e}. Where should I start, and what are the basics?",
)

BIO = (
    "Question: Tell me a bio of {p}.",
    "Tell me a bio of {p}.",
    "Write a biography of {p}.",
    "Who is {p}?",
    "Give me a short profile of {p}, including their main achievements.",
)

PRONOUN_FOLLOW_UPS = (
    "And when was he born?",
    "Where was she from?",
    "What else did they do?",
    "Why is that?",
    "How old was he at the time?",
    "Is it still true today?",
    "and where is that?",
    "What about its history?",
    "Who else was involved?",
)

FOLLOW_UP_BY_PROP = {
    "director": "who was the director?",
    "screenwriter": "Who wrote its script?",
    "genre": "What kind of music or film is it?",
    "author": "Who wrote it?",
    "producer": "Who was the producer?",
    "composer": "who wrote the music for it?",
    "capital": "What city is its capital?",
    "country": "In what country is it?",
    "sport": "What sport did he play?",
    "father": "Who is his father?",
    "place of birth": "Where was he born?",
    "capital of": "Which country or region is it the capital of?",
    "occupation": "What is his job?",
    "religion": "What is its religion?",
    "mother": "Who is her mother?",
    "color": "What color is it?",
}


def _entities(src: Sources) -> list[str]:
    answers = [q.answers[0] for q in src.trivia[:3000]]
    subjects = [q.metadata["subj"] for q in half(src.popqa, SPLIT)]
    return [e for e in dict.fromkeys(answers + subjects) if is_name_like(e)]


def _short(src: Sources, rng: random.Random, i: int) -> Example:
    pool = [unquote(q.question) for q in src.trivia[:3000]] + [q.question for q in src.nq[:2000]]
    question = choose(rng, pool).strip()
    text = choose(rng, SHORT_WRAPPERS).format(q=question, ql=lower_first(question.rstrip("?")))
    messages = [system(choose(rng, SYSTEM_PROMPTS)), user(text)] if rng.random() < 0.3 else [user(text)]
    return Example(f"dev-factual-short-{i}", "factual", "factual/short/trivia-nq", messages)


def _expository(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, EXPOSITORY).format(e=choose(rng, _entities(src)))
    return Example(f"dev-factual-expository-{i}", "factual", "factual/long/expository", [user(text)])


def _bio(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, BIO).format(p=choose(rng, half(src.factscore_topics, SPLIT)))
    return Example(f"dev-factual-bio-{i}", "factual", "factual/long/bio", [user(text)])


def _follow_up_answer(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, src.trivia[3000:5000])
    messages = [user(unquote(item.question)), assistant(item.answers[0] + "."), user(choose(rng, PRONOUN_FOLLOW_UPS))]
    return Example(f"dev-factual-followup-{i}", "factual", "factual/two-turn/after-answer", messages)


def _follow_up_entity(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, half(src.popqa, SPLIT))
    subject = item.metadata["subj"]
    messages = [
        user(f"What do you know about {subject}?"),
        assistant(f"{subject} is the subject of a Wikipedia article. Ask me anything about it."),
        user(FOLLOW_UP_BY_PROP[item.metadata["prop"]]),
    ]
    return Example(f"dev-factual-followup-entity-{i}", "factual", "factual/two-turn/pronoun", messages)


def _tools_none(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, src.nq[2000:])
    tools = [TOOLS[0], TOOLS[1]]
    messages = [user(item.question)]
    return Example(f"dev-factual-toolsnone-{i}", "factual", "factual/tool-choice-none", messages, tools, "none")


# ------------------------------------------------------------------------------------------ grounded

SCIQ_TEMPLATES = (
    "Passage: {ctx}\n\nQuestion: {q}",
    "Use the passage below to answer the question.\n\n{ctx}\n\n{q}",
    "Based on the following text, {ql}?\n\n{ctx}",
    "{ctx}\n\nAccording to the text, {ql}?",
    "Read this and answer: {q}\n\n{ctx}",
)

SUMMARY_TEMPLATES = (
    "Summarize the following article:\n\n{doc}",
    "{doc}\n\nSummarize this in two sentences.",
    "Please write a short summary of this news story.\n\n{doc}",
    "Summary of the text below, please:\n{doc}",
    "Give me a one-line summary:\n\n{doc}",
    "What is this article about?\n\n{doc}",
)

EXTRACT_TEMPLATES = (
    "Extract the names of all people mentioned in this article:\n\n{doc}",
    "List the key facts from the text below.\n\n{doc}",
    "{doc}\n\nWhat numbers are mentioned in the article, and what do they refer to?",
    "Find every location mentioned in the following text: {doc}",
)

RAG_SYSTEMS = (
    "Answer the user's question using only the context below.\n\nContext:\n{ctx}",
    "You are a support bot. Use the following document to answer.\n\n### Document\n{ctx}",
    "<context>\n{ctx}\n</context>\nAnswer from the context; say 'I don't know' if it is not there.",
)

PASTE_OPENERS = ("I'll paste a passage first.\n\n{ctx}", "Here is my text:\n{ctx}", "Read this:\n\n{ctx}")
PASTE_FOLLOW_UPS = (
    "Now summarise it.",
    "What is the main point of the passage?",
    "According to it, {ql}?",
    "Pick out the key terms from it.",
)


def _sciq_rows(src: Sources) -> list:
    return [q for q in half(src.sciq, SPLIT) if q.context]


def _sciq(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, _sciq_rows(src))
    q = item.question
    text = choose(rng, SCIQ_TEMPLATES).format(ctx=item.context[0], q=q, ql=lower_first(q.rstrip("?")))
    return Example(f"dev-grounded-sciq-{i}", "grounded", "grounded/answer-from-text/sciq", [user(text)])


def _summary(src: Sources, rng: random.Random, i: int) -> Example:
    doc = first_words(choose(rng, half(src.summarization, SPLIT)), 400)
    text = choose(rng, SUMMARY_TEMPLATES).format(doc=doc)
    return Example(f"dev-grounded-summary-{i}", "grounded", "grounded/summarise/halueval-news", [user(text)])


def _extract(src: Sources, rng: random.Random, i: int) -> Example:
    doc = first_words(choose(rng, half(src.summarization, SPLIT)), 300)
    text = choose(rng, EXTRACT_TEMPLATES).format(doc=doc)
    return Example(f"dev-grounded-extract-{i}", "grounded", "grounded/extract/halueval-news", [user(text)])


def _halueval_knowledge(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, src.halueval_qa[5000:7000])
    text = f"Given this information: {item.context[0]}\n\n{item.question}"
    return Example(f"dev-grounded-knowledge-{i}", "grounded", "grounded/answer-from-text/halueval-qa", [user(text)])


def _rag_system(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, _sciq_rows(src))
    messages = [system(choose(rng, RAG_SYSTEMS).format(ctx=item.context[0])), user(item.question)]
    return Example(f"dev-grounded-rag-{i}", "grounded", "grounded/system-context/sciq", messages)


def _paste_follow_up(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, _sciq_rows(src))
    messages = [
        user(choose(rng, PASTE_OPENERS).format(ctx=item.context[0])),
        assistant("Got it. What would you like me to do with it?"),
        user(choose(rng, PASTE_FOLLOW_UPS).format(ql=lower_first(item.question.rstrip("?")))),
    ]
    return Example(f"dev-grounded-followup-{i}", "grounded", "grounded/two-turn/pasted-earlier", messages)


# --------------------------------------------------------------------------------------- non-factual

CREATIVE = (
    "Write a poem about {e}.",
    "Write a short story about {e}.",
    "Tell me a joke about {e}.",
    "Write a limerick about {e}.",
    "Write a haiku about {e}.",
    "Compose a song about {e}.",
    "Write a funny tweet about {e}.",
    "Create a riddle about {e}.",
    "Write a scene for a play in which {e} comes to life.",
    "Invent a fairy tale about {e}.",
    "Write an ode to {e}.",
    "Make up a story for kids about {e}.",
)

REWRITE = (
    "Paraphrase this: {s}",
    "Rewrite the following sentence in a more formal tone:\n{s}",
    "Translate into French:\n\n{s}",
    "Correct the spelling and grammar: {s}",
    "Please rewrite this text so it is easier to read.\n\n{s}",
    "Make this more concise: {s}",
    "Reword the paragraph below without changing its meaning.\n{s}",
    'Translate the following to Italian: "{s}"',
    "Edit this for clarity:\n\n{s}",
    "Can you rephrase this in a friendlier way? {s}",
)

CODE_TASKS = (
    "Write a Python function to reverse a string.",
    "Write a function in JavaScript that checks whether '{e}' is a palindrome.",
    "Write a SQL query that counts the number of employees in each department.",
    "Implement quicksort in C++.",
    "How do I read a CSV file with pandas?",
    "Write a regular expression that matches email addresses.",
    "Write a Python script that prints '{e}' ten times.",
    "Generate a Dockerfile for a Flask app.",
    "How can I merge two lists in Python without duplicates?",
    "Write a Go program that serves 'Hello, {e}' over HTTP.",
)

PASTED_CODE = (
    "What's wrong with this code?\n```python\nfor i in range(10)\n    print(i)\n```",
    "Debug this:\n\nfunction add(a, b) {{\n  return a - b;\n}}\nconsole.log(add(2, '{e}'));",
    "Explain what this code does:\n```\nSELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 3;\n```",
    "Optimize this Python:\n\nresult = []\nfor x in data:\n    if x not in result:\n        result.append(x)",
)

CHIT_CHAT = (
    "Hi!",
    "Hello, how are you?",
    "Thanks!",
    "thank you so much",
    "good night",
    "Bye!",
    "What's up?",
    "I'm so happy today :)",
    "Who are you?",
    "haha",
    "Can you be my friend?",
    "great, thanks",
    "You're funny.",
    "How's it going?",
)

OPINION = (
    "What do you think about {e}?",
    "Do you like {e}?",
    "What's your favorite movie?",
    "Give me some advice on how to sleep better.",
    "Any tips for a first date?",
    "Should I quit my job to travel the world?",
    "Suggest some names for my new puppy.",
    "Give me ideas for a birthday party for a 7-year-old.",
    "Is {e} better than {f}? What's your opinion?",
    "How do I stop procrastinating?",
    "What should I cook for dinner tonight?",
    "In your opinion, which is more fun: {e} or {f}?",
)

EDIT_FOLLOW_UPS = ("Make it shorter.", "Can you make it funnier?", "Another one!", "Now in the style of Shakespeare.")


def _creative(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, CREATIVE).format(e=choose(rng, _entities(src)))
    return Example(f"dev-nonfactual-creative-{i}", "non_factual", "non_factual/creative", [user(text)])


def _rewrite(src: Sources, rng: random.Random, i: int) -> Example:
    if rng.random() < 0.5:
        source = pick_sentences(rng, choose(rng, _sciq_rows(src)).context[0], 1, 3)
    else:
        source = pick_sentences(rng, choose(rng, src.halueval_qa[5000:7000]).context[0], 1, 2)
    text = choose(rng, REWRITE).format(s=source)
    return Example(f"dev-nonfactual-rewrite-{i}", "non_factual", "non_factual/rewrite", [user(text)])


def _code(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, CODE_TASKS + PASTED_CODE).format(e=choose(rng, _entities(src)))
    return Example(f"dev-nonfactual-code-{i}", "non_factual", "non_factual/code", [user(text)])


def _chit_chat(src: Sources, rng: random.Random, i: int) -> Example:
    messages = [user(choose(rng, CHIT_CHAT))]
    if rng.random() < 0.3:
        item = choose(rng, src.trivia[5000:])
        messages = [user(item.question), assistant(item.answers[0] + "."), *messages]
    return Example(f"dev-nonfactual-chat-{i}", "non_factual", "non_factual/chit-chat", messages)


def _opinion(src: Sources, rng: random.Random, i: int) -> Example:
    entities = _entities(src)
    text = choose(rng, OPINION).format(e=choose(rng, entities), f=choose(rng, entities))
    return Example(f"dev-nonfactual-opinion-{i}", "non_factual", "non_factual/opinion-advice", [user(text)])


def _creative_follow_up(src: Sources, rng: random.Random, i: int) -> Example:
    entity = choose(rng, _entities(src))
    messages = [
        user(choose(rng, CREATIVE[:6]).format(e=entity)),
        assistant(f"Once upon a time, {entity} was the talk of the town..."),
        user(choose(rng, EDIT_FOLLOW_UPS)),
    ]
    return Example(f"dev-nonfactual-followup-{i}", "non_factual", "non_factual/two-turn/edit", messages)


# ----------------------------------------------------------------------------------------- tool calls

TOOLS = (
    function_tool("get_weather", "Current weather for a city.", {"city": "City name."}),
    function_tool("web_search", "Search the web.", {"query": "Search terms."}),
    function_tool("calculator", "Evaluate an arithmetic expression.", {"expression": "e.g. 2*(3+4)"}),
    function_tool("get_time", "Current time in a time zone.", {"timezone": "IANA zone name."}),
    function_tool("search_flights", "Find flights.", {"origin": "IATA code", "destination": "IATA code"}),
)


def _tools_offered(src: Sources, rng: random.Random, i: int) -> Example:
    question = choose(rng, [q.question for q in src.nq[:2000]] + ["What's the weather in Paris?", "What is 17*23?"])
    tools = rng.sample(list(TOOLS), rng.randint(1, 3))
    tool_choice = choose(rng, (None, "auto", {"type": "function", "function": {"name": tools[0]["function"]["name"]}}))
    messages = [user(question)]
    return Example(f"dev-tool-offered-{i}", "tool_call", "tool_call/tools-offered", messages, tools, tool_choice)


def _tool_result_last(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, src.nq[:2000])
    call_id = f"call_{i}"
    messages = [
        user(item.question),
        tool_call_message([(call_id, "web_search", {"query": item.question})]),
        tool_result(call_id, f"Top result: ... {item.answers[0]} ..."),
    ]
    return Example(f"dev-tool-result-{i}", "tool_call", "tool_call/tool-result-last", messages, list(TOOLS))


def families(src: Sources) -> list[Family]:
    """The dev families with their shares of each kind."""

    def fam(kind: str, name: str, weight: float, make) -> Family:
        return Family(kind, name, weight, partial(make, src))  # type: ignore[arg-type]

    return [
        fam("factual", "short", 0.45, _short),
        fam("factual", "expository", 0.20, _expository),
        fam("factual", "bio", 0.12, _bio),
        fam("factual", "followup-answer", 0.10, _follow_up_answer),
        fam("factual", "followup-entity", 0.08, _follow_up_entity),
        fam("factual", "tools-none", 0.05, _tools_none),
        fam("grounded", "sciq", 0.25, _sciq),
        fam("grounded", "summary", 0.20, _summary),
        fam("grounded", "extract", 0.15, _extract),
        fam("grounded", "knowledge", 0.15, _halueval_knowledge),
        fam("grounded", "rag-system", 0.15, _rag_system),
        fam("grounded", "followup", 0.10, _paste_follow_up),
        fam("non_factual", "creative", 0.25, _creative),
        fam("non_factual", "rewrite", 0.20, _rewrite),
        fam("non_factual", "code", 0.20, _code),
        fam("non_factual", "chit-chat", 0.12, _chit_chat),
        fam("non_factual", "opinion", 0.13, _opinion),
        fam("non_factual", "followup", 0.10, _creative_follow_up),
        fam("tool_call", "offered", 0.60, _tools_offered),
        fam("tool_call", "result-last", 0.40, _tool_result_last),
    ]


__all__ = ["SPLIT", "families"]
