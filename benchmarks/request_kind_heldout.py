"""The held-out (test) split of the request-kind evaluation: its own templates, tool schemas and sources.

Written and committed before any rule of ``gate/request_kind.py``; the rules were developed on the dev split
(:mod:`benchmarks.request_kind_dev`) only. Sources that the dev split also reads are split by row parity
(:func:`~benchmarks.request_kind_data.half`), and several sources appear only here (PopQA, SciQ and HotpotQA
questions, EfficientQA, HaluEval QA, FELM, XQuAD, HaluEval dialogue).
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
    user,
)

SPLIT = "test"

# ------------------------------------------------------------------------------------------- factual

SHORT_WRAPPERS = (
    "{q}",
    "{q}",
    "Quick one: {q}",
    "{q} Please answer briefly.",
    "Trivia time! {q}",
    "Settle a debate for us: {q}",
    "Answer in one word if you can: {q}",
    "My kid asked me this and I don't know: {q}",
    "hey, {ql}",
    "I was wondering, {ql}",
    "Can you tell me: {q}",
    "Serious question - {ql}",
)

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise assistant. Keep answers under 50 words.",
    "You are Aria, a friendly assistant for a public library. Be polite and accurate.",
    "Always answer in English. If you do not know, say so.",
    "You are an expert tutor. Explain things clearly to high-school students.",
)

EXPOSITORY = (
    "Give me a brief overview of {e}.",
    "I need a paragraph on {e} for my school report.",
    "Can you describe the main facts about {e}?",
    "Write a 200-word article on {e}.",
    "Summarize what is known about {e}.",
    "What can you tell me about {e}?",
    "Explain the significance of {e}.",
    "Draft an encyclopedia-style entry for {e}.",
    "Compose a factual description of {e}.",
    "Write an informative essay on {e}.",
    "Outline the key points someone should know about {e}.",
    "Please write a short report on {e}, with dates where possible.",
)

BIO = (
    "Write a short biography of {p}.",
    "Who was {p}? Give me a detailed answer.",
    "Give me the life story of {p}.",
    "Tell me everything you know about {p}.",
    "Provide a concise bio of {p}.",
    "I'd like a summary of {p}'s career.",
    "Describe the life and work of {p}.",
)

FOLLOW_UP_BY_PROP = {
    "director": "Who directed it?",
    "screenwriter": "Who wrote the screenplay for it?",
    "genre": "What genre would you say it belongs to?",
    "author": "Who is its author?",
    "producer": "And who produced it?",
    "composer": "Who composed it?",
    "capital": "What's its capital?",
    "country": "Which country is it in?",
    "sport": "Which sport are they known for?",
    "father": "Who was their father?",
    "place of birth": "Where were they born?",
    "capital of": "What is it the capital of?",
    "occupation": "What does that person do for a living?",
    "religion": "What religion is it associated with?",
    "mother": "Who was their mother?",
    "color": "And what colour is it?",
}

OPENERS = (
    "I keep hearing about {e}.",
    "Let's talk about {e}.",
    "I'm reading about {e} at the moment.",
    "Do you know {e}?",
)

ANSWER_FOLLOW_UPS = (
    "Can you tell me more about that?",
    "Are you sure? Why?",
    "And what else is it known for?",
    "When did that happen?",
    "How do you know that?",
    "Interesting - where does the name come from?",
)


def _short(src: Sources, rng: random.Random, i: int) -> Example:
    pool = (
        [q.question for q in half(src.popqa, SPLIT)[:300]]
        + [q.question for q in half(src.sciq, SPLIT)[:200]]
        + [q.question for q in src.hotpot]
        + [q.question for q in src.efficientqa[:300]]
        + [q.question for q in src.halueval_qa[:200]]
    )
    question = choose(rng, pool).strip()
    text = choose(rng, SHORT_WRAPPERS).format(q=question, ql=lower_first(question))
    messages = [system(choose(rng, SYSTEM_PROMPTS)), user(text)] if rng.random() < 0.3 else [user(text)]
    return Example(f"test-factual-short-{i}", "factual", "factual/short/qa-sets", messages)


def _felm(src: Sources, rng: random.Random, i: int) -> Example:
    prompts = [row["prompt"].strip() for row in src.felm if row["domain"] in ("wk", "science")]
    return Example(f"test-factual-felm-{i}", "factual", "factual/real-prompt/felm", [user(choose(rng, prompts))])


def _entities(src: Sources) -> list[str]:
    titles = [p.split(":", 1)[0] for q in src.hotpot for p in q.context]
    subjects = [q.metadata["subj"] for q in half(src.popqa, SPLIT)]
    return [e for e in dict.fromkeys(titles + subjects) if is_name_like(e)]


def _expository(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, EXPOSITORY).format(e=choose(rng, _entities(src)))
    return Example(f"test-factual-expository-{i}", "factual", "factual/long/expository", [user(text)])


def _bio(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, BIO).format(p=choose(rng, half(src.factscore_topics, SPLIT)))
    return Example(f"test-factual-bio-{i}", "factual", "factual/long/bio", [user(text)])


def _follow_up_entity(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, half(src.popqa, SPLIT))
    subject, prop = item.metadata["subj"], item.metadata["prop"]
    messages = [
        user(choose(rng, OPENERS).format(e=subject)),
        assistant(f"Yes, {subject}. What would you like to know about it?"),
        user(FOLLOW_UP_BY_PROP[prop]),
    ]
    return Example(f"test-factual-followup-{i}", "factual", "factual/two-turn/pronoun", messages)


def _follow_up_answer(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, src.efficientqa[300:])
    messages = [user(item.question), assistant(item.answers[0] + "."), user(choose(rng, ANSWER_FOLLOW_UPS))]
    return Example(f"test-factual-followup-answer-{i}", "factual", "factual/two-turn/after-answer", messages)


# ------------------------------------------------------------------------------------------ grounded

HOTPOT_TEMPLATES = (
    "Read the paragraphs below and answer the question.\n\n{passages}\n\nQuestion: {q}",
    "{passages}\n\nBased only on the text above, {ql}",
    "Here are some notes I took:\n{passages}\nUsing just these notes: {q}",
    "Answer from the documents provided, not from memory.\nDocuments:\n{passages}\nQ: {q}",
)

XQUAD_TEMPLATES = (
    "Context: {ctx}\nQ: {q}\nA:",
    "According to this passage, {ql}\n\n\"{ctx}\"",
    "{ctx}\n\n{q} Quote the sentence that supports your answer.",
    "I'm studying this text for an exam:\n\n{ctx}\n\nCan you help me answer: {q}",
)

EXTRACT_TEMPLATES = (
    "Extract all the dates mentioned in this text:\n\n{ctx}",
    "List every person named in the passage below.\n{ctx}",
    "Pull out the numbers from this paragraph and say what each refers to:\n{ctx}",
    "From the following text, make a table of the organisations it mentions and what it says about each.\n\n{ctx}",
    "{ctx}\n\nWhich places are mentioned above?",
)

SUMMARY_TEMPLATES = (
    "{doc}\n\nTL;DR",
    "Can you boil this article down to three bullet points?\n\n{doc}",
    "Give me the gist of the following news story: {doc}",
    "What are the key takeaways from this article?\n{doc}",
    "Condense this into one paragraph:\n{doc}",
    "Summarise for a busy executive:\n\n\"\"\"\n{doc}\n\"\"\"",
)

DOC_FOLLOW_UPS = (
    "Who is quoted in it?",
    "What's the main argument?",
    "Does it say when this happened?",
    "Summarise it in two sentences.",
    "What does the article say about the people involved?",
)


def _hotpot(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, src.hotpot)
    gold = {title for title, _ in item.metadata["supporting_facts"]}
    passages = "\n\n".join(p for p in item.context if p.split(":", 1)[0] in gold)
    text = choose(rng, HOTPOT_TEMPLATES).format(passages=passages, q=item.question, ql=lower_first(item.question))
    return Example(f"test-grounded-hotpot-{i}", "grounded", "grounded/answer-from-text/hotpot", [user(text)])


def _xquad(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, src.xquad)
    text = choose(rng, XQUAD_TEMPLATES).format(ctx=item.context[0], q=item.question, ql=lower_first(item.question))
    return Example(f"test-grounded-xquad-{i}", "grounded", "grounded/answer-from-text/xquad", [user(text)])


def _extract(src: Sources, rng: random.Random, i: int) -> Example:
    ctx = choose(rng, src.xquad).context[0]
    text = choose(rng, EXTRACT_TEMPLATES).format(ctx=ctx)
    return Example(f"test-grounded-extract-{i}", "grounded", "grounded/extract/xquad", [user(text)])


def _summary(src: Sources, rng: random.Random, i: int) -> Example:
    doc = first_words(choose(rng, half(src.summarization, SPLIT)), 450)
    text = choose(rng, SUMMARY_TEMPLATES).format(doc=doc)
    return Example(f"test-grounded-summary-{i}", "grounded", "grounded/summarise/halueval-news", [user(text)])


def _dialogue(src: Sources, rng: random.Random, i: int) -> Example:
    row = choose(rng, half(src.dialogue, SPLIT))
    messages = [system(f"You are a movie chat assistant. Ground your replies in these facts: {row['knowledge']}")]
    for turn in row["dialogue_history"].split("[")[1:]:
        role, _, content = turn.partition("]:")
        if content.strip():
            messages.append(user(content.strip()) if role == "Human" else assistant(content.strip()))
    if messages[-1]["role"] != "user":
        messages.append(user("What else can you tell me?"))
    return Example(f"test-grounded-dialogue-{i}", "grounded", "grounded/system-facts/halueval-dialogue", messages)


def _doc_follow_up(src: Sources, rng: random.Random, i: int) -> Example:
    doc = first_words(choose(rng, half(src.summarization, SPLIT)), 350)
    messages = [
        user(f"Here's an article I'm reading:\n\n{doc}"),
        assistant("Thanks for sharing it. What would you like to know about the article?"),
        user(choose(rng, DOC_FOLLOW_UPS)),
    ]
    return Example(f"test-grounded-followup-{i}", "grounded", "grounded/two-turn/pasted-earlier", messages)


# --------------------------------------------------------------------------------------- non-factual

CREATIVE = (
    "Compose a sonnet about {e}.",
    "Could you write me a funny limerick about {e}?",
    "I need a bedtime story featuring {e}.",
    "Write song lyrics inspired by {e}.",
    "Pretend you are a tour guide in the year 3000 and describe {e} to visitors from Mars.",
    "Write a haiku sequence about {e}.",
    "Write a rap verse about {e}.",
    "Tell me a knock-knock joke about {e}.",
    "Write a fictional dialogue between two cats arguing about {e}.",
    "Imagine {e} as a superhero. What is their origin story?",
    "Come up with a catchy slogan for a museum exhibition on {e}.",
    "Write a two-sentence horror story set in {e}.",
)

REWRITE = (
    "Translate this into Spanish: {s}",
    "Please fix any grammar mistakes in the following: {s}",
    "Can you make this sound more professional?\n\n{s}",
    "Rephrase in simpler words:\n{s}",
    "Convert the following passage into the passive voice: {s}",
    "{s}\n\nMake this shorter.",
    "Turn this into a tweet: {s}",
    "How would you say this in German? \"{s}\"",
    "Rewrite the paragraph below so a ten-year-old can follow it.\n\n{s}",
    "Proofread: {s}",
)

CODE_TASKS = (
    "Write a Python function that counts the vowels in the string '{e}'.",
    "Write a SQL query that selects every row of the films table whose director is '{e}'.",
    "Create a bash script that makes a directory called '{e}' and copies all .txt files into it.",
    "Implement binary search in Rust.",
    "How do I sort a dictionary by value in Python?",
    "Write a JavaScript snippet that shows an alert saying '{e}' when a button is clicked.",
    "Write unit tests with pytest for a function slugify(title) given the input '{e}'.",
    "What does this regex do: ^\\d{{3}}-\\d{{4}}$",
    "Give me a CSS rule that centres a div horizontally and vertically.",
    "Write a Java class called Book with fields title and author, and a toString method.",
)

PASTED_CODE = (
    "Fix the bug in this code:\n```python\ndef average(xs):\n    return sum(xs) / len(xs) + 1\n\nprint(average([]))"
    "\n```",
    "Why does this throw an error?\n\nconst name = '{e}';\nname = name.toUpperCase();\nconsole.log(name);",
    "Convert this JavaScript to TypeScript:\n```js\nfunction greet(person) {{\n  return 'Hello, ' + person;\n}}\n"
    "greet('{e}');\n```",
    "Refactor this function to be more readable:\n\ndef f(a):\n    r=[]\n    for x in a:\n"
    "        if x%2==0: r.append(x*x)\n    return r",
    "Add type hints to this:\n\ndef lookup(table, key, default=None):\n    return table.get(key, default)",
)

CHIT_CHAT = (
    "hey there!",
    "Good evening, how's your day going?",
    "thanks a lot, that helped",
    "lol that's hilarious",
    "You're awesome.",
    "What's your name?",
    "Can we just talk for a bit?",
    "I'm feeling bored.",
    "See you tomorrow!",
    "ok cool",
    "Are you a robot?",
    "Good morning!! ☀️",
    "hmm, never mind",
    "That's all for now, thank you.",
    "Nice to meet you!",
)

OPINION = (
    "What's your favourite thing about {e}?",
    "Do you think {e} is overrated?",
    "Which do you prefer, {e} or {f}?",
    "Give me some tips for staying motivated while studying.",
    "How can I be more confident at parties?",
    "Should I learn guitar or piano first?",
    "What would you name a pet turtle?",
    "Help me brainstorm ideas for a team-building event.",
    "I'm nervous about my exam tomorrow. Any advice?",
    "Would you rather visit {e} or {f}? Just for fun.",
    "How do I tell my roommate to clean up without starting a fight?",
    "I think {e} is boring. Change my mind!",
)

EDIT_FOLLOW_UPS = ("Make it rhyme better.", "Now make it funnier.", "Another one, please.", "Shorter, please!")


def _creative(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, CREATIVE).format(e=choose(rng, _entities(src)))
    return Example(f"test-nonfactual-creative-{i}", "non_factual", "non_factual/creative", [user(text)])


def _rewrite_source(src: Sources, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return pick_sentences(rng, choose(rng, src.xquad).context[0], 1, 3)
    return pick_sentences(rng, choose(rng, half(src.summarization, SPLIT)), 1, 3)


def _rewrite(src: Sources, rng: random.Random, i: int) -> Example:
    text = choose(rng, REWRITE).format(s=_rewrite_source(src, rng))
    return Example(f"test-nonfactual-rewrite-{i}", "non_factual", "non_factual/rewrite", [user(text)])


def _code(src: Sources, rng: random.Random, i: int) -> Example:
    template = choose(rng, CODE_TASKS + PASTED_CODE)
    text = template.format(e=choose(rng, _entities(src)))
    return Example(f"test-nonfactual-code-{i}", "non_factual", "non_factual/code", [user(text)])


def _chit_chat(src: Sources, rng: random.Random, i: int) -> Example:
    messages = [user(choose(rng, CHIT_CHAT))]
    if rng.random() < 0.3:
        item = choose(rng, src.efficientqa)
        messages = [user(item.question), assistant(item.answers[0] + "."), *messages]
    return Example(f"test-nonfactual-chat-{i}", "non_factual", "non_factual/chit-chat", messages)


def _opinion(src: Sources, rng: random.Random, i: int) -> Example:
    entities = _entities(src)
    text = choose(rng, OPINION).format(e=choose(rng, entities), f=choose(rng, entities))
    return Example(f"test-nonfactual-opinion-{i}", "non_factual", "non_factual/opinion-advice", [user(text)])


def _creative_follow_up(src: Sources, rng: random.Random, i: int) -> Example:
    entity = choose(rng, _entities(src))
    messages = [
        user(choose(rng, CREATIVE[:4]).format(e=entity)),
        assistant(f"Here it is:\n\nOh {entity}, so grand and bright,\nyou fill my days with pure delight."),
        user(choose(rng, EDIT_FOLLOW_UPS)),
    ]
    return Example(f"test-nonfactual-followup-{i}", "non_factual", "non_factual/two-turn/edit", messages)


# ----------------------------------------------------------------------------------------- tool calls

TOOLS = (
    function_tool("lookup_order", "Look up an order in the shop database.", {"order_id": "The order number."}),
    function_tool("get_stock_price", "Current price of a listed company.", {"ticker": "Stock ticker symbol."}),
    function_tool("create_event", "Add an event to the user's calendar.", {"title": "Title", "date": "ISO date"}),
    function_tool("wiki_lookup", "Fetch the lead section of a Wikipedia article.", {"title": "Article title."}),
    function_tool("send_email", "Send an email.", {"to": "Recipient address", "body": "Message text"}),
)

TOOL_CHOICES = (None, "auto", "required")


def _tools(rng: random.Random) -> list[dict]:
    return rng.sample(list(TOOLS), rng.randint(1, len(TOOLS)))


def _tools_offered(src: Sources, rng: random.Random, i: int) -> Example:
    orders = [f"Where is my order #{n}?" for n in range(100, 140)]
    question = choose(rng, [q.question for q in src.efficientqa] + orders)
    messages = [system("You are an agent. Use tools when they help."), user(question)]
    tools, tool_choice = _tools(rng), choose(rng, TOOL_CHOICES)
    return Example(f"test-tool-offered-{i}", "tool_call", "tool_call/tools-offered", messages, tools, tool_choice)


def _tool_result_last(src: Sources, rng: random.Random, i: int) -> Example:
    item = choose(rng, half(src.popqa, SPLIT))
    title = item.metadata["s_wiki_title"]
    calls = [(f"call_{i}", "wiki_lookup", {"title": title})]
    result = {"title": title, "extract": f"{item.metadata['subj']}: {item.metadata['prop']} {item.metadata['obj']}."}
    messages = [user(item.question), tool_call_message(calls), tool_result(calls[0][0], result)]
    tools = _tools(rng) if rng.random() < 0.7 else None  # some clients drop tools on the final call
    return Example(f"test-tool-result-{i}", "tool_call", "tool_call/tool-result-last", messages, tools)


def _parallel_results(src: Sources, rng: random.Random, i: int) -> Example:
    tickers = rng.sample(["AAPL", "MSFT", "NVDA", "SAP", "TSLA", "IBM"], 2)
    calls = [(f"call_p{i}_{k}", "get_stock_price", {"ticker": t}) for k, t in enumerate(tickers)]
    messages = [
        user(f"Which is worth more right now, {tickers[0]} or {tickers[1]}?"),
        tool_call_message(calls),
        *[tool_result(cid, {"price": round(rng.uniform(20, 900), 2)}) for cid, _, _ in calls],
    ]
    return Example(f"test-tool-parallel-{i}", "tool_call", "tool_call/parallel-results", messages, list(TOOLS))


def families(src: Sources) -> list[Family]:
    """The held-out families with their shares of each kind."""

    def fam(kind: str, name: str, weight: float, make) -> Family:
        return Family(kind, name, weight, partial(make, src))  # type: ignore[arg-type]

    return [
        fam("factual", "short", 0.40, _short),
        fam("factual", "felm", 0.15, _felm),
        fam("factual", "expository", 0.15, _expository),
        fam("factual", "bio", 0.10, _bio),
        fam("factual", "followup-entity", 0.12, _follow_up_entity),
        fam("factual", "followup-answer", 0.08, _follow_up_answer),
        fam("grounded", "hotpot", 0.20, _hotpot),
        fam("grounded", "xquad", 0.20, _xquad),
        fam("grounded", "extract", 0.15, _extract),
        fam("grounded", "summary", 0.20, _summary),
        fam("grounded", "dialogue", 0.15, _dialogue),
        fam("grounded", "followup", 0.10, _doc_follow_up),
        fam("non_factual", "creative", 0.25, _creative),
        fam("non_factual", "rewrite", 0.20, _rewrite),
        fam("non_factual", "code", 0.20, _code),
        fam("non_factual", "chit-chat", 0.12, _chit_chat),
        fam("non_factual", "opinion", 0.13, _opinion),
        fam("non_factual", "followup", 0.10, _creative_follow_up),
        fam("tool_call", "offered", 0.50, _tools_offered),
        fam("tool_call", "result-last", 0.35, _tool_result_last),
        fam("tool_call", "parallel", 0.15, _parallel_results),
    ]


__all__ = ["SPLIT", "families"]
