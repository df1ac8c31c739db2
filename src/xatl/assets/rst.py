"""reStructuredText (Sphinx) source -> plain prose and code, for the ``pydoc`` corpus.

What goes: section adornments, table borders, comments, link targets, substitution definitions, directive
options and the directives that carry no prose (``index``, ``toctree``, ``module``, ``highlight``...). What
stays: paragraphs, literal blocks and doctests (verbatim), the bodies of admonitions (``note``, ``versionadded``
..., with a short English lead such as "New in version 3.2."), and object descriptions (``.. function::
dumps(obj)`` becomes the line ``dumps(obj)`` followed by its body). Inline markup is reduced to its text:
``:func:`~json.dumps``` -> ``dumps``, ```text <url>`_`` -> ``text``, ````lit```` -> ``lit``, ``*x*`` -> ``x``.

The cleaner is line based and never fails: unknown constructs are kept as text.
"""

from __future__ import annotations

import re
import textwrap

DROP = frozenset("""index toctree highlight module currentmodule moduleauthor sectionauthor testsetup testcleanup
include literalinclude tabularcolumns contents image figure raw audit-event audit-event-table program only
miscnews limited-api-list productionlist default-role role""".split())
"""Directives whose argument and body are dropped (no prose in them)."""

CODE = frozenset("code-block sourcecode code doctest testcode testoutput parsed-literal".split())
"""Directives whose body is code, kept verbatim."""

LEADS = {"versionadded": "New in version {}.", "versionchanged": "Changed in version {}:",
         "deprecated": "Deprecated since version {}:", "deprecated-removed": "Deprecated since version {}:",
         "availability": "Availability: {}.", "impl-detail": "CPython implementation detail:",
         "seealso": "See also:", "note": "Note:", "warning": "Warning:", "important": "Important:",
         "caution": "Caution:", "attention": "Attention:", "tip": "Tip:", "hint": "Hint:", "danger": "Danger:"}
"""Admonitions: the English line that replaces the directive (``{}``: its argument)."""

_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.-]+)::(?:\s+(.*))?$")
_EXPLICIT = re.compile(r"^(\s*)\.\.(\s|$)")          # comment, target, footnote, substitution definition
_FOOTNOTE = re.compile(r"^(\s*)\.\.\s+\[([#\w*-]+)\]\s*(.*)$")
_OPTION = re.compile(r"^\s*:[\w-]+:")
_ADORNMENT = re.compile(r"^\s*([=\-~^\"'*+#:.`_])\1{2,}\s*$")
_SIMPLE_TABLE = re.compile(r"^\s*=+(\s+=+)+\s*$")
_GRID_BORDER = re.compile(r"^\s*\+[-=+]+\+\s*$")

_ROLE = re.compile(r":([\w.-]+(?::[\w.-]+)?):`((?:[^`\\]|\\.)+)`")
_LINK = re.compile(r"`([^`<]*?)\s*<[^`>]*>`__?")
_NAMED_REF = re.compile(r"`([^`]+)`__?")
_LITERAL = re.compile(r"``(.+?)``", re.S)
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_EMPH = re.compile(r"(?<![\w*\\])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_DEFAULT_ROLE = re.compile(r"(?<![\w`])`([^`]+)`(?![\w`_])")
_FOOTREF = re.compile(r"\s?\[(?:#[\w-]*|\d+|\*)\]_")
_SUBST = re.compile(r"\|([\w .-]+)\|(?:_{1,2})?")


def _role(m: re.Match) -> str:
    role, text = m.group(1), m.group(2).replace("\\", "")
    target = re.match(r"^(.*?)\s*<([^>]*)>$", text, re.S)
    if target and target.group(1):
        return target.group(1)
    text = target.group(2) if target else text
    if role in ("rfc", "pep"):
        return f"{role.upper()} {text}"
    if role in ("issue", "gh"):
        return f"issue {text}" if role == "issue" else f"gh-{text}"
    text = text.lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return text


def inline(text: str) -> str:
    """Inline markup of one paragraph -> its plain text."""
    text = _ROLE.sub(_role, text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _LITERAL.sub(lambda m: m.group(1), text)
    text = _NAMED_REF.sub(lambda m: m.group(1), text)
    text = _STRONG.sub(lambda m: m.group(1), text)
    text = _EMPH.sub(lambda m: m.group(1), text)
    text = _DEFAULT_ROLE.sub(lambda m: m.group(1), text)
    text = _FOOTREF.sub("", text)
    text = _SUBST.sub(lambda m: m.group(1), text)
    return text.replace("\\ ", "").replace("\\*", "*").replace("\\`", "`").replace("\\\\", "\\")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, base: int) -> int:
    """End (exclusive) of the block after line ``start - 1`` whose lines are indented more than ``base``."""
    i = start
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
        i += 1
    while i > start and not lines[i - 1].strip():
        i -= 1
    return i


def _literal_end(lines: list[str], start: int, base: int) -> int:
    """End of a literal block: its lines are indented at least as much as its first line (a less indented line
    ends it even when it is still inside a list item whose marker sits at ``base``)."""
    first = next((j for j in range(start, len(lines)) if lines[j].strip()), None)
    if first is None or _indent(lines[first]) <= base:
        return start
    return _block(lines, start, _indent(lines[first]) - 1)


def _body(lines: list[str], start: int, end: int, skip_options: bool = True) -> list[str]:
    """A directive's body, dedented, without its leading option lines."""
    i = start
    while skip_options and i < end and _OPTION.match(lines[i]):
        i += 1
    return textwrap.dedent("\n".join(lines[i:end])).split("\n") if i < end else []


def _directive(name: str, arg: str, body: list[str], indent: str) -> list[str]:
    """Output lines of one directive (recursing into prose bodies)."""
    if name in DROP or name.startswith("c:") and not body:
        return []
    while body and not body[0].strip():
        body = body[1:]
    if name in CODE:
        return [indent + ln if ln else "" for ln in body] + [""]
    text = clean_lines(body)
    head = inline(arg.strip())
    if name in LEADS:
        head = re.sub(r"\.\.$", ".", LEADS[name].format(head).replace(" .", ".").replace(" :", ":"))
        if text and text[0].strip():
            head, text = f"{head} {text[0].strip()}", text[1:]
    return ([indent + head] if head else []) + [indent + ln if ln else "" for ln in text] + [""]


def _cell(text: str) -> str:
    """One grid-table cell (a directive may sit in one: ``.. versionadded:: 3.4``)."""
    m = _DIRECTIVE.match(text.strip())
    if m is None:
        return text.strip()
    return "".join(_directive(m.group(2).lower(), m.group(3) or "", [], "")).strip()


def clean_lines(lines: list[str]) -> list[str]:
    """reST lines -> plain lines (see the module docstring)."""
    out: list[str] = []
    para: list[str] = []          # prose lines waiting for inline cleaning (markup may span lines)

    def flush() -> None:
        if para:
            out.extend(inline("\n".join(para)).split("\n"))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        m = _DIRECTIVE.match(line)
        if m:
            flush()
            indent, name, arg = m.group(1), m.group(2).lower(), m.group(3) or ""
            while arg.endswith("\\") and i + 1 < len(lines):      # signature continued with a backslash
                i += 1
                arg = arg[:-1].rstrip() + " " + lines[i].strip()
            end = _block(lines, i + 1, len(indent))
            out += _directive(name, arg, _body(lines, i + 1, end), indent)
            i = end
            continue
        if _EXPLICIT.match(line):
            flush()
            end = _block(lines, i + 1, _indent(line))
            f = _FOOTNOTE.match(line)
            if f:                                   # footnote: keep its text
                if f.group(3).strip():
                    para.append(f.group(1) + f.group(3))
                flush()
                out += clean_lines(_body(lines, i + 1, end, False))
            i = end
            continue
        if _ADORNMENT.match(line) or _SIMPLE_TABLE.match(line) or _GRID_BORDER.match(line):
            i += 1
            continue
        if line.endswith("::"):                     # paragraph introducing a literal block
            text = line[:-2].rstrip()
            if text.strip() and not line.endswith(" ::") and not text.endswith(":"):
                text += ":"
            if text.strip():
                para.append(text)
            flush()
            end = _literal_end(lines, i + 1, _indent(line))
            pad = " " * _indent(line)
            out += [pad + ln if ln else "" for ln in _body(lines, i + 1, end, False)] + [""]
            i = end
            continue
        if line.lstrip().startswith("|") and line.endswith("|"):     # grid table row
            line = "  ".join(_cell(c) for c in line.strip().strip("|").split("|") if c.strip())
        if not line.strip():
            flush()
            out.append("")
        else:
            para.append(line)
        i += 1
    flush()
    return out


def rst_to_text(source: str) -> str:
    """A whole reST document -> plain text (no more than one blank line in a row, no trailing spaces)."""
    lines = clean_lines(source.replace("\t", "    ").split("\n"))
    text = "\n".join(ln.rstrip() for ln in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
