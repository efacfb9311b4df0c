"""Unit tests of check_layout.py on small synthetic crates written to a temporary directory.

    python3 -m unittest discover -s scripts -p 'test_check_layout.py'
"""

import os
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check_layout  # noqa: E402

MANIFEST = '[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n'


class Tree:
    """A temporary workspace; `write` adds files, `check` runs the checker on it."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))

    def crate(self, files, manifest=MANIFEST, folder="demo"):
        self.write(f"{folder}/Cargo.toml", manifest)
        for rel, text in files.items():
            self.write(f"{folder}/{rel}", text)

    def check(self):
        offences, notes = check_layout.check(self.root)
        return offences, notes

    def close(self):
        self.tmp.cleanup()


def cycles(offences):
    """The chains of the module cycles reported, e.g. "a -> b -> a"."""
    out = []
    for o in offences:
        if o.startswith("module cycle"):
            out.append(o.splitlines()[0].split("): ", 1)[1])
    return sorted(out)


class CheckLayoutTest(unittest.TestCase):
    def setUp(self):
        self.tree = Tree()

    def tearDown(self):
        self.tree.close()

    def test_clean_crate_passes(self):
        self.tree.crate({
            "src/lib.rs": """
                //! A crate whose docs mention crate::store::evict and `use crate::a;`.
                pub mod a;
                pub mod b;
                pub(crate) mod store;
                pub use a::Thing;
                /* a block comment naming crate::b::Other /* nested */ and crate::a */
                pub fn root_fn() {}
            """,
            "src/a.rs": """
                use crate::b::{self, Other};
                use super::root_fn;
                pub struct Thing;
                pub fn f() -> Other { b::g(); root_fn(); Other }
                #[cfg(test)]
                mod tests {
                    // a test may use anything: not a production cycle
                    use crate::store::evict;
                }
            """,
            "src/b.rs": """
                pub struct Other;
                pub fn g() {
                    let s = "crate::a::Thing, use crate::a;";
                    let r = r#"super::a::f "quoted""#;
                    let c = '"';
                    let _ = (s, r, c);
                }
                #[cfg(all(test, loom))]
                fn model() { crate::a::f(); }
            """,
            "src/store/mod.rs": """
                mod evict;
                pub use evict::Evicted;
                pub(crate) use self::evict::run;
                pub struct Store;
                impl Store {
                    pub fn new() -> Self { Store }
                }
            """,
            "src/store/evict.rs": """
                use super::Store;
                use crate::b::Other;
                pub struct Evicted;
                pub fn run(_s: &Store) -> Other { Other }
            """,
            "examples/short.rs": "fn main() { demo::a::f(); }\n",
        })
        offences, notes = self.tree.check()
        self.assertEqual(offences, [])
        self.assertEqual(notes, [])

    def test_sibling_ring_fails(self):
        self.tree.crate({
            "src/lib.rs": "mod a;\nmod b;\nmod c;\n",
            "src/a.rs": "use crate::{b::{Bee, other}, c as _};\npub struct Ay;\n",
            "src/b.rs": "pub struct Bee;\npub fn other() -> crate::c::See { todo!() }\n",
            "src/c.rs": "pub struct See;\npub fn back() { let _ = super::a::Ay; }\n",
        })
        offences, _ = self.tree.check()
        self.assertEqual(cycles(offences), ["a -> b -> c -> a", "a -> c -> a"])
        text = "\n".join(offences)
        self.assertIn("c -> a: demo/src/c.rs:2: super::a::Ay", text)
        self.assertIn("a -> b: demo/src/a.rs:1: use crate::b::Bee", text)

    def test_nested_modules_lift_to_their_siblings(self):
        self.tree.crate({
            "src/lib.rs": "mod server;\n",
            "src/server/mod.rs": "mod conn;\nmod recv;\n",
            "src/server/conn.rs": "pub mod state { pub struct S(pub super::super::recv::deep::R); }\n",
            "src/server/recv/mod.rs": "pub mod deep;\n",
            "src/server/recv/deep.rs": "pub struct R;\nfn f(_: &crate::server::conn::state::S) {}\n",
        })
        offences, _ = self.tree.check()
        self.assertEqual(cycles(offences), ["server::conn -> server::recv -> server::conn"])

    def test_parent_child_mutual_import_fails(self):
        self.tree.crate({
            "src/lib.rs": "pub mod store;\n",
            "src/store/mod.rs": """
                mod evict;
                pub struct Store { policy: evict::Policy }
            """,
            "src/store/evict.rs": "use super::Store;\npub struct Policy;\nfn f(_: &Store) {}\n",
        })
        offences, _ = self.tree.check()
        self.assertEqual(cycles(offences), ["store -> store::evict -> store"])
        self.assertIn("store -> store::evict: demo/src/store/mod.rs:3: evict::Policy", offences[0])

    def test_child_using_its_parent_alone_is_no_cycle(self):
        self.tree.crate({
            "src/lib.rs": "pub mod store;\npub use store::Store;\n",
            "src/store/mod.rs": "mod evict;\npub use evict::Policy;\npub struct Store;\n",
            "src/store/evict.rs": "use super::Store;\nuse crate::Store as Again;\npub struct Policy;\n",
        })
        offences, _ = self.tree.check()
        self.assertEqual(offences, [])

    def test_crate_root_file_counts_as_parent(self):
        self.tree.crate({
            "src/lib.rs": "mod a;\npub struct Root;\nfn f() { a::g(); }\n",
            "src/a.rs": "pub fn g() { let _ = crate::Root; }\n",
        })
        offences, _ = self.tree.check()
        self.assertEqual(cycles(offences), ["crate -> a -> crate"])

    def test_long_production_file_fails(self):
        long = "// line\n" * 1001
        self.tree.crate({
            "src/lib.rs": "mod big;\nmod tests_big;\n#[cfg(test)]\nmod tests;\n",
            "src/big.rs": long,
            "src/tests.rs": long,
            "src/tests_big.rs": long,
            "tests/long.rs": long,
            "benches/long.rs": long,
            "examples/long.rs": long,
            "fuzz/fuzz_targets/long.rs": long,
        })
        self.tree.write("demo/target/debug/build/generated.rs", long)
        offences, _ = self.tree.check()
        self.assertEqual(offences, [
            "long file: demo/examples/long.rs has 1001 lines (limit 1000)",
            "long file: demo/src/big.rs has 1001 lines (limit 1000)",
        ])

    def test_exactly_the_limit_passes(self):
        self.tree.crate({"src/lib.rs": "// line\n" * 1000})
        self.assertEqual(self.tree.check()[0], [])

    def test_targets_from_the_manifest(self):
        manifest = MANIFEST + '[[bin]]\nname = "tool"\npath = "bin/tool.rs"\n'
        self.tree.crate({
            "bin/tool.rs": "mod x;\nmod y;\n",
            "bin/x.rs": "use crate::y::Y;\npub struct X;\n",
            "bin/y.rs": "pub struct Y(crate::x::X);\n",
        }, manifest=manifest)
        offences, _ = self.tree.check()
        self.assertEqual(cycles(offences), ["x -> y -> x"])
        self.assertIn("module cycle in demo (demo/bin/tool.rs)", offences[0])

    def test_missing_module_file_is_noted(self):
        self.tree.crate({"src/lib.rs": "mod gone;\n"})
        offences, notes = self.tree.check()
        self.assertEqual(offences, [])
        self.assertEqual(len(notes), 1)
        self.assertIn("mod gone;", notes[0])


class PartsTest(unittest.TestCase):
    def test_use_tree_paths(self):
        toks = check_layout.tokenize("crate::{a, b::{c, d as e}, self as me, f::*};")
        paths, _ = check_layout.use_tree(toks, 0, len(toks) - 1, [])
        self.assertEqual(paths, [
            ["crate", "a"], ["crate", "b", "c"], ["crate", "b", "d"], ["crate"], ["crate", "f"],
        ])

    def test_cfg_predicates(self):
        def cfg(text):
            return check_layout.eval_cfg(check_layout.tokenize(text))

        self.assertIs(cfg("test"), False)
        self.assertIs(cfg("all(test, loom)"), False)
        self.assertIs(cfg("doctest"), False)
        self.assertIs(cfg("not(test)"), True)
        self.assertIsNone(cfg("loom"))
        self.assertIsNone(cfg("any(test, fuzzing)"))
        self.assertIsNone(cfg('feature = "test"'))

    def test_tokens_skip_comments_and_strings(self):
        toks = check_layout.tokenize('a /* x /* y */ z */ b // c\n"d\\"e" br#"f"# \'g\' \'h b\'i\' r#fn')
        self.assertEqual([(t.kind, t.val) for t in toks], [
            ("id", "a"), ("id", "b"), ("str", 'd\\"e'), ("str", "f"), ("lit", "'g'"),
            ("life", "'h"), ("lit", "'i'"), ("id", "fn"),
        ])
        self.assertEqual(toks[2].line, 2)

    def test_resolution_to_the_deepest_module(self):
        tree = Tree()
        try:
            tree.crate({
                "src/lib.rs": "pub mod store;\n",
                "src/store/mod.rs": "pub mod evict;\n",
                "src/store/evict.rs": "pub struct X;\n",
            })
            crate = check_layout.Crate(tree.root, "demo", "demo/src/lib.rs")
            here = ("store", "evict")
            self.assertEqual(crate.resolve(["crate", "store", "Store"], here), ("store",))
            self.assertEqual(crate.resolve(["crate", "store", "evict", "X"], ()), here)
            self.assertEqual(crate.resolve(["super", "super", "store"], here), ("store",))
            self.assertEqual(crate.resolve(["self", "X"], here), here)
            self.assertEqual(crate.resolve(["evict", "X"], ("store",)), here)
            self.assertIsNone(crate.resolve(["std", "fmt"], here))
        finally:
            tree.close()


if __name__ == "__main__":
    unittest.main()
