//! `--max-shard-size` values.

use super::SafetensorsError;

/// Parses a size like transformers' `convert_file_size_to_int` (utils/hub.py): decimal units
/// `KB`/`MB`/`GB` (10^3, 10^6, 10^9; a lowercase final `b`, e.g. `5Gb`, means bits, divided by
/// 8), binary units `KiB`/`MiB`/`GiB` (2^10, 2^20, 2^30), units matched case-insensitively.
/// Also accepted: a bare byte count (`123`), `B`, `TB`/`TiB`, surrounding whitespace, and a
/// decimal fraction (`1.5GB`, rounded down to whole bytes).
pub fn parse_size(s: &str) -> Result<u64, SafetensorsError> {
    let bad = |reason: &str| SafetensorsError::BadSize { input: s.to_string(), reason: reason.into() };
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim_start());
    if num.is_empty() {
        return Err(bad("no number"));
    }
    let bits = unit.len() >= 2 && unit.ends_with('b') && !unit.to_ascii_uppercase().ends_with("IB");
    let mult: u128 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        "TIB" => 1 << 40,
        _ => return Err(bad("unknown unit")),
    };
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(bad("not a number"));
    }
    if int_part.len() > 20 || frac_part.len() > 18 {
        return Err(bad("too many digits"));
    }
    let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| bad("not a number"))? };
    let frac: u128 = if frac_part.is_empty() { 0 } else { frac_part.parse().map_err(|_| bad("not a number"))? };
    let scale = 10u128.pow(frac_part.len() as u32);
    // (int + frac/scale) * mult, exactly, rounded down.
    let mut bytes = int * mult + frac * mult / scale;
    if bits {
        bytes /= 8;
    }
    u64::try_from(bytes).map_err(|_| bad("too large"))
}
