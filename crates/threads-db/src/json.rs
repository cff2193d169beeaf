//! JSON helpers of the document store: paths, one total order of values, and an encoding of
//! scalar values whose byte order is that order (the keys of indexes).

use std::cmp::Ordering;

use serde_json::Value;

/// A path into a document: field names separated by dots; a segment of digits also indexes
/// arrays (`"tags.0"`). Field names containing dots cannot be addressed.
pub fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = doc;
    for segment in path.split('.') {
        at = match at {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Whether `path` is well formed: non-empty segments.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty() && path.split('.').all(|s| !s.is_empty())
}

/// The rank of a value's type in the total order: null < booleans < numbers < strings <
/// arrays < objects.
pub const fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn number(value: &serde_json::Number) -> f64 {
    let n = value.as_f64().unwrap_or(0.0);
    if n == 0.0 { 0.0 } else { n }
}

/// A number's exact position among numbers: its nearest double (rounding is monotone, so
/// this orders every pair whose doubles differ), then its exact integer value (integers
/// beyond 2^53 that share a double; an integral double counts as that integer, any other
/// as 0, since no integer shares its double).
fn exact(value: &serde_json::Number) -> (f64, i128) {
    let f = number(value);
    let tie = if let Some(i) = value.as_i64() {
        i128::from(i)
    } else if let Some(u) = value.as_u64() {
        i128::from(u)
    } else if f.fract() == 0.0 && f.abs() < 1.0e38 {
        // Integral and within i128: exact.
        #[allow(clippy::cast_possible_truncation)]
        let i = f as i128;
        i
    } else {
        0
    };
    (f, tie)
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    let (fa, ta) = exact(a);
    let (fb, tb) = exact(b);
    fa.total_cmp(&fb).then(ta.cmp(&tb))
}

/// The total order of JSON values: by type rank, then numbers by value, strings by bytes,
/// arrays element by element, objects by their canonical text.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                match compare(p, q) {
                    Ordering::Equal => {}
                    other => return other,
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Whether two values are equal in that order (so `1` equals `1.0`).
pub fn equal(a: &Value, b: &Value) -> bool {
    compare(a, b) == Ordering::Equal
}

/// The index encoding of a scalar value (`None` for arrays and objects, which are not
/// indexed). Comparing encodings byte by byte compares values in the total order, and no
/// encoding is a prefix of another, so a document id can follow it.
pub fn encode_scalar(value: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    match value {
        Value::Null => out.push(0x01),
        Value::Bool(b) => {
            out.push(0x02);
            out.push(u8::from(*b));
        }
        Value::Number(n) => {
            // The double in an order-preserving form, then the exact integer (sign bit
            // flipped, big-endian): byte order is `compare`'s order, exactly.
            out.push(0x03);
            let (f, tie) = exact(n);
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes());
            out.extend_from_slice(&((tie as u128) ^ (1 << 127)).to_be_bytes());
        }
        Value::String(s) => {
            out.push(0x04);
            escape_into(s.as_bytes(), &mut out);
            out.extend_from_slice(&[0x00, 0x00]);
        }
        Value::Array(_) | Value::Object(_) => return None,
    }
    Some(out)
}

/// The index encoding of where a path holds nothing: before every value, as queries sort
/// a missing value.
pub const MISSING: u8 = 0x00;

/// The index encoding of any value: a scalar as [`encode_scalar`]; an array as `05`, its
/// items' encodings, `00`; an object as `06`, its JSON text written as a string's bytes
/// are, `00 00`. Byte order is [`compare`]'s order for every pair of values, and no
/// encoding is a prefix of another (nor of [`MISSING`] followed by anything).
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_value_into(value, &mut out);
    out
}

fn encode_value_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Array(items) => {
            out.push(0x05);
            for item in items {
                encode_value_into(item, out);
            }
            // Below every tag: an array that is a prefix of another sorts first.
            out.push(0x00);
        }
        Value::Object(_) => {
            out.push(0x06);
            escape_into(value.to_string().as_bytes(), out);
            out.extend_from_slice(&[0x00, 0x00]);
        }
        scalar => {
            if let Some(enc) = encode_scalar(scalar) {
                out.extend_from_slice(&enc);
            }
        }
    }
}

/// The encoding of every string starting with `prefix`, without its terminator: the index
/// keys of those strings start with it.
pub fn encode_string_prefix(prefix: &str) -> Vec<u8> {
    let mut out = vec![0x04];
    escape_into(prefix.as_bytes(), &mut out);
    out
}

fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0x00 {
            out.push(0xFF);
        }
    }
}

/// The type tag that starts the encodings of values of `value`'s type.
pub const fn tag(value: &Value) -> u8 {
    match value {
        Value::Null => 0x01,
        Value::Bool(_) => 0x02,
        Value::Number(_) => 0x03,
        Value::String(_) => 0x04,
        Value::Array(_) => 0x05,
        Value::Object(_) => 0x06,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            ((1u64 << 53)..(1u64 << 54)).prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|n| json!(n)),
            prop_oneof![
                Just(9.007_199_254_740_992e15),
                Just(1.8446744073709552e19),
                Just(-0.5)
            ]
            .prop_map(|n| json!(n)),
            "[a-c\\x00]{0,4}".prop_map(Value::String),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[ab\\x00\"]{0,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn encoding_order_is_the_value_order(a in scalar(), b in scalar()) {
            let (ea, eb) = (encode_scalar(&a).expect("scalar"), encode_scalar(&b).expect("scalar"));
            prop_assert_eq!(ea.cmp(&eb), compare(&a, &b));
            // No encoding is a proper prefix of another.
            if ea != eb {
                prop_assert!(!eb.starts_with(&ea) && !ea.starts_with(&eb));
            }
        }

        #[test]
        fn every_value_encodes_in_the_value_order(a in any_value(), b in any_value()) {
            let (ea, eb) = (encode_value(&a), encode_value(&b));
            prop_assert_eq!(ea.cmp(&eb), compare(&a, &b), "{} {}", a, b);
            if ea != eb {
                prop_assert!(!eb.starts_with(&ea) && !ea.starts_with(&eb));
            }
            prop_assert!(ea[0] > MISSING);
            if let Some(scalar) = encode_scalar(&a) {
                prop_assert_eq!(scalar, ea);
            }
        }

        #[test]
        fn string_prefixes_select_their_strings(s in "[a-c\\x00]{0,4}", p in "[a-c\\x00]{0,2}") {
            let key = encode_scalar(&Value::String(s.clone())).expect("scalar");
            prop_assert_eq!(key.starts_with(&encode_string_prefix(&p)), s.starts_with(&p));
        }
    }

    #[test]
    fn paths_reach_fields_and_items() {
        let doc = json!({"a": {"b": [10, {"c": true}]}});
        assert_eq!(get(&doc, "a.b.0"), Some(&json!(10)));
        assert_eq!(get(&doc, "a.b.1.c"), Some(&json!(true)));
        assert_eq!(get(&doc, "a.x"), None);
        assert!(valid_path("a.b") && !valid_path("a..b") && !valid_path(""));
        assert!(equal(&json!(1), &json!(1.0)));
        // Integers beyond 2^53 share a double but neither compare nor encode equal.
        let (a, b) = (
            json!(9_007_199_254_740_993u64),
            json!(9_007_199_254_740_992u64),
        );
        assert_eq!(compare(&a, &b), Ordering::Greater);
        assert_ne!(encode_scalar(&a), encode_scalar(&b));
        assert!(equal(
            &json!(9_007_199_254_740_992u64),
            &json!(9.007_199_254_740_992e15)
        ));
        assert_eq!(compare(&json!(-0.0), &json!(0)), Ordering::Equal);
    }

    /// Index value encodings of fixed values: docs/FORMAT.md ("Rows of the document
    /// view"). Rerun with `THREADS_BLESS=1` after a deliberate format change (and bump the
    /// document view's reducer version).
    #[test]
    fn golden_index_values() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1.5),
            json!(0),
            json!(1),
            json!(1.0),
            json!(9_007_199_254_740_993u64),
            json!(-9_223_372_036_854_775_808i64),
            json!(18_446_744_073_709_551_615u64),
            json!("a\u{0}b"),
            json!([]),
            json!([1, "a", [null]]),
            json!({"b": [true], "a": "x"}),
        ];
        let mut text = String::new();
        for v in &values {
            let enc = encode_value(v);
            let hex: String = enc.iter().map(|x| format!("{x:02x}")).collect();
            text.push_str(&format!("{v} {hex}\n"));
        }
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../test_data/docs/index-values.txt"
        );
        if std::env::var_os("THREADS_BLESS").is_some() {
            std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test_data/docs"))
                .expect("dir");
            std::fs::write(path, &text).expect("write golden file");
        }
        let golden = std::fs::read_to_string(path).expect("test_data/docs/index-values.txt exists");
        assert_eq!(
            text, golden,
            "the index encoding changed; if on purpose, rerun with THREADS_BLESS=1"
        );
    }
}
