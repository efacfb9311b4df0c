//! A linearizability checker: Wing & Gong's search with Lowe's memoization, as Porcupine
//! implements it.
//!
//! A history is a set of operations, each with the time it was invoked (`call`) and the
//! time its response arrived (`ret`). It is *linearizable* for a sequential [`Model`] if
//! the operations can be put in one order that respects real time (an operation that
//! returned before another was invoked comes first) and in which every operation, applied
//! to the model's state in turn, gives the response that was observed.
//!
//! # Algorithm
//!
//! The calls and returns are sorted by time into one list (a call before a return at
//! equal times, which only allows more orders). The search walks the list: at a call, it
//! tries to linearize that operation now (the model accepts its response from the current
//! state); if so, both its entries leave the list, the choice is pushed on a stack and the
//! walk restarts from the head. Reaching a return means the operation that returned was
//! not linearized before it had to be: the search backtracks (pops the last choice, puts
//! its entries back, and tries the next call after it). The history is linearizable when
//! the list empties, and is not when the stack is empty at a return. Lowe's cache makes it
//! practical: a pair (set of linearized operations, model state) reached once is never
//! explored again, since what follows depends on nothing else.
//!
//! Linearizability is *local* (Herlihy & Wing): a history of a store of independent keys
//! is linearizable if and only if each key's sub-history is, so callers check per key.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The object's state (hashed for the cache).
    type State: Clone + Eq + Hash;
    /// One operation: what was asked and what was answered.
    type Op;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Applies `op` in `state`: the next state if the model allows `op`'s response there,
    /// `None` if it does not. `call` and `ret` are the operation's times, for models whose
    /// states change with time (expiry).
    fn step(&self, state: &Self::State, op: &Self::Op, call: u64, ret: u64) -> Option<Self::State>;
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<O> {
    /// When it was invoked.
    pub call: u64,
    /// When its response arrived (`>= call`).
    pub ret: u64,
    /// What was asked and answered.
    pub op: O,
}

/// The checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations explains every response.
    Linearizable,
    /// None does. `longest` is the most operations any explored order linearized.
    Violation {
        /// The longest linearized prefix found (indices into the history).
        longest: Vec<usize>,
    },
    /// The search gave up after its step budget.
    Unknown,
}

/// A node of the doubly linked list of calls and returns.
#[derive(Clone, Copy, Debug)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return node.
    matching: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// A fixed-size bitset of linearized operations.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Checks `history` against `model`, exploring at most `budget` steps.
pub fn check<M: Model>(model: &M, history: &[Event<M::Op>], budget: u64) -> Verdict {
    let n = history.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Node 0 is the head sentinel; then the entries in time order.
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        assert!(
            e.ret >= e.call,
            "operation {i} returned before it was called"
        );
        entries.push((e.call, true, i));
        entries.push((e.ret, false, i));
    }
    // Calls before returns at equal times (`false < true` on `!is_call`).
    entries.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
    let mut nodes = vec![Node {
        op: NIL,
        is_call: false,
        matching: NIL,
        prev: NIL,
        next: NIL,
    }];
    let mut ret_node = vec![NIL; n];
    for &(_, is_call, op) in &entries {
        let idx = nodes.len();
        nodes.push(Node {
            op,
            is_call,
            matching: NIL,
            prev: idx - 1,
            next: NIL,
        });
        nodes[idx - 1].next = idx;
        if !is_call {
            ret_node[op] = idx;
        }
    }
    for node in nodes.iter_mut().skip(1) {
        if node.is_call {
            node.matching = ret_node[node.op];
        }
    }
    let lift = |nodes: &mut Vec<Node>, c: usize| {
        let r = nodes[c].matching;
        let (p, nx) = (nodes[c].prev, nodes[c].next);
        nodes[p].next = nx;
        if nx != NIL {
            nodes[nx].prev = p;
        }
        let (p, nx) = (nodes[r].prev, nodes[r].next);
        nodes[p].next = nx;
        if nx != NIL {
            nodes[nx].prev = p;
        }
    };
    let unlift = |nodes: &mut Vec<Node>, c: usize| {
        // Reverse order of `lift`: the return first, then the call.
        let r = nodes[c].matching;
        let (p, nx) = (nodes[r].prev, nodes[r].next);
        nodes[p].next = r;
        if nx != NIL {
            nodes[nx].prev = r;
        }
        let (p, nx) = (nodes[c].prev, nodes[c].next);
        nodes[p].next = c;
        if nx != NIL {
            nodes[nx].prev = c;
        }
    };
    let mut state = model.init();
    let mut linearized = Bits::new(n);
    let mut cache: HashSet<(Bits, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut entry = nodes[0].next;
    let mut steps = 0u64;
    while nodes[0].next != NIL {
        steps += 1;
        if steps > budget {
            return Verdict::Unknown;
        }
        let node = nodes[entry];
        if node.is_call {
            let e = &history[node.op];
            if let Some(next) = model.step(&state, &e.op, e.call, e.ret) {
                let mut bits = linearized.clone();
                bits.set(node.op);
                if cache.insert((bits.clone(), next.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next)));
                    linearized = bits;
                    lift(&mut nodes, entry);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|&(c, _)| nodes[c].op).collect();
                    }
                    entry = nodes[0].next;
                    continue;
                }
            }
            entry = node.next;
        } else {
            let Some((c, prev)) = stack.pop() else {
                return Verdict::Violation { longest };
            };
            state = prev;
            linearized.clear(nodes[c].op);
            unlift(&mut nodes, c);
            entry = nodes[c].next;
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register holding a `u32`, initially 0.
    struct Register;

    #[derive(Clone, Copy, Debug)]
    enum Reg {
        Write(u32),
        Read(u32),
    }

    impl Model for Register {
        type State = u32;
        type Op = Reg;
        fn init(&self) -> u32 {
            0
        }
        fn step(&self, s: &u32, op: &Reg, _: u64, _: u64) -> Option<u32> {
            match *op {
                Reg::Write(v) => Some(v),
                Reg::Read(v) => (v == *s).then_some(*s),
            }
        }
    }

    fn ev(call: u64, ret: u64, op: Reg) -> Event<Reg> {
        Event { call, ret, op }
    }

    fn ok(h: &[Event<Reg>]) -> bool {
        match check(&Register, h, 1 << 20) {
            Verdict::Linearizable => true,
            Verdict::Violation { .. } => false,
            Verdict::Unknown => panic!("budget"),
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(ok(&[]));
        assert!(ok(&[ev(0, 1, Reg::Read(0))]));
        assert!(ok(&[ev(0, 1, Reg::Write(1)), ev(2, 3, Reg::Read(1))]));
        // A read after a completed write must see it.
        assert!(!ok(&[ev(0, 1, Reg::Write(1)), ev(2, 3, Reg::Read(0))]));
        // A value nobody wrote.
        assert!(!ok(&[ev(0, 1, Reg::Read(7))]));
    }

    #[test]
    fn concurrent_reads_may_see_either_value() {
        // The write overlaps both reads: 0 then 1 is fine...
        assert!(ok(&[
            ev(0, 10, Reg::Write(1)),
            ev(1, 2, Reg::Read(0)),
            ev(3, 4, Reg::Read(1)),
        ]));
        // ... and so are both reads seeing 1 before the write returned.
        assert!(ok(&[
            ev(0, 10, Reg::Write(1)),
            ev(1, 2, Reg::Read(1)),
            ev(3, 4, Reg::Read(1)),
        ]));
    }

    #[test]
    fn a_new_value_seen_cannot_be_unseen() {
        // Read 1 then (strictly later) read 0 while the write of 1 is still running: once
        // a read saw the write take effect, a later read cannot see the old value.
        assert!(!ok(&[
            ev(0, 10, Reg::Write(1)),
            ev(1, 2, Reg::Read(1)),
            ev(3, 4, Reg::Read(0)),
        ]));
        // Two concurrent writes; reads that observe 1, 2, 1 in sequence cannot be ordered.
        assert!(!ok(&[
            ev(0, 20, Reg::Write(1)),
            ev(0, 20, Reg::Write(2)),
            ev(1, 2, Reg::Read(1)),
            ev(3, 4, Reg::Read(2)),
            ev(5, 6, Reg::Read(1)),
        ]));
        // But 1, 2, 2 can.
        assert!(ok(&[
            ev(0, 20, Reg::Write(1)),
            ev(0, 20, Reg::Write(2)),
            ev(1, 2, Reg::Read(1)),
            ev(3, 4, Reg::Read(2)),
            ev(5, 6, Reg::Read(2)),
        ]));
    }

    #[test]
    fn backtracking_finds_the_only_order() {
        // The writes overlap; only writing 2 first, then 1, explains the reads.
        assert!(ok(&[
            ev(0, 5, Reg::Write(1)),
            ev(0, 5, Reg::Write(2)),
            ev(1, 6, Reg::Read(2)),
            ev(7, 8, Reg::Read(1)),
        ]));
        // Many concurrent writes and a final read of the first-invoked one.
        let mut h: Vec<Event<Reg>> = (1..=12).map(|v| ev(v, 100, Reg::Write(v as u32))).collect();
        h.push(ev(101, 102, Reg::Read(1)));
        assert!(ok(&h));
        h.push(ev(103, 104, Reg::Read(5)));
        assert!(!ok(&h));
    }

    #[test]
    fn violation_reports_the_longest_prefix_and_budget_is_enforced() {
        let h = [
            ev(0, 1, Reg::Write(1)),
            ev(2, 3, Reg::Write(2)),
            ev(4, 5, Reg::Read(1)),
        ];
        match check(&Register, &h, 1000) {
            Verdict::Violation { longest } => assert_eq!(longest, vec![0, 1]),
            v => panic!("{v:?}"),
        }
        let h: Vec<Event<Reg>> = (1..=16).map(|v| ev(v, 100, Reg::Write(v as u32))).collect();
        assert_eq!(check(&Register, &h, 3), Verdict::Unknown);
    }
}
