//! JSON text exactly as Python's `json.dumps(value, indent=2, sort_keys=…, ensure_ascii=…)`
//! writes it (CPython Lib/json/encoder.py): `", "`-free item separator `","` + newline +
//! indent, key separator `": "`, empty containers as `[]` / `{}`, floats as `repr(float)`,
//! strings escaped per `ESCAPE` / `ESCAPE_ASCII`.

use serde_json::Value;

/// `json.dumps(value, indent=2, sort_keys, ensure_ascii)` (no trailing newline).
pub fn to_python_json(value: &Value, sort_keys: bool, ensure_ascii: bool) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0, sort_keys, ensure_ascii);
    out
}

fn indent(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_value(out: &mut String, v: &Value, level: usize, sort_keys: bool, ascii: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&python_float_repr(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => write_str(out, s, ascii),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                write_value(out, x, level + 1, sort_keys, ascii);
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            if sort_keys {
                // Python compares str by code point; UTF-8 byte order is the same order.
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                write_str(out, k, ascii);
                out.push_str(": ");
                write_value(out, x, level + 1, sort_keys, ascii);
            }
            indent(out, level);
            out.push('}');
        }
    }
}

/// `encode_basestring` / `encode_basestring_ascii` of CPython's json module.
fn write_str(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            // ESCAPE_ASCII = r'([\\"]|[^\ -~])': everything outside ' '..='~' (DEL included).
            c if ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip (as Rust's formatting gives),
/// in fixed notation when the decimal exponent is in -4 ..= 15, otherwise `d.ddde±XX` with at
/// least two exponent digits; integral values in fixed notation end in `.0`
/// (CPython `float_repr_style = 'short'`, `PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0)`).
/// Non-finite values as `json.dumps` writes them: `NaN`, `Infinity`, `-Infinity`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // `{:e}` gives the shortest round-trip digit count: "-1.2345e-7", "1e16", "0e0". When two
    // decimals of that length are equally near x, Rust's shortest mode rounds the tie up and
    // Python's dtoa to even; exact mode at the same length is correctly rounded with ties to
    // even, and the nearest decimal of a length that round-trips also round-trips.
    let shortest = format!("{:e}", x);
    let n_digits = shortest.split('e').next().unwrap_or("").bytes().filter(u8::is_ascii_digit).count();
    let e = format!("{:.*e}", n_digits.saturating_sub(1), x);
    let (mant, exp) = e.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    // decpt = position of the decimal point relative to the digits (CPython's naming).
    let decpt = exp + 1;
    if (-3..=16).contains(&decpt) {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let d = decpt as usize;
            if digits.len() <= d {
                out.push_str(&digits);
                for _ in digits.len()..d {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..d]);
                out.push('.');
                out.push_str(&digits[d..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}
