#!/usr/bin/env python3
"""Layout checks for the workspace: file length and module import cycles.

Usage: check_layout.py [ROOT] [--max-lines N]

Prints each offence and exits 1 if there is any; exits 0 otherwise. Standard library only.

File length
    Every `.rs` file that is production code must have at most `--max-lines` (1,000) lines.
    Test code is exempt: a file with a path component named `tests`, `benches` or `fuzz`,
    or a file named `tests.rs` or `tests_*.rs`. Examples (`examples/`) count as production
    code: they are documentation that people copy. Directories named `target` and hidden
    directories are not scanned.

Module import cycles
    Every crate target of every package (lib, bins, examples, tests, benches, as Cargo finds
    them or as `Cargo.toml` names them) is read from its root file. Each `.rs` file is a
    module (`lib.rs`, `main.rs` and `mod.rs` stand for their folder's module) and so is each
    inline `mod x { ... }`; child modules come from `mod x;` declarations, with `#[path]`
    honoured. Items whose `#[cfg(...)]` can only hold under test (`cfg(test)`,
    `cfg(all(test, loom))`, `cfg(doctest)`) are skipped, and so are comments, strings and
    attributes.

    An edge A -> B is a reference from A's code to B: a `use` path (grouped trees included),
    or an inline path starting with `crate::`, `super::`, `self::` or the name of one of A's
    declared child modules. A path resolves to the deepest module it names:
    `crate::store::Store` is module `store`, `crate::store::evict::X` is `store::evict`.

    Cycles are looked for at every module P, in the graph whose nodes are P's own file and
    P's child modules. An edge between two modules below P is lifted to the children of P
    that contain them (`a::x -> b::y` is `a -> b` under their common parent). An edge from
    below child C to P itself is `C -> P`; an edge from P's own code to anything below C is
    `P -> C`, unless it is a `pub use` re-export (of any visibility). A reference to one's
    own ancestor or descendant is thus not a cycle by itself: `store::evict` using
    `super::Store` is a cycle only if `store`'s own code also uses `evict` other than to
    re-export it. Each cycle is printed as a chain, with the reference behind each step.
"""

import argparse
import os
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11: auto-discovered targets only
    tomllib = None

MAX_LINES = 1000
TEST_DIRS = {"tests", "benches", "fuzz"}
SKIP_DIRS = {"target"}


# ---------------------------------------------------------------- files and lengths


def rust_files(root):
    """All `.rs` files under root, as paths relative to root, sorted."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("."))
        for f in files:
            if f.endswith(".rs"):
                out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def is_test_file(rel):
    parts = rel.replace(os.sep, "/").split("/")
    name = parts[-1]
    if name == "tests.rs" or (name.startswith("tests_") and name.endswith(".rs")):
        return True
    return any(p in TEST_DIRS for p in parts[:-1])


def count_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    return len(data.splitlines())


def long_files(root, max_lines=MAX_LINES):
    out = []
    for rel in rust_files(root):
        if is_test_file(rel):
            continue
        n = count_lines(os.path.join(root, rel))
        if n > max_lines:
            out.append(f"long file: {rel} has {n} lines (limit {max_lines})")
    return out


# ---------------------------------------------------------------- tokens


class Tok:
    __slots__ = ("kind", "val", "line")

    def __init__(self, kind, val, line):
        self.kind = kind  # "id", "str", "lit", "life", "p"
        self.val = val
        self.line = line

    def __repr__(self):
        return f"{self.kind}:{self.val}@{self.line}"


def _id_start(c):
    return c == "_" or c.isalpha()


def _id_cont(c):
    return c == "_" or c.isalnum()


def tokenize(src):
    """Rust tokens without comments; strings become one `str` token holding their text."""
    toks = []
    i, n, line = 0, len(src), 1

    def raw_string(i, line):
        # at the `r` of r"..." / r#"..."#; returns (text, end, line)
        j = i + 1
        hashes = 0
        while j < n and src[j] == "#":
            hashes += 1
            j += 1
        j += 1  # opening quote
        close = '"' + "#" * hashes
        k = src.find(close, j)
        if k < 0:
            k = n
        text = src[j:k]
        return text, k + len(close), line + text.count("\n")

    def quoted(i, line):
        # at the opening quote of "..."; returns (text, end, line)
        j = i + 1
        buf = []
        while j < n and src[j] != '"':
            if src[j] == "\\" and j + 1 < n:
                buf.append(src[j : j + 2])
                j += 2
                continue
            buf.append(src[j])
            j += 1
        text = "".join(buf)
        return text, j + 1, line + text.count("\n")

    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth += 1
                    j += 2
                elif src.startswith("*/", j):
                    depth -= 1
                    j += 2
                else:
                    if src[j] == "\n":
                        line += 1
                    j += 1
            i = j
        elif c == '"':
            start = line
            text, i, line = quoted(i, line)
            toks.append(Tok("str", text, start))
        elif c == "'":
            # char literal or lifetime / label
            if i + 1 < n and src[i + 1] == "\\":
                j = i + 2
                if j < n:
                    j += 1
                while j < n and src[j] != "'":
                    j += 1
                toks.append(Tok("lit", src[i : j + 1], line))
                i = j + 1
            elif i + 2 < n and src[i + 2] == "'":
                toks.append(Tok("lit", src[i : i + 3], line))
                if src[i + 1] == "\n":
                    line += 1
                i += 3
            else:
                j = i + 1
                while j < n and _id_cont(src[j]):
                    j += 1
                toks.append(Tok("life", src[i:j], line))
                i = j
        elif _id_start(c):
            j = i
            while j < n and _id_cont(src[j]):
                j += 1
            word = src[i:j]
            nxt = src[j] if j < n else ""
            if word in ("r", "br", "cr") and (nxt == '"' or (nxt == "#" and _raw_follows(src, j))):
                start = line
                text, i, line = raw_string(j - 1, line)
                toks.append(Tok("str", text, start))
            elif word in ("b", "c") and nxt == '"':
                start = line
                text, i, line = quoted(j, line)
                toks.append(Tok("str", text, start))
            elif word == "b" and nxt == "'":
                # byte literal: let the char branch take it, drop the prefix
                i = j
            elif word == "r" and nxt == "#" and j + 1 < n and _id_start(src[j + 1]):
                k = j + 1
                while k < n and _id_cont(src[k]):
                    k += 1
                toks.append(Tok("id", src[j + 1 : k], line))
                i = k
            else:
                toks.append(Tok("id", word, line))
                i = j
        elif c.isdigit():
            j = i + 1
            while j < n and (_id_cont(src[j]) or (src[j] == "." and j + 1 < n and src[j + 1].isdigit())):
                j += 1
            toks.append(Tok("lit", src[i:j], line))
            i = j
        elif c == ":" and src.startswith("::", i):
            toks.append(Tok("p", "::", line))
            i += 2
        elif c == "$" and i + 1 < n and _id_start(src[i + 1]):
            j = i + 1
            while j < n and _id_cont(src[j]):
                j += 1
            toks.append(Tok("id", src[i:j], line))  # macro metavariable, e.g. `$crate`
            i = j
        else:
            toks.append(Tok("p", c, line))
            i += 1
    return toks


def _raw_follows(src, j):
    while j < len(src) and src[j] == "#":
        j += 1
    return j < len(src) and src[j] == '"'


def matching(toks, i):
    """Index of the bracket closing the one at toks[i]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    want = [pairs[toks[i].val]]
    j = i + 1
    while j < len(toks) and want:
        v = toks[j].val if toks[j].kind == "p" else None
        if v in pairs:
            want.append(pairs[v])
        elif v is not None and v == want[-1]:
            want.pop()
        j += 1
    return j - 1


# ---------------------------------------------------------------- cfg


def eval_cfg(toks):
    """Three-valued value of a cfg predicate (tokens inside `cfg( ... )`) with test off.

    Returns False when the predicate can only hold under test or doctest, True when it holds
    regardless, None when it depends on the build.
    """
    val, _ = _cfg_pred(toks, 0)
    return val


def _cfg_pred(toks, i):
    if i >= len(toks):
        return None, i
    t = toks[i]
    if t.kind == "id" and i + 1 < len(toks) and toks[i + 1].val == "(" and t.val in ("all", "any", "not"):
        end = matching(toks, i + 1)
        args = []
        j = i + 2
        while j < end:
            v, j = _cfg_pred(toks, j)
            args.append(v)
            while j < end and toks[j].val != ",":
                j += 1
            j += 1
        if t.val == "not":
            v = args[0] if args else None
            return (None if v is None else not v), end + 1
        if t.val == "all":
            if any(a is False for a in args):
                return False, end + 1
            return (True if all(a is True for a in args) else None), end + 1
        if any(a is True for a in args):
            return True, end + 1
        return (False if all(a is False for a in args) else None), end + 1
    if t.kind == "id" and t.val in ("test", "doctest") and (i + 1 >= len(toks) or toks[i + 1].val != "="):
        return False, i + 1
    return None, i + 1


def parse_attr(toks, i):
    """At `#`: returns (end index after the attribute, inner?, test_only?, path or None)."""
    j = i + 1
    inner = False
    if j < len(toks) and toks[j].val == "!":
        inner = True
        j += 1
    if j >= len(toks) or toks[j].val != "[":
        return None
    end = matching(toks, j)
    body = toks[j + 1 : end]
    test_only = False
    path = None
    if body and body[0].kind == "id" and body[0].val == "cfg" and len(body) > 1 and body[1].val == "(":
        close = matching(body, 1)
        test_only = eval_cfg(body[2:close]) is False
    if len(body) == 3 and body[0].val == "path" and body[1].val == "=" and body[2].kind == "str":
        path = body[2].val
    return end + 1, inner, test_only, path


SEMI_ITEMS = {"use", "static", "type", "let"}
BLOCK_ITEMS = {"fn", "impl", "struct", "enum", "trait", "mod", "union", "macro_rules", "extern"}
QUALIFIERS = {"pub", "unsafe", "async", "default", "auto"}


def item_end(toks, i):
    """Index just past the item, field, arm or statement starting at toks[i]."""
    j = i
    while j < len(toks) and toks[j].val == "#":  # more attributes
        a = parse_attr(toks, j)
        if a is None:
            break
        j = a[0]
    # leading keyword
    k = j
    kind = None
    while k < len(toks) and toks[k].kind == "id":
        v = toks[k].val
        if v == "pub" and k + 1 < len(toks) and toks[k + 1].val == "(":
            k = matching(toks, k + 1) + 1
            continue
        if v in QUALIFIERS:
            k += 1
            continue
        if v == "const":
            nxt = toks[k + 1].val if k + 1 < len(toks) else ""
            if nxt in ("fn", "unsafe", "async", "extern"):
                k += 1
                continue
            kind = "semi"
        elif v == "extern" and k + 1 < len(toks) and toks[k + 1].val == "crate":
            kind = "semi"
        elif v in SEMI_ITEMS:
            kind = "semi"
        elif v in BLOCK_ITEMS:
            kind = "block"
        break
    depth = 0
    while k < len(toks):
        t = toks[k]
        if t.kind == "p":
            if t.val in "([{":
                depth += 1
            elif t.val in ")]}":
                depth -= 1
                if depth < 0:
                    return k  # end of the enclosing list: the item ends before it
                if depth == 0 and t.val == "}" and kind != "semi":
                    return k + 1
            elif depth == 0 and t.val == ";":
                return k + 1
            elif depth == 0 and t.val == "," and kind is None:
                return k + 1
        k += 1
    return k


# ---------------------------------------------------------------- modules


class Module:
    def __init__(self, path, file, line):
        self.path = path  # tuple of names; () is the crate root
        self.file = file  # file holding this module's code (relative to root)
        self.line = line
        self.children = {}  # name -> Module
        self.code = []  # tokens of this module's own code


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


class Crate:
    def __init__(self, root_dir, name, root_file):
        self.root_dir = root_dir
        self.name = name
        self.root_file = root_file  # relative to root_dir
        self.modules = {}  # path tuple -> Module
        self.notes = []
        toks = tokenize(read(os.path.join(root_dir, root_file)))
        self.root = self._module((), root_file, 1, toks, 0, len(toks), os.path.dirname(root_file))

    def _module(self, path, file, line, toks, start, end, child_dir):
        """Builds the module over toks[start:end]; child files are looked for in child_dir."""
        m = Module(path, file, line)
        i = start
        depth = 0
        pending_path = None
        while i < end:
            t = toks[i]
            if t.kind == "p" and t.val == "#":
                a = parse_attr(toks, i)
                if a is not None:
                    nxt, inner, test_only, p = a
                    if test_only:
                        if inner and depth == 0:
                            return None  # the whole module is test-only
                        i = item_end(toks, nxt)
                        pending_path = None
                        continue
                    if p is not None:
                        pending_path = p
                    i = nxt
                    continue
            if t.kind == "p":
                if t.val == "{":
                    depth += 1
                elif t.val == "}":
                    depth -= 1
            if depth == 0 and t.kind == "id" and t.val == "mod" and i + 2 < end and toks[i + 1].kind == "id":
                name = toks[i + 1].val
                after = toks[i + 2].val
                if after == ";":
                    self._file_child(m, name, child_dir, pending_path, file, t.line)
                    pending_path = None
                    i += 3
                    self._drop_visibility(m)
                    continue
                if after == "{":
                    close = matching(toks, i + 2)
                    sub = self._module(path + (name,), file, t.line, toks, i + 3, close,
                                       os.path.join(child_dir, name))
                    if sub is not None:
                        m.children[name] = sub
                    pending_path = None
                    i = close + 1
                    self._drop_visibility(m)
                    continue
            m.code.append(t)
            i += 1
        self.modules[path] = m
        return m

    @staticmethod
    def _drop_visibility(m):
        """Removes a `pub` / `pub(...)` left in the code just before a `mod` declaration."""
        code = m.code
        if code and code[-1].val == ")":
            depth = 0
            for k in range(len(code) - 1, -1, -1):
                if code[k].val == ")":
                    depth += 1
                elif code[k].val == "(":
                    depth -= 1
                    if depth == 0:
                        if k > 0 and code[k - 1].val == "pub":
                            del code[k - 1 :]
                        return
        elif code and code[-1].val == "pub":
            code.pop()

    def _file_child(self, parent, name, child_dir, attr_path, decl_file, line):
        if attr_path is not None:
            rel = os.path.normpath(os.path.join(os.path.dirname(decl_file), attr_path))
            candidates = [rel]
        else:
            candidates = [os.path.join(child_dir, name + ".rs"), os.path.join(child_dir, name, "mod.rs")]
        for rel in candidates:
            full = os.path.join(self.root_dir, rel)
            if os.path.isfile(full):
                toks = tokenize(read(full))
                if os.path.basename(rel) == "mod.rs" or attr_path is not None:
                    sub_dir = os.path.dirname(rel)
                else:
                    sub_dir = os.path.join(os.path.dirname(rel), name)
                sub = self._module(parent.path + (name,), rel, 1, toks, 0, len(toks), sub_dir)
                if sub is not None:
                    parent.children[name] = sub
                return
        self.notes.append(f"{decl_file}:{line}: no file for `mod {name};` (looked for {', '.join(candidates)})")

    # ---- references

    def resolve(self, segs, here):
        """The deepest module named by path segs used in module here, or None if not local."""
        if not segs:
            return None
        first = segs[0]
        rest = list(segs[1:])
        if first == "crate":
            cur = ()
        elif first in ("self", "super"):
            cur = here
            rest = list(segs) if first == "super" else rest
            while rest and rest[0] == "super":
                if not cur:
                    return None
                cur = cur[:-1]
                rest.pop(0)
        elif here + (first,) in self.modules:
            cur = here
            rest = list(segs)
        else:
            return None
        for s in rest:
            if cur + (s,) in self.modules:
                cur = cur + (s,)
            else:
                break
        return cur

    def references(self, m):
        """(target, reexport?, line, text) for each reference in m's own code."""
        out = []
        toks = m.code
        n = len(toks)
        i = 0
        while i < n:
            t = toks[i]
            if t.kind == "id" and t.val == "pub" and i + 1 < n and toks[i + 1].val == "(":
                close = matching(toks, i + 1)
                if i + 2 < n and toks[i + 2].val == "in":
                    i = close + 1  # `pub(in path)` names a scope, not an item
                    continue
            if t.kind == "id" and t.val == "use":
                reexport = self._is_pub(toks, i)
                end = i + 1
                while end < n and toks[end].val != ";":
                    end += 1
                try:
                    paths, _ = use_tree(toks, i + 1, end, [])
                except IndexError:
                    paths = []
                for segs in paths:
                    target = self.resolve(segs, m.path)
                    if target is not None and target != m.path:
                        out.append((target, reexport, t.line, "use " + "::".join(segs)))
                i = end + 1
                continue
            if (
                t.kind == "id"
                and i + 2 < n
                and toks[i + 1].val == "::"
                and toks[i + 2].kind == "id"
                and (i == 0 or toks[i - 1].val not in ("::", "."))
                and (t.val in ("crate", "super", "self") or m.path + (t.val,) in self.modules)
            ):
                segs = [t.val]
                j = i + 1
                while j + 1 < n and toks[j].val == "::" and toks[j + 1].kind == "id":
                    segs.append(toks[j + 1].val)
                    j += 2
                target = self.resolve(segs, m.path)
                if target is not None and target != m.path:
                    out.append((target, False, t.line, "::".join(segs)))
                i = j
                continue
            i += 1
        return out

    @staticmethod
    def _is_pub(toks, i):
        if i == 0:
            return False
        p = toks[i - 1]
        if p.val == "pub":
            return True
        if p.val == ")":
            depth = 0
            for k in range(i - 1, -1, -1):
                if toks[k].val == ")":
                    depth += 1
                elif toks[k].val == "(":
                    depth -= 1
                    if depth == 0:
                        return k > 0 and toks[k - 1].val == "pub"
        return False


def use_tree(toks, i, end, prefix):
    """Paths of the use tree at toks[i:end]; returns (list of segment lists, next index)."""
    segs = list(prefix)
    paths = []
    if i < end and toks[i].val == "::":
        segs.append("::")  # extern path
        i += 1
    while i < end:
        t = toks[i]
        if t.val == "{":
            close = matching(toks, i)
            j = i + 1
            while j < close:
                sub, j = use_tree(toks, j, close, segs)
                paths += sub
                while j < close and toks[j].val != ",":
                    j += 1
                j += 1
            return paths, close + 1
        if t.val == "*":
            paths.append(segs)
            return paths, i + 1
        if t.kind != "id":
            return paths, i
        if not (t.val == "self" and segs):
            segs.append(t.val)
        i += 1
        if i < end and toks[i].val == "::":
            i += 1
            continue
        if i < end and toks[i].val == "as":
            i += 2
        paths.append(segs)
        return paths, i
    return paths, i


# ---------------------------------------------------------------- crates


def crate_roots(root):
    """(package name, root file relative to root) for every target of every package."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("."))
        if "Cargo.toml" not in files:
            continue
        manifest = {}
        text = read(os.path.join(d, "Cargo.toml"))
        if tomllib is not None:
            try:
                manifest = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                print(f"warning: {os.path.relpath(d, root)}/Cargo.toml: {e}", file=sys.stderr)
                continue
        elif "[package]" not in text:
            continue
        if tomllib is not None and "package" not in manifest:
            continue
        pkg = manifest.get("package", {})
        name = pkg.get("name", os.path.basename(d))
        files_here = set()

        def add(rel):
            full = os.path.join(d, rel)
            if os.path.isfile(full) and rel not in files_here:
                files_here.add(rel)
                out.append((name, os.path.relpath(full, root)))

        lib = manifest.get("lib", {})
        add(lib.get("path", os.path.join("src", "lib.rs")))
        for kind, folder in (("bin", os.path.join("src", "bin")), ("example", "examples"),
                             ("test", "tests"), ("bench", "benches")):
            for t in manifest.get(kind, []):
                if "path" in t:
                    add(t["path"])
                elif "name" in t:
                    add(os.path.join(folder, t["name"] + ".rs"))
                    add(os.path.join(folder, t["name"], "main.rs"))
            if pkg.get("auto" + kind + "s", True) is not False:
                if kind == "bin":
                    add(os.path.join("src", "main.rs"))
                full = os.path.join(d, folder)
                if os.path.isdir(full):
                    for e in sorted(os.listdir(full)):
                        if e.endswith(".rs"):
                            add(os.path.join(folder, e))
                        elif os.path.isfile(os.path.join(full, e, "main.rs")):
                            add(os.path.join(folder, e, "main.rs"))
    return out


def fmt(path):
    return "::".join(path) if path else "crate"


def sccs(nodes, edges):
    """Strongly connected components (Tarjan), as sets."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(comp)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def cycles_in(nodes, edges):
    """Cycles covering every edge that lies on a cycle: for each such edge a -> b, the shortest
    cycle through it, as a node list starting and ending at its least node; deduplicated."""
    found = []
    for comp in sccs(nodes, edges):
        if len(comp) < 2:
            continue
        for a in sorted(comp):
            for b in sorted(edges.get(a, ())):
                if b not in comp:
                    continue
                # shortest path b ~> a inside the component
                prev = {b: None}
                queue = [b]
                for v in queue:
                    if v == a:
                        break
                    for w in sorted(edges.get(v, ())):
                        if w in comp and w not in prev:
                            prev[w] = v
                            queue.append(w)
                path = [a]
                v = a
                while v != b:
                    v = prev[v]
                    path.append(v)
                ring = [a] + path[::-1][:-1]  # a -> b -> ... (without the closing a)
                k = ring.index(min(ring))
                ring = ring[k:] + ring[:k]
                cyc = ring + [ring[0]]
                if cyc not in found:
                    found.append(cyc)
    return sorted(found, key=lambda c: (len(c), c))


def crate_cycles(crate):
    """Offence lines for the module cycles of one crate."""
    # level (module path) -> node -> node -> first evidence; node "" is the level's own file
    levels = {}
    for m in sorted(crate.modules.values(), key=lambda m: m.path):
        for target, reexport, line, text in crate.references(m):
            src, dst = m.path, target
            k = 0
            while k < min(len(src), len(dst)) and src[k] == dst[k]:
                k += 1
            level = src[:k]
            if level == src:  # own code -> a descendant
                if reexport:
                    continue
                a, b = "", dst[k]
            elif level == dst:  # below -> an ancestor's own code
                a, b = src[k], ""
            else:
                a, b = src[k], dst[k]
            levels.setdefault(level, {}).setdefault(a, {}).setdefault(b, (m.file, line, text))
    out = []
    for level in sorted(levels):
        graph = levels[level]
        nodes = set(graph) | {b for a in graph.values() for b in a}
        adj = {a: set(bs) for a, bs in graph.items()}
        for cyc in cycles_in(nodes, adj):
            names = [fmt(level + ((x,) if x else ())) for x in cyc]
            lines = [f"module cycle in {crate.name} ({crate.root_file}): {' -> '.join(names)}"]
            for a, b, na, nb in zip(cyc, cyc[1:], names, names[1:]):
                file, line, text = graph[a][b]
                lines.append(f"    {na} -> {nb}: {file}:{line}: {text}")
            out.append("\n".join(lines))
    return out


def check(root, max_lines=MAX_LINES):
    """(offences, notes) for the tree at root."""
    offences = long_files(root, max_lines)
    notes = []
    seen = set()
    for name, rel in crate_roots(root):
        crate = Crate(root, name, rel)
        notes += crate.notes
        for o in crate_cycles(crate):
            if o not in seen:
                seen.add(o)
                offences.append(o)
    return offences, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--max-lines", type=int, default=MAX_LINES)
    ap.add_argument("--edges", action="store_true", help="print every crate's module references and exit")
    args = ap.parse_args(argv)
    if args.edges:
        for name, rel in crate_roots(args.root):
            crate = Crate(args.root, name, rel)
            print(f"{name} ({rel}): {len(crate.modules)} modules")
            for m in sorted(crate.modules.values(), key=lambda m: m.path):
                for target, reexport, line, text in crate.references(m):
                    tag = " (re-export)" if reexport else ""
                    print(f"    {fmt(m.path)} -> {fmt(target)}{tag}: {m.file}:{line}: {text}")
        return 0
    offences, notes = check(args.root, args.max_lines)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    for o in offences:
        print(o)
    if offences:
        print(f"check-layout: {len(offences)} offence(s)")
        return 1
    print("check-layout: ok")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
