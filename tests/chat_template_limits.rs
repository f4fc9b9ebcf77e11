//! Hostile chat templates (issue 18): each must stop fast with `ChatTemplateError::Limit`
//! naming the template and the bound, with bounded memory; `llmtool generate --chat` on an HF
//! dir whose chat_template.jinja doubles a string 40 times must fail the same way under a
//! 2 GiB address-space cap (it used to allocate until it died).

mod common;

use std::time::{Duration, Instant};

use common::root;
use llmtool::chat_template::{ChatTemplate, ChatTemplateError, Limit, Message};

/// The template of the issue: 40 doublings of "xx" through a namespace.
const DOUBLING: &str =
    r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"#;

/// Renders `src` and returns the limit it hit (panicking on anything else), checking it
/// stopped within a few seconds.
fn limit_of(src: &str) -> Limit {
    let t = ChatTemplate::with_origin(src, "<s>", "</s>", "hostile.jinja").unwrap();
    let start = Instant::now();
    let r = t.render(&[Message::new("user", "hi")], true);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{src}: took {took:?}");
    match r {
        Err(ChatTemplateError::Limit { template, limit }) => {
            assert_eq!(template, "hostile.jinja");
            limit
        }
        other => panic!("{src}: expected a limit, got {other:?}"),
    }
}

#[test]
fn exponential_string_growth_stops_at_the_string_limit() {
    for src in [
        DOUBLING,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s * 2 %}{% endfor %}{{ ns.s }}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = [ns.s, ns.s]|join %}{% endfor %}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s|replace("x", "xx") %}{% endfor %}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s.replace("x", "xx") %}{% endfor %}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = "{0}{0}".format(ns.s) %}{% endfor %}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = "%s%s"|format(ns.s, ns.s) %}{% endfor %}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = [ns.s, ns.s]|tojson %}{% endfor %}"#,
        r#"{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = [ns.s, ns.s]|string %}{% endfor %}"#,
        r#"{{ "x"|indent(100000000000) }}"#,
        r#"{{ "x" * 100000000 }}"#,
        r#"{{ 1|tojson(indent=1000000000) }}"#,
    ] {
        assert_eq!(limit_of(src), Limit::String, "{src}");
    }
    // A small value that prints huge: 100 × 100 references to a 100,000-item list.
    let nest = r#"{% set a = range(100000)|list %}{% set b = [a] * 100 %}{% set c = [b] * 100 %}"#;
    for conv in [
        "{{ c }}",
        "{{ c|upper }}",
        "{{ c|lower }}",
        "{{ c|title }}",
        "{{ c|capitalize }}",
        "{{ c|trim }}",
        "{{ c|e }}",
        "{{ c|safe }}",
        "{{ c|string }}",
        "{{ c ~ '' }}",
        "{{ c|replace('1', '2') }}",
        "{{ c|indent(2) }}",
        "{{ c|tojson }}",
        "{{ c|pprint }}",
        "{{ [c]|join }}",
        "{{ '%s'|format(c) }}",
        "{{ c in 'abc' }}",
        "{{ c not in 'abc' }}",
    ] {
        let src = format!("{nest}{conv}");
        assert_eq!(limit_of(&src), Limit::String, "{src}");
    }
}

#[test]
fn growth_through_captures_stops() {
    // A macro's output is captured into a string: each call emits its argument twice.
    let src = r#"{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = d(ns.s) %}{% endfor %}"#;
    assert_eq!(limit_of(src), Limit::String);
    // Many strings under the per-string bound: the per-render total stops them.
    let src = r#"{% set ns = namespace(l=[]) %}{% set big = "x" * 1000000 %}{% for i in range(100000) %}{% set ns.l = ns.l + [big ~ i] %}{% endfor %}"#;
    assert_eq!(limit_of(src), Limit::Produced);
}

#[test]
fn list_growth_stops_at_the_item_limit() {
    for src in [
        r#"{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}"#,
        r#"{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l * 2 %}{% endfor %}{{ ns.l|length }}"#,
        r#"{{ [1]|batch(10000000000, 0)|list|length }}"#,
        r#"{{ [1]|slice(10000000000)|list|length }}"#,
        r#"{% set l = range(100000)|list %}{{ ([l] * 1000)|sum|length }}"#,
    ] {
        assert_eq!(limit_of(src), Limit::Items, "{src}");
    }
}

#[test]
fn huge_loops_run_out_of_fuel() {
    for src in [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
        // Exponential work without growth: each level calls the next twice.
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(25) }}",
    ] {
        assert_eq!(limit_of(src), Limit::Fuel, "{src}");
    }
}

#[test]
fn deep_recursion_stops_at_the_recursion_limit() {
    for src in [
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% for x in [[[[1]]]] recursive %}{{ loop([x, x]) }}{% endfor %}",
    ] {
        assert_eq!(limit_of(src), Limit::Recursion, "{src}");
    }
    // Nesting that real templates use (tool schemas a few levels deep) stays well inside.
    let t = ChatTemplate::new("{% macro f(n) %}{% if n %}({{ f(n - 1) }}){% endif %}{% endmacro %}{{ f(30) }}", "", "")
        .unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "(".repeat(30) + &")".repeat(30));
    for src in [] as [&str; 0] {
        assert_eq!(limit_of(src), Limit::Recursion, "{src}");
    }
}

#[test]
fn values_nested_at_run_time_do_not_overflow_the_stack() {
    // Each iteration wraps the list once more: printing or dropping it recurses per level.
    let nest = "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}";
    for tail in ["{{ ns.l|length }}", "{{ ns.l }}", "{{ ns.l|tojson }}", "{{ ns.l ~ '' }}"] {
        let t = ChatTemplate::new(&format!("{nest}{tail}"), "", "").unwrap();
        match t.render(&[], false) {
            Ok(_) | Err(ChatTemplateError::Limit { .. }) | Err(ChatTemplateError::Render(_)) => {}
            Err(e) => panic!("{tail}: {e}"),
        }
    }
}

#[test]
fn output_is_bounded() {
    let src = r#"{% set big = "x" * 1000 %}{% for i in range(100000) %}{{ big }}{% endfor %}"#;
    assert_eq!(limit_of(src), Limit::Output);
}

#[test]
fn oversized_source_is_refused() {
    let src = "x".repeat(llmtool::chat_template::MAX_SOURCE + 1);
    match ChatTemplate::with_origin(&src, "", "", "big.jinja") {
        Err(ChatTemplateError::Limit { template, limit: Limit::Source }) => assert_eq!(template, "big.jinja"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn templates_read_no_files() {
    // There is no loader: include / import / extends find nothing.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "SECRET").unwrap();
    let p = secret.display();
    for src in [
        format!("{{% include '{p}' %}}"),
        format!("{{% import '{p}' as x %}}"),
        format!("{{% extends '{p}' %}}"),
        format!("{{% from '{p}' import y %}}"),
    ] {
        let t = ChatTemplate::new(&src, "", "").unwrap();
        match t.render(&[], false) {
            Err(ChatTemplateError::Render(e)) => assert_eq!(e.kind(), minijinja::ErrorKind::TemplateNotFound, "{src}"),
            other => panic!("{src}: {other:?}"),
        }
    }
}

#[test]
fn real_templates_keep_their_operators() {
    // `~`, `+`, `*` with ordinary sizes still do what they did (numbers, strings, lists).
    let t = ChatTemplate::new(
        "{{ 1 + 2 }} {{ 1.5 + 1 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 2 }} {{ 2 * 3 }} {{ [0] * 2 }} \
         {{ 1 ~ none ~ 'x' }} {{ (messages|length) * 10 + 1 }}{% for m in messages %}{{ loop.index0 + 1 }}{% endfor %} \
         {{ 'a' in 'cat' }} {{ 1 not in [1] }} {{ 'k' in {'k': 1} }} {{ 1 < 2 < 3 }}",
        "",
        "",
    )
    .unwrap();
    assert_eq!(
        t.render(&[Message::new("user", "u")], false).unwrap(),
        "3 2.5 ab [1, 2] abab 6 [0, 0] 1Nonex 111 True False True True"
    );
}

#[test]
fn limits_leave_room_for_long_chats() {
    // The largest fixture templates over 256 messages of 2 KiB each: far from every bound.
    let msg = "word ".repeat(400);
    let conv: Vec<Message> =
        (0..256).map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, msg.as_str())).collect();
    for name in ["llama31", "qwen3", "gemma3", "command_r", "phi35"] {
        let p = root().join("fixtures/models").join(name).join("chat_template.jinja");
        let src = std::fs::read_to_string(&p).unwrap();
        let t = ChatTemplate::with_origin(&src, "<s>", "</s>", &p.display().to_string()).unwrap();
        let out = t.render(&conv, true).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out.len() > 256 * msg.len(), "{name}");
        let fuel = llmtool::chat_template::last_fuel_used();
        println!("{name}: {fuel} instructions for 256 messages");
        assert!(fuel > 0 && fuel < llmtool::chat_template::FUEL / 10, "{name}: {fuel}");
    }
}

#[test]
fn generate_chat_with_a_doubling_template_fails_fast_under_a_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("fixtures/models/llama");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let jinja = dir.path().join("chat_template.jinja");
    std::fs::write(&jinja, DOUBLING).unwrap();
    let start = Instant::now();
    // 2 GiB of address space: the doubling would need 2 TiB.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 2097152; exec '{}' generate '{}' --chat -p hi -n 1",
            env!("CARGO_BIN_EXE_llmtool"),
            dir.path().display()
        ))
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&jinja.display().to_string()), "{stderr}");
    assert!(stderr.contains("exceeded its limit on string size"), "{stderr}");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// fuzz/artifacts/chat_template/crash-85f7ffd35d05f154af5561383ef15d671bdd748c: minijinja's
/// format parser panicked (slicing inside a character) on a printf key holding a multibyte
/// character; the same for a `str.format` index. Now an error, in the normal test suite.
#[test]
fn fuzz_crash_85f7ffd3_format_key_with_a_multibyte_char_is_an_error() {
    let crash = "{ ~}{{ \"%s-%(Edebug{ messa{t% \u{d6cb}\u{7d8}sls|\u{d6cb}\u{7d8}slmtfes|o_u)tojson(indent=2) }}\
                 {t__llmdfhc\nassista\"|format(to_2) }}{ \"%-msat(to";
    for src in [
        crash,
        "{{ '%(\u{d6cb})s'|format(a=1) }}",
        "{{ '%(ab\u{e9}'|format(a=1) }}",
        "{{ '{0[\u{d6cb}]}'.format([1]) }}",
    ] {
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert!(t.render(&[Message::new("user", "hi")], false).is_err(), "{src}");
    }
    // ASCII keys and non-ASCII text outside keys still format.
    let t = ChatTemplate::new("{{ '\u{e9}%(a)s\u{e9}'|format(a=1) }} {{ '\u{e9}{0}{{'.format(2) }}", "", "").unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "\u{e9}1\u{e9} \u{e9}2{");
}

/// The 30-s fuzz smoke's segfault (CI, 2026-12-07; no input saved: a stack overflow): a
/// namespace assigned into itself, then printed — printing, `|string`, `|pprint`, `|items`,
/// `|dictsort`, `|unique` and attribute chains through it recursed without end.
#[test]
fn fuzz_crash_namespace_cycle_is_refused_before_it_exists() {
    for src in [
        "{% set ns = namespace() %}{% set ns.x = ns %}{{ ns }}",
        "{% set ns = namespace() %}{% set ns.x = ns %}{{ ns|pprint }}",
        "{% set ns = namespace(l=[]) %}{% set ns.l = [1, [ns]] %}{{ ns|string }}",
        "{% set a = namespace() %}{% set b = namespace(a=a) %}{% set a.b = b %}{{ a }}",
        "{% set a = namespace() %}{% set b = namespace() %}{% set a.b = b %}{% set b.a = {'k': [a]} %}{{ a }}",
        "{% set ns = namespace() %}{% set q, ns.x = 1, ns %}{{ ns }}",
    ] {
        assert_eq!(limit_of(src), Limit::Cycle, "{src}");
    }
}

#[test]
fn namespace_assignments_without_a_cycle_render_as_before() {
    let messages: Vec<Message> = (0..256).map(|i| Message::new("user", format!("m{i}"))).collect();
    let src = "{% set ns = namespace(l=[], n=none) %}{% for m in messages %}{% set ns.l = ns.l + [m] %}{% endfor %}\
               {% set a = namespace() %}{% set b = namespace(v=1) %}{% set a.b = b %}{% set ns.n = [a, a] %}\
               {{ ns.l|length }} {{ ns.l[-1].content }} {{ a.b.v }} {{ ns.n|length }}";
    let t = ChatTemplate::new(src, "", "").unwrap();
    assert_eq!(t.render(&messages, false).unwrap(), "256 m255 1 2");
}

/// Operator chains parse into trees one level per operator (minijinja bounds only bracket
/// nesting); a 40 KB chain overflowed the stack while compiling.
#[test]
fn long_operator_chains_are_refused_or_compile_on_any_stack() {
    use llmtool::chat_template::MAX_TAG_TOKENS;
    for src in [
        format!("{{{{{}1}}}}", "-".repeat(40_000)),
        format!("{{{{1{}}}}}", "-1".repeat(40_000)),
        format!("{{{{x{}}}}}", "|e".repeat(40_000)),
        format!("{{% if x{} %}}{{% endif %}}", ".a".repeat(40_000)),
    ] {
        match ChatTemplate::with_origin(&src, "", "", "chain.jinja") {
            Err(ChatTemplateError::Limit { template, limit: Limit::Expression }) => assert_eq!(template, "chain.jinja"),
            other => panic!("{}…: {:?}", &src[..20], other.err()),
        }
    }
    // Just under the bound, from a thread with a 256 KiB stack: compiling runs on a stack
    // of its own.
    let src = format!("{{{{1{}}}}}", "-1".repeat(MAX_TAG_TOKENS / 2 - 2));
    let out = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || ChatTemplate::new(&src, "", "").and_then(|t| t.render(&[], false)))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(out, format!("{}", 1 - (MAX_TAG_TOKENS as i64 / 2 - 2)));
}
