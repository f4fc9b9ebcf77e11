//! GGUF metadata values: the 13 GGUF value types, arrays typed and nestable, entries kept
//! in file order so that a file read and written back is byte-identical.

use indexmap::IndexMap;

/// GGUF `gguf_type` ids of metadata values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous array; `Array` holds nested arrays (each with its own element type).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<MetaArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetaValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(_) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type widened to u64 (negative values → None).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type as i64 (u64 above i64::MAX → None).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::U8(v) => Some(v as i64),
            MetaValue::U16(v) => Some(v as i64),
            MetaValue::U32(v) => Some(v as i64),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            MetaValue::I8(v) => Some(v as i64),
            MetaValue::I16(v) => Some(v as i64),
            MetaValue::I32(v) => Some(v as i64),
            MetaValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// F32 or F64 (or an integer) as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A float as JSON; JSON has no NaN or infinities, so those become the strings `"NaN"`,
/// `"inf"`, `"-inf"` (what Rust's `f64::to_string` prints and `str::parse` reads).
fn float_json(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::Value::from(x)
    } else {
        serde_json::Value::String(x.to_string())
    }
}

impl MetaValue {
    /// The value as JSON (numbers, bools, strings, arrays), as gguf-py's `contents()` gives
    /// it; f32 values are widened exactly to f64.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            MetaValue::U8(x) => J::from(*x),
            MetaValue::I8(x) => J::from(*x),
            MetaValue::U16(x) => J::from(*x),
            MetaValue::I16(x) => J::from(*x),
            MetaValue::U32(x) => J::from(*x),
            MetaValue::I32(x) => J::from(*x),
            MetaValue::F32(x) => float_json(*x as f64),
            MetaValue::Bool(x) => J::from(*x),
            MetaValue::String(x) => J::from(x.as_str()),
            MetaValue::Array(a) => a.to_json(),
            MetaValue::U64(x) => J::from(*x),
            MetaValue::I64(x) => J::from(*x),
            MetaValue::F64(x) => float_json(*x),
        }
    }
}

impl MetaArray {
    /// The items as a JSON array (see [`MetaValue::to_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        fn all<T: Copy>(v: &[T], f: impl Fn(T) -> J) -> J {
            J::Array(v.iter().map(|&x| f(x)).collect())
        }
        match self {
            MetaArray::U8(v) => all(v, J::from),
            MetaArray::I8(v) => all(v, J::from),
            MetaArray::U16(v) => all(v, J::from),
            MetaArray::I16(v) => all(v, J::from),
            MetaArray::U32(v) => all(v, J::from),
            MetaArray::I32(v) => all(v, J::from),
            MetaArray::F32(v) => all(v, |x| float_json(x as f64)),
            MetaArray::Bool(v) => all(v, J::from),
            MetaArray::String(v) => J::Array(v.iter().map(|s| J::from(s.as_str())).collect()),
            MetaArray::Array(v) => J::Array(v.iter().map(MetaArray::to_json).collect()),
            MetaArray::U64(v) => all(v, J::from),
            MetaArray::I64(v) => all(v, J::from),
            MetaArray::F64(v) => all(v, float_json),
        }
    }

    pub fn element_type(&self) -> ValueType {
        match self {
            MetaArray::U8(_) => ValueType::U8,
            MetaArray::I8(_) => ValueType::I8,
            MetaArray::U16(_) => ValueType::U16,
            MetaArray::I16(_) => ValueType::I16,
            MetaArray::U32(_) => ValueType::U32,
            MetaArray::I32(_) => ValueType::I32,
            MetaArray::F32(_) => ValueType::F32,
            MetaArray::Bool(_) => ValueType::Bool,
            MetaArray::String(_) => ValueType::String,
            MetaArray::Array(_) => ValueType::Array,
            MetaArray::U64(_) => ValueType::U64,
            MetaArray::I64(_) => ValueType::I64,
            MetaArray::F64(_) => ValueType::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::String(v) => v.len(),
            MetaArray::Array(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Metadata entries in insertion (file) order with lookup by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: IndexMap<String, MetaValue>,
}

impl Metadata {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.entries.get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Inserts or replaces (keeping the old position when replacing); returns the old value.
    pub fn insert(&mut self, key: impl Into<String>, value: MetaValue) -> Option<MetaValue> {
        self.entries.insert(key.into(), value)
    }

    /// Inserts a new key at position `index` (clamped to the end), or replaces an existing
    /// key's value in place.
    pub fn insert_at(&mut self, index: usize, key: impl Into<String>, value: MetaValue) {
        let key = key.into();
        if let Some(v) = self.entries.get_mut(&key) {
            *v = value;
        } else {
            self.entries.shift_insert(index.min(self.entries.len()), key, value);
        }
    }

    /// The position of a key in file order.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.entries.get_index_of(key)
    }

    /// Removes a key, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<MetaValue> {
        self.entries.shift_remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| k.as_str())
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    pub fn get_array(&self, key: &str) -> Option<&MetaArray> {
        self.get(key)?.as_array()
    }
}

impl FromIterator<(String, MetaValue)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, MetaValue)>>(iter: I) -> Self {
        Metadata { entries: iter.into_iter().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_at_places_new_keys_and_replaces_existing_ones_in_place() {
        let mut md = Metadata::new();
        md.insert("a", MetaValue::U8(1));
        md.insert("c", MetaValue::U8(3));
        md.insert_at(1, "b", MetaValue::U8(2));
        md.insert_at(99, "d", MetaValue::U8(4));
        md.insert_at(0, "c", MetaValue::U8(30));
        assert_eq!(md.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(md.get_u64("c"), Some(30));
        assert_eq!(md.index_of("d"), Some(3));
    }

    #[test]
    fn non_finite_floats_become_strings_in_json() {
        assert_eq!(MetaValue::F32(f32::NAN).to_json(), serde_json::json!("NaN"));
        assert_eq!(MetaValue::F64(f64::NEG_INFINITY).to_json(), serde_json::json!("-inf"));
        let nested = MetaValue::Array(MetaArray::Array(vec![MetaArray::I8(vec![-1]), MetaArray::F32(vec![0.5])]));
        assert_eq!(nested.to_json(), serde_json::json!([[-1], [0.5]]));
    }
}
