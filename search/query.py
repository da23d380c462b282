"""The query language, parsed into a plan that every backend evaluates the same way (pure, no I/O).

    plain words            free words: a document matches enough of them (minimum should match)
    "a phrase"             required, in that order
    field:value            required: title, excerpt (words or "phrases"), provider, topic, domain
    +word  -word  NOT x    required / excluded
    a AND b, a OR b, ( )   boolean groups, required as a whole

Free words decide the match together with semantic closeness; everything else constrains the
match set in every mode. Malformed syntax (an unclosed quote or bracket, a dangling operator)
falls back to plain words. Ranges and wildcards inside words cannot be bounded and are refused;
a trailing ``*`` is a prefix, expanded to at most a fixed number of indexed words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from search.errors import InvalidQuery

TEXT_FIELDS = ("title", "excerpt")
FIELD_NAMES = {
    "title": "title",
    "excerpt": "excerpt",
    "provider": "provider",
    "source": "provider",
    "topic": "topic",
    "topics": "topic",
    "domain": "domain",
    "site": "domain",
}
MAX_CLAUSES = 64  # more terms than any sentence: beyond it the query is read as plain words

_TOKEN = re.compile(
    r"""
    (?P<phrase>"[^"]*")
  | (?P<open>\()
  | (?P<close>\))
  | (?P<range>\w+:[\[{])
  | (?P<word>[^\s()"]+)
    """,
    re.VERBOSE,
)
_RANGE = re.compile(r"[\[{][^\]}\[{]*\bTO\b[^\]}\[{]*[\]}]")  # [a TO z], {2020 TO *}


# -- the plan -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Word:
    text: str
    field: str | None = None  # None: title or excerpt
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    text: str
    field: str | None = None


@dataclass(frozen=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Any:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = Word | Phrase | All | Any | Not


@dataclass(frozen=True)
class Plan:
    """What the user asked for.

    ``words`` are the free words; ``must`` and ``must_not`` the constraints; ``positive`` every
    word or phrase that describes what is wanted (scored by BM25); ``semantic_text`` what is embedded.
    """

    text: str
    words: tuple[str, ...] = ()
    must: tuple[Node, ...] = ()
    must_not: tuple[Node, ...] = ()
    positive: tuple[str, ...] = ()
    any_word: bool = False  # an explicit OR among the free words: one word is enough
    notes: tuple[str, ...] = field(default=())

    @property
    def semantic_text(self) -> str:
        return " ".join(self.positive)

    @property
    def constrained(self) -> bool:
        return bool(self.must or self.must_not)


# -- parsing ------------------------------------------------------------------------------------
def parse(text: str) -> Plan:
    """The plan of ``text``; malformed syntax is read as plain words."""
    if _RANGE.search(text):
        raise InvalidQuery("range queries such as title:[a TO z] are not supported - filter dates with since and until")
    try:
        tokens = _tokens(text)
        if len(tokens) > MAX_CLAUSES:
            raise _Malformed
        clauses = _Parser(tokens).clauses(top=True)
    except _Malformed:
        return _plain(text)
    return _plan(text, clauses)


class _Malformed(Exception):
    pass


@dataclass
class _Clause:
    node: Node
    sign: str = ""  # "+", "-" or ""
    joined: str = ""  # "AND" or "OR": how this clause is joined to the previous one


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if match.lastgroup == "range":
            raise _Malformed
        out.append(token)
    if text.count('"') % 2:
        raise _Malformed
    return out


class _Parser:
    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def clauses(self, top: bool = False) -> list[_Clause]:
        out: list[_Clause] = []
        joined = ""
        while (token := self.peek()) is not None:
            if token == ")":
                if top:
                    raise _Malformed
                break
            if token in ("AND", "&&", "OR", "||"):
                if not out or joined:
                    raise _Malformed
                joined = "AND" if token in ("AND", "&&") else "OR"
                self.take()
                continue
            clause = self.clause()
            clause.joined = joined
            out.append(clause)
            joined = ""
        if joined:
            raise _Malformed
        return out

    def clause(self) -> _Clause:
        token = self.take()
        if token == "NOT":
            if self.peek() in (None, ")", "AND", "OR", "NOT"):
                raise _Malformed
            return _Clause(self.clause().node, "-")
        sign = ""
        if token[0] in "+-" and len(token) > 1:
            sign, token = token[0], token[1:]
        elif token in ("+", "-"):
            sign = token
            if self.peek() is None:
                raise _Malformed
            token = self.take()
        return _Clause(self.atom(token), sign)

    def atom(self, token: str) -> Node:
        if token == "(":
            inner = self.clauses()
            if self.peek() != ")" or not inner:
                raise _Malformed
            self.take()
            return _group(inner)
        if token.startswith('"'):
            return Phrase(token.strip('"'))
        name, sep, value = token.partition(":")
        if sep and name.lower() in FIELD_NAMES:
            fname = FIELD_NAMES[name.lower()]
            if not value:  # title:"a phrase" or title:(a b)
                nxt = self.peek()
                if nxt is None:
                    raise _Malformed
                inner = self.atom(self.take())
                return _with_field(inner, fname)
            return _with_field(_word(value), fname)
        return _word(token)


def _word(token: str) -> Node:
    prefix = token.endswith("*") and len(token.rstrip("*")) >= 2
    core = token.rstrip("*").strip("*?")
    if "*" in core or "?" in core:  # wildcards inside a word cannot be bounded
        core = re.sub(r"[*?]", " ", core)
        return Phrase(core) if len(core.split()) > 1 else Word(core.strip())
    return Word(core, prefix=prefix)


def _with_field(node: Node, name: str) -> Node:
    if isinstance(node, Word):
        return Word(node.text, name, node.prefix)
    if isinstance(node, Phrase):
        return Phrase(node.text, name)
    if isinstance(node, All):
        return All(tuple(_with_field(c, name) for c in node.children))
    if isinstance(node, Any):
        return Any(tuple(_with_field(c, name) for c in node.children))
    return Not(_with_field(node.child, name))


def _group(clauses: list[_Clause]) -> Node:
    """A parenthesised group: its clauses joined by their operators, juxtaposition meaning OR."""
    required = [c.node for c in clauses if c.sign == "+"]
    excluded = [c.node for c in clauses if c.sign == "-"]
    chains = _chains([c for c in clauses if c.sign == ""])
    node: Node | None = None
    if chains:
        node = chains[0] if len(chains) == 1 else Any(tuple(chains))
    parts = [*required, *([node] if node is not None else []), *(Not(n) for n in excluded)]
    if not parts or all(isinstance(p, Not) for p in parts):
        raise _Malformed
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _chains(clauses: list[_Clause]) -> list[Node]:
    """Clauses joined by AND/OR into nodes (AND binds tighter); juxtaposed ones stay separate."""
    out: list[list[list[Node]]] = []  # each chain: OR of AND-groups
    for c in clauses:
        if c.joined == "AND" and out:
            out[-1][-1].append(c.node)
        elif c.joined == "OR" and out:
            out[-1].append([c.node])
        else:
            out.append([[c.node]])
    nodes = []
    for chain in out:
        ands = [group[0] if len(group) == 1 else All(tuple(group)) for group in chain]
        nodes.append(ands[0] if len(ands) == 1 else Any(tuple(ands)))
    return nodes


def _plan(text: str, clauses: list[_Clause]) -> Plan:
    words: list[str] = []
    must: list[Node] = []
    must_not: list[Node] = []
    any_word = False
    plain = [c for c in clauses if c.sign == ""]
    joined_ids = {id(c) for i, c in enumerate(plain) if c.joined or (i + 1 < len(plain) and plain[i + 1].joined)}
    only_or = all(c.joined in ("", "OR") for c in plain) and any(c.joined == "OR" for c in plain)
    for c in clauses:
        if c.sign == "-":
            must_not.append(c.node)
        elif c.sign == "+":
            must.append(c.node)
    if only_or and all(_is_free_word(c.node) for c in plain):
        words = [c.node.text for c in plain]  # a OR b OR c: any one of the words
        any_word = True
    else:
        for c in plain:
            if id(c) not in joined_ids and _is_free_word(c.node):
                words.append(c.node.text)
        must.extend(_chains([c for c in plain if id(c) in joined_ids or not _is_free_word(c.node)]))
    positive = [*words, *(t for n in must for t in _positive_text(n))]
    return Plan(
        text=text,
        words=tuple(words),
        must=tuple(must),
        must_not=tuple(must_not),
        positive=tuple(dict.fromkeys(p for p in positive if p)),
        any_word=any_word,
    )


def _is_free_word(node: Node) -> bool:
    return isinstance(node, Word) and node.field is None and not node.prefix


def _positive_text(node: Node) -> list[str]:
    """The words of ``node`` that describe what is wanted (not provider or topic names, not negations)."""
    if isinstance(node, Word | Phrase):
        return [node.text] if node.field in (None, *TEXT_FIELDS) else []
    if isinstance(node, All | Any):
        return [t for child in node.children for t in _positive_text(child)]
    return []


_SYNTAX = re.compile(r"[\"()\[\]{}*?^~\\]|(?<!\w)[+\-]|\b(AND|OR|NOT)\b|&&|\|\|")


def _plain(text: str) -> Plan:
    """Plain words of ``text``, every operator and quote dropped."""
    words = [w for w in _SYNTAX.sub(" ", text).split() if w.strip(":")]
    words = [w.replace(":", " ").strip() for w in words]
    return Plan(text=text, words=tuple(words), positive=tuple(dict.fromkeys(words)), notes=("syntax",))
