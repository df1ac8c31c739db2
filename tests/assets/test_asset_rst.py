"""reST (Sphinx) markup is reduced to its text; code is kept verbatim."""

from __future__ import annotations

from xatl.assets.rst import inline, rst_to_text

DOC = """\
:mod:`json` --- JSON encoder and decoder
========================================

.. module:: json
   :synopsis: Encode and decode the JSON format.

.. index:: single: JSON

**Source code:** :source:`Lib/json/__init__.py`

`JSON <https://json.org>`_, specified by :rfc:`7159`, is *lightweight* [#f1]_.
See :func:`~json.dumps` and :ref:`the table <py-to-json>` for ``obj``.

.. function:: dumps(obj, *, \\
                    indent=None)

   Serialize *obj* to a :class:`str`.

   .. versionchanged:: 3.6
      All optional parameters are now keyword-only.

   .. note::

      Keys are always strings.

Example::

    >>> import json
    >>> json.dumps([1, 2])
    '[1, 2]'

.. code-block:: python

   print("*not emphasis*")

.. _py-to-json:

.. toctree::
   :maxdepth: 2

   json-one
   json-two

+------+-------+
| a    | b     |
+======+=======+

.. [#f1] A footnote with :pep:`8`.

.. a comment that
   spans lines
"""


def test_inline_roles_and_links():
    assert inline(":func:`~os.path.join` and :meth:`!str.lower`") == "join and str.lower"
    assert inline(":pep:`8` :rfc:`7159` :issue:`123`") == "PEP 8 RFC 7159 issue 123"
    assert inline("`Python <https://python.org>`_ and `target`_ and `anon <x>`__") == "Python and target and anon"
    assert inline("``x = 1`` **bold** *emph* *args and **kwargs") == "x = 1 bold emph *args and **kwargs"
    assert inline(":ref:`a multi-line\ntitle <label>`") == "a multi-line\ntitle"


def test_document():
    text = rst_to_text(DOC)
    lines = text.splitlines()
    assert lines[0] == "json --- JSON encoder and decoder"
    assert "=====" not in text and ".." not in text.replace("...", "") and "`" not in text
    assert "Source code: Lib/json/__init__.py" in text
    assert "JSON, specified by RFC 7159, is lightweight." in text
    assert "See dumps and the table for obj." in text
    assert "dumps(obj, *, indent=None)" in lines
    assert "Serialize obj to a str." in text
    assert "Changed in version 3.6: All optional parameters are now keyword-only." in text
    assert "Note: Keys are always strings." in text
    assert "Example:" in lines and "    >>> json.dumps([1, 2])" not in lines and ">>> json.dumps([1, 2])" in lines
    assert 'print("*not emphasis*")' in lines                     # code is not touched
    for gone in ("synopsis", "single: JSON", "maxdepth", "json-one", "a comment", "py-to-json", "+------"):
        assert gone not in text, gone
    assert "A footnote with PEP 8." in text
    assert "a    b" in text or "a  b" in text
    assert "\n\n\n" not in text and text.endswith("\n")
