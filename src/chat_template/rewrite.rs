//! Routes a template's growth operators through checked functions before it is compiled.
//!
//! minijinja runs `a ~ b`, `a + b` and `a * b` as VM instructions with no size check of their
//! own (only string repetition is capped, at 100 MB): `{% set ns.s = ns.s ~ ns.s %}` in a loop
//! of 40 doubles a string 40 times within a few hundred instructions of fuel. So the source is
//! parsed (minijinja's own parser, `unstable_machinery`), and every `~` / `+` / `*` node is
//! rewritten textually, by its span, into a call: `a ~ b` → `__llmtool_cat(a , b)`; so is a
//! lone `a in b` / `a not in b` (`in` prints `a` when `b` is a string). Nothing else
//! of the source changes (whitespace control, raw text and block tags keep their bytes), so the
//! rewritten template renders exactly as the original wherever no limit is hit.

use std::borrow::Cow;

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Set, Stmt};
use minijinja::machinery::{parse, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::Error;

/// The checked functions the operators become (registered by `limits::install`).
pub const CAT: &str = "__llmtool_cat";
pub const ADD: &str = "__llmtool_add";
pub const MUL: &str = "__llmtool_mul";
pub const IN: &str = "__llmtool_in";
/// `{% set ns.attr = value %}` → `{% set ns.attr = __llmtool_acyclic(ns, (value)) %}`: the
/// check that `value` does not contain `ns` (a cycle; `limits::acyclic`).
pub const ACYCLIC: &str = "__llmtool_acyclic";

/// One textual edit at a byte offset: an insertion (`del == 0`) or the replacement of the
/// operator byte(s).
struct Edit {
    at: usize,
    del: usize,
    text: Cow<'static, str>,
    /// Ordering among edits at the same offset: closing parens (0) before operator
    /// replacements (1) before opening calls (2); opens of wider nodes first, closes of
    /// narrower nodes first.
    class: u8,
    width: usize,
}

/// The edits of one source, and the offset of an attribute assignment whose cycle check
/// could not be placed (the rewrite then fails rather than run it unchecked).
#[derive(Default)]
struct Edits {
    list: Vec<Edit>,
    unplaced: Option<usize>,
}

impl Edits {
    fn push(&mut self, e: Edit) {
        self.list.push(e);
    }
}

/// Parses `source` (with the environment's whitespace settings) and returns it with every
/// growth operator turned into a checked call. A syntax error is minijinja's own.
pub fn rewrite(source: &str, name: &str, ws: WhitespaceConfig) -> Result<String, Error> {
    let ast = parse(source, name, SyntaxConfig, ws)?;
    let mut edits = Edits::default();
    stmt(&ast, source, &mut edits);
    if let Some(at) = edits.unplaced {
        return Err(Error::new(
            minijinja::ErrorKind::SyntaxError,
            format!("cannot place the cycle check of the namespace assignment at byte {at}"),
        ));
    }
    let mut edits = edits.list;
    if edits.is_empty() {
        return Ok(source.to_string());
    }
    edits.sort_by(|a, b| {
        a.at.cmp(&b.at).then(a.class.cmp(&b.class)).then_with(|| match a.class {
            2 => b.width.cmp(&a.width),
            _ => a.width.cmp(&b.width),
        })
    });
    let mut out = String::with_capacity(source.len() + edits.len() * 16);
    let mut pos = 0;
    for e in &edits {
        out.push_str(&source[pos..e.at]);
        out.push_str(&e.text);
        pos = e.at + e.del;
    }
    out.push_str(&source[pos..]);
    Ok(out)
}

fn stmts(list: &[Stmt<'_>], src: &str, edits: &mut Edits) {
    for s in list {
        stmt(s, src, edits);
    }
}

fn stmt(s: &Stmt<'_>, src: &str, edits: &mut Edits) {
    let e = |x: &Expr<'_>, edits: &mut Edits| expr(x, src, edits);
    match s {
        Stmt::Template(t) => stmts(&t.children, src, edits),
        Stmt::EmitExpr(x) => e(&x.expr, edits),
        Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
        Stmt::ForLoop(f) => {
            e(&f.target, edits);
            e(&f.iter, edits);
            if let Some(x) = &f.filter_expr {
                e(x, edits);
            }
            stmts(&f.body, src, edits);
            stmts(&f.else_body, src, edits);
        }
        Stmt::IfCond(c) => {
            e(&c.expr, edits);
            stmts(&c.true_body, src, edits);
            stmts(&c.false_body, src, edits);
        }
        Stmt::WithBlock(w) => {
            for (a, b) in &w.assignments {
                e(a, edits);
                e(b, edits);
            }
            stmts(&w.body, src, edits);
        }
        Stmt::Set(x) => {
            acyclic_set(x, src, edits);
            e(&x.target, edits);
            e(&x.expr, edits);
        }
        Stmt::SetBlock(x) => {
            e(&x.target, edits);
            if let Some(f) = &x.filter {
                e(f, edits);
            }
            stmts(&x.body, src, edits);
        }
        Stmt::AutoEscape(a) => {
            e(&a.enabled, edits);
            stmts(&a.body, src, edits);
        }
        Stmt::FilterBlock(f) => {
            e(&f.filter, edits);
            stmts(&f.body, src, edits);
        }
        Stmt::Block(b) => stmts(&b.body, src, edits),
        Stmt::Import(i) => {
            e(&i.expr, edits);
            e(&i.name, edits);
        }
        Stmt::FromImport(i) => {
            e(&i.expr, edits);
            for (a, b) in &i.names {
                e(a, edits);
                if let Some(b) = b {
                    e(b, edits);
                }
            }
        }
        Stmt::Extends(x) => e(&x.name, edits),
        Stmt::Include(x) => e(&x.name, edits),
        Stmt::Macro(m) => {
            for a in m.args.iter().chain(&m.defaults) {
                e(a, edits);
            }
            stmts(&m.body, src, edits);
        }
        Stmt::CallBlock(c) => {
            e(&c.call.expr, edits);
            args(&c.call.args, src, edits);
            for a in c.macro_decl.args.iter().chain(&c.macro_decl.defaults) {
                e(a, edits);
            }
            stmts(&c.macro_decl.body, src, edits);
        }
        Stmt::Do(d) => {
            e(&d.call.expr, edits);
            args(&d.call.args, src, edits);
        }
    }
}

/// `{% set a.b = v %}` (and `{% set x, a.b = v, w %}`): the value is wrapped in one
/// [`ACYCLIC`] call per attribute target, `__llmtool_acyclic(a, (v))`, so assigning a
/// value that contains the namespace is an error before the cycle exists. The value's span
/// end is the parser's (reliable); its start is taken as just after the `=` that follows
/// the target (the parser's expression spans may start before the expression).
fn acyclic_set(x: &Set<'_>, src: &str, edits: &mut Edits) {
    let targets: Vec<&Expr<'_>> = match &x.target {
        Expr::GetAttr(g) => vec![&g.expr],
        Expr::List(l) => {
            l.items.iter().filter_map(|t| if let Expr::GetAttr(g) = t { Some(&g.expr) } else { None }).collect()
        }
        _ => return,
    };
    if targets.is_empty() {
        return;
    }
    let b = src.as_bytes();
    let after_target = x.target.span().end_offset as usize;
    let eq = b
        .get(after_target..)
        .and_then(|rest| rest.iter().position(|c| !c.is_ascii_whitespace()))
        .map(|p| after_target + p);
    let end = x.expr.span().end_offset as usize;
    let objs: Option<Vec<String>> = targets.into_iter().map(dotted).collect();
    let (Some(eq), Some(objs)) = (eq, objs) else {
        edits.unplaced = Some(after_target);
        return;
    };
    if b.get(eq) != Some(&b'=') || end <= eq || end > b.len() {
        edits.unplaced = Some(after_target);
        return;
    }
    // Outermost at both ends: opened before, closed after any edit of the value itself.
    let width = usize::MAX;
    for obj in objs {
        edits.push(Edit { at: eq + 1, del: 0, text: format!(" {ACYCLIC}({obj}, (").into(), class: 2, width });
        edits.push(Edit { at: end, del: 0, text: "))".into(), class: 0, width });
    }
}

/// The text of an assignment target's object, `a` or `a.b.c` (all the parser makes there),
/// rebuilt from the tree: the parser's span of a `GetAttr` starts at its last name.
fn dotted(x: &Expr<'_>) -> Option<String> {
    match x {
        Expr::Var(v) => Some(v.id.to_string()),
        Expr::GetAttr(g) => Some(format!("{}.{}", dotted(&g.expr)?, g.name)),
        _ => None,
    }
}

fn args(list: &[CallArg<'_>], src: &str, edits: &mut Edits) {
    for a in list {
        match a {
            CallArg::Pos(x) | CallArg::Kwarg(_, x) | CallArg::PosSplat(x) | CallArg::KwargSplat(x) => {
                expr(x, src, edits)
            }
        }
    }
}

fn expr(x: &Expr<'_>, src: &str, edits: &mut Edits) {
    match x {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            expr(&s.expr, src, edits);
            for p in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(p, src, edits);
            }
        }
        Expr::UnaryOp(u) => expr(&u.expr, src, edits),
        Expr::BinOp(b) => {
            expr(&b.left, src, edits);
            expr(&b.right, src, edits);
            let span = x.span();
            let (start, end) = (span.start_offset as usize, span.end_offset as usize);
            let (gap_start, gap_end) = (b.left.span().end_offset as usize, b.right.span().start_offset as usize);
            let (func, op) = match b.op {
                BinOpKind::Concat => (CAT, b'~'),
                BinOpKind::Add => (ADD, b'+'),
                BinOpKind::Mul => (MUL, b'*'),
                BinOpKind::In => {
                    let outer = (b.left.span().start_offset as usize, b.right.span().end_offset as usize);
                    return in_op(src, edits, outer, (gap_start, gap_end));
                }
                _ => return,
            };
            // Between the operands lie only whitespace, parentheses and the operator itself.
            let Some(op_at) = src.as_bytes()[gap_start..gap_end].iter().position(|&c| c == op) else {
                return;
            };
            let width = end - start;
            edits.push(Edit { at: start, del: 0, text: open(func).into(), class: 2, width });
            edits.push(Edit { at: gap_start + op_at, del: 1, text: ",".into(), class: 1, width });
            edits.push(Edit { at: end, del: 0, text: ")".into(), class: 0, width });
        }
        Expr::Compare(c) => {
            expr(&c.expr, src, edits);
            for op in &c.ops {
                expr(&op.expr, src, edits);
            }
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr, src, edits);
            expr(&i.true_expr, src, edits);
            if let Some(f) = &i.false_expr {
                expr(f, src, edits);
            }
        }
        Expr::Filter(f) => {
            if let Some(x) = &f.expr {
                expr(x, src, edits);
            }
            args(&f.args, src, edits);
        }
        Expr::Test(t) => {
            expr(&t.expr, src, edits);
            args(&t.args, src, edits);
        }
        Expr::GetAttr(g) => expr(&g.expr, src, edits),
        Expr::GetItem(g) => {
            expr(&g.expr, src, edits);
            expr(&g.subscript_expr, src, edits);
        }
        Expr::Call(c) => {
            expr(&c.expr, src, edits);
            args(&c.args, src, edits);
        }
        Expr::List(l) => {
            for i in &l.items {
                expr(i, src, edits);
            }
        }
        Expr::Map(m) => {
            for i in m.keys.iter().chain(&m.values) {
                expr(i, src, edits);
            }
        }
    }
}

/// `a in b` → `__llmtool_in(a , b)`; `a not in b` (the parser's `not (a in b)`, with both
/// keywords between the operands) → `(not __llmtool_in(a , b))`. Chained comparisons
/// (`a in b in c`) are parsed otherwise and stay as they are. The parser's span of an `in`
/// node starts at its statement, so the node's extent is taken from its operands (`left`
/// start, `right` end), widened over the parentheses the gap shows they carry.
fn in_op(src: &str, edits: &mut Edits, (left, right): (usize, usize), (gap_start, gap_end): (usize, usize)) {
    let gap = &src[gap_start..gap_end];
    let (Some(kw), Some(last)) = (gap.find(|ch: char| ch.is_ascii_alphabetic()), gap.rfind("in")) else {
        return;
    };
    let negated = gap[kw..].starts_with("not");
    let b = src.as_bytes();
    let mut start = left;
    for _ in 0..gap[..kw].matches(')').count() {
        match b[..start].iter().rposition(|c| !c.is_ascii_whitespace()) {
            Some(p) if b[p] == b'(' => start = p,
            _ => return,
        }
    }
    let mut end = right;
    for _ in 0..gap[last..].matches('(').count() {
        match b[end..].iter().position(|c| !c.is_ascii_whitespace()) {
            Some(p) if b[end + p] == b')' => end += p + 1,
            _ => return,
        }
    }
    let width = end - start;
    let (open, close) = if negated { ("(not __llmtool_in(", "))") } else { ("__llmtool_in(", ")") };
    edits.push(Edit { at: start, del: 0, text: open.into(), class: 2, width });
    edits.push(Edit { at: gap_start + kw, del: last + 2 - kw, text: ",".into(), class: 1, width });
    edits.push(Edit { at: end, del: 0, text: close.into(), class: 0, width });
}

fn open(func: &str) -> &'static str {
    match func {
        CAT => "__llmtool_cat(",
        ADD => "__llmtool_add(",
        _ => "__llmtool_mul(",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WhitespaceConfig {
        WhitespaceConfig { keep_trailing_newline: false, lstrip_blocks: true, trim_blocks: true }
    }

    #[test]
    fn operators_become_checked_calls() {
        let r = |s: &str| rewrite(s, "t", ws()).unwrap();
        assert_eq!(r("{{ a ~ b }}"), "{{ __llmtool_cat(a , b) }}");
        assert_eq!(r("{{ a ~ b ~ c }}"), "{{ __llmtool_cat(__llmtool_cat(a , b) , c) }}");
        assert_eq!(r("{{ (a) + (b) }}"), "{{ __llmtool_add((a) , (b)) }}");
        assert_eq!(r("{{ a ** 2 * 3 }}"), "{{ __llmtool_mul(a ** 2 , 3) }}");
        assert_eq!(r("{{ a + b * c }}"), "{{ __llmtool_add(a , __llmtool_mul(b , c)) }}");
        assert_eq!(
            r("{% set ns.s = ns.s ~ ns.s %}x ~ y"),
            "{% set ns.s = __llmtool_acyclic(ns, ( __llmtool_cat(ns.s , ns.s))) %}x ~ y"
        );
        assert_eq!(r("{{ '~' ~ x|join('+') }}"), "{{ __llmtool_cat('~' , x|join('+')) }}");
        assert_eq!(r("{% raw %}{{ a ~ b }}{% endraw %}"), "{% raw %}{{ a ~ b }}{% endraw %}");
        assert_eq!(r("{% if (a) in b %}{% endif %}"), "{% if __llmtool_in((a) , b) %}{% endif %}");
        assert_eq!(r("{{ a not in b ~ c }}"), "{{ (not __llmtool_in(a , __llmtool_cat(b , c))) }}");
        assert_eq!(r("{{ a < b < c }}"), "{{ a < b < c }}");
        assert_eq!(r("{% if ((a)) in (b) and c %}{% endif %}"), "{% if __llmtool_in(((a)) , (b)) and c %}{% endif %}");
        assert_eq!(
            r("{{ x ~ (a|string) not in ( b ) }}"),
            "{{ (not __llmtool_in(__llmtool_cat(x , (a|string)) , ( b ))) }}"
        );
    }

    #[test]
    fn namespace_assignments_are_checked_for_cycles() {
        let r = |s: &str| rewrite(s, "t", ws()).unwrap();
        assert_eq!(r("{% set ns.x = ns %}"), "{% set ns.x = __llmtool_acyclic(ns, ( ns)) %}");
        assert_eq!(r("{%- set ns.x=a~b -%}"), "{%- set ns.x= __llmtool_acyclic(ns, (__llmtool_cat(a,b))) -%}");
        assert_eq!(r("{% set a.b.c = x if y else z %}"), "{% set a.b.c = __llmtool_acyclic(a.b, ( x if y else z)) %}");
        assert_eq!(
            r("{% set x = ns %}{% set ns.l = [ns] %}"),
            "{% set x = ns %}{% set ns.l = __llmtool_acyclic(ns, ( [ns])) %}"
        );
        assert_eq!(r("{% set q, ns.y = 1, ns %}"), "{% set q, ns.y = __llmtool_acyclic(ns, ( 1, ns)) %}");
        assert_eq!(r("{% set ns.x %}{{ ns }}{% endset %}"), "{% set ns.x %}{{ ns }}{% endset %}");
    }
}
