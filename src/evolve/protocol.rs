//! The JSON-lines protocol between a search driver and its workers.
//!
//! - `llmtool evolve ask` prints one **request** per candidate:
//!   `{"generation": 3, "index": 0, "genome": ["0.61", "0.42"]}`. Genome values are strings
//!   in Rust's shortest round-trip form (as in `checkpoint.json`), so they reach the worker
//!   bit-exact whatever JSON library passes them on; plain JSON numbers are accepted too (then
//!   exact only as far as the JSON reader rounds correctly). A bare array is a request with
//!   generation and index 0. Other keys (e.g. a driver's `"id"`) are echoed back.
//! - `llmtool eval-worker` answers each request with one **record**: the request's
//!   generation, index and echoed keys, `"ok": true`, the history row's fields exactly as the
//!   checkpoint stores them (`genome`, `params`, `score` with `fitness` and `components`,
//!   `seconds`, floats as round-trip strings), a plain-number `"fitness"` for readers that want
//!   one (null for −inf), and `"worker"`. A request that cannot be evaluated gets
//!   `{"ok": false, "error": "…"}` with the same generation / index / echoed keys.
//! - `llmtool evolve tell` reads records back into history rows ([`parse_record`]).

use serde_json::{Map, Value};

use super::state::HistoryRow;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("expected an object with a \"genome\" array, or an array")]
    Shape,
    #[error("genome value {index} ({value}) is not a finite number")]
    Value { index: usize, value: String },
    #[error("\"{key}\" must be a non-negative integer")]
    Counter { key: &'static str },
    #[error("record: {0}")]
    Record(String),
    #[error("candidate {index} of generation {generation} failed on worker {worker}: {error}")]
    Failed { generation: u64, index: usize, worker: String, error: String },
}

/// One candidate to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub generation: u64,
    pub index: usize,
    pub genome: Vec<f64>,
    /// Keys of the request other than generation / index / genome, echoed in the record.
    pub extra: Map<String, Value>,
}

/// The request line of candidate `index` of `generation` (what `evolve ask` prints).
pub fn request_line(generation: u64, index: usize, genome: &[f64]) -> String {
    let g: Vec<String> = genome.iter().map(|x| format!("{x:?}")).collect();
    serde_json::json!({"generation": generation, "index": index, "genome": g}).to_string()
}

/// The generation and index of a request or record object, if it says them.
fn counter(o: &Map<String, Value>, key: &'static str) -> Result<u64, ProtocolError> {
    match o.get(key) {
        None => Ok(0),
        Some(v) => v.as_u64().ok_or(ProtocolError::Counter { key }),
    }
}

/// A request that cannot be evaluated: why, and the keys to echo in its error record.
pub type BadRequest = Box<(ProtocolError, Map<String, Value>)>;

/// Parses a request line. On an error, the returned pair still carries what could be read of
/// the echoed keys, so the error record can name the candidate.
pub fn parse_request(line: &str) -> Result<Request, BadRequest> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| Box::new((ProtocolError::Json(e.to_string()), Map::new())))?;
    let (mut obj, genome) = match v {
        Value::Array(a) => (Map::new(), a),
        Value::Object(mut o) => match o.remove("genome") {
            Some(Value::Array(a)) => (o, a),
            _ => return Err(Box::new((ProtocolError::Shape, o))),
        },
        _ => return Err(Box::new((ProtocolError::Shape, Map::new()))),
    };
    let head = |obj: &Map<String, Value>| -> Result<(u64, usize), ProtocolError> {
        Ok((counter(obj, "generation")?, counter(obj, "index")? as usize))
    };
    let (generation, index) = match head(&obj) {
        Ok(h) => h,
        Err(e) => {
            obj.remove("generation");
            obj.remove("index");
            return Err(Box::new((e, obj)));
        }
    };
    let mut xs = Vec::with_capacity(genome.len());
    for (i, v) in genome.iter().enumerate() {
        let x = match v {
            Value::String(s) => s.trim().parse::<f64>().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        match x.filter(|x| x.is_finite()) {
            Some(x) => xs.push(x),
            None => return Err(Box::new((ProtocolError::Value { index: i, value: v.to_string() }, obj))),
        }
    }
    obj.remove("generation");
    obj.remove("index");
    Ok(Request { generation, index, genome: xs, extra: obj })
}

/// The record of an evaluated request.
pub fn ok_record(req: &Request, row: &HistoryRow, worker: &str) -> String {
    let mut o = req.extra.clone();
    if let Ok(Value::Object(r)) = serde_json::to_value(row) {
        o.extend(r);
    }
    o.insert("ok".into(), Value::Bool(true));
    let fitness = serde_json::Number::from_f64(row.score.fitness).map_or(Value::Null, Value::Number);
    o.insert("fitness".into(), fitness);
    o.insert("worker".into(), Value::String(worker.into()));
    Value::Object(o).to_string()
}

/// The record of a request that failed (`extra` as [`parse_request`] left it).
pub fn error_record(
    generation: Option<(u64, usize)>,
    mut extra: Map<String, Value>,
    error: &str,
    worker: &str,
) -> String {
    if let Some((g, i)) = generation {
        extra.insert("generation".into(), g.into());
        extra.insert("index".into(), i.into());
    }
    extra.insert("ok".into(), Value::Bool(false));
    extra.insert("error".into(), Value::String(error.into()));
    extra.insert("worker".into(), Value::String(worker.into()));
    Value::Object(extra).to_string()
}

/// A record read back as a history row; a failed record is an error naming its candidate.
pub fn parse_record(line: &str) -> Result<HistoryRow, ProtocolError> {
    let v: Value = serde_json::from_str(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
    let Value::Object(o) = &v else { return Err(ProtocolError::Record("not an object".into())) };
    if o.get("ok") == Some(&Value::Bool(false)) {
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        return Err(ProtocolError::Failed {
            generation: counter(o, "generation").unwrap_or(0),
            index: counter(o, "index").unwrap_or(0) as usize,
            worker: s("worker"),
            error: s("error"),
        });
    }
    serde_json::from_value(v).map_err(|e| ProtocolError::Record(e.to_string()))
}

/// The rows of `generation` (candidates `0..n`, in index order) from a results file's text:
/// records of earlier generations are skipped (one file may collect a whole run), a candidate
/// reported twice (a re-queued evaluation) counts once, and a failed or missing candidate of
/// `generation` is an error.
pub fn collect_generation(text: &str, generation: u64, n: usize) -> Result<Vec<HistoryRow>, ProtocolError> {
    let mut rows: Vec<Option<HistoryRow>> = vec![None; n];
    for (ln, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |e: ProtocolError| ProtocolError::Record(format!("line {}: {e}", ln + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| at(ProtocolError::Json(e.to_string())))?;
        let g = v.get("generation").and_then(Value::as_u64).unwrap_or(0);
        if g < generation {
            continue;
        }
        if g > generation {
            return Err(at(ProtocolError::Record(format!("generation {g} was not asked yet (pending: {generation})"))));
        }
        let row = parse_record(line).map_err(|e| match e {
            ProtocolError::Failed { .. } => e,
            e => at(e),
        })?;
        let slot = rows
            .get_mut(row.index)
            .ok_or_else(|| at(ProtocolError::Record(format!("index {} of a generation of {n}", row.index))))?;
        if slot.is_none() {
            *slot = Some(row);
        }
    }
    let missing: Vec<usize> = rows.iter().enumerate().filter(|(_, r)| r.is_none()).map(|(i, _)| i).collect();
    if !missing.is_empty() {
        return Err(ProtocolError::Record(format!("generation {generation}: no result for candidates {missing:?}")));
    }
    Ok(rows.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolve::search::{Component, Score};

    #[test]
    fn request_round_trips_bit_exact_and_echoes_keys() {
        let g = [0.1 + 0.2, -1e-300, 3.0];
        let line = request_line(4, 2, &g);
        let mut v: Value = serde_json::from_str(&line).unwrap();
        v["id"] = Value::from("x7");
        let r = parse_request(&v.to_string()).unwrap();
        assert_eq!((r.generation, r.index), (4, 2));
        assert_eq!(r.genome.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), g.map(f64::to_bits).to_vec());
        assert_eq!(r.extra.get("id"), Some(&Value::from("x7")));
        let bare = parse_request("[0.5, 1]").unwrap();
        assert_eq!((bare.generation, bare.index, bare.genome), (0, 0, vec![0.5, 1.0]));
    }

    #[test]
    fn bad_requests_say_why_and_keep_what_they_can() {
        assert!(matches!(parse_request("{").unwrap_err().0, ProtocolError::Json(_)));
        assert_eq!(parse_request("{\"genome\": 3}").unwrap_err().0, ProtocolError::Shape);
        let (e, extra) = *parse_request("{\"id\": 1, \"index\": 3, \"genome\": [\"0.5\", \"nan\"]}").unwrap_err();
        assert_eq!(e, ProtocolError::Value { index: 1, value: "\"nan\"".into() });
        assert_eq!(extra.get("id"), Some(&Value::from(1)));
        let (e, _) = *parse_request("{\"index\": -1, \"genome\": []}").unwrap_err();
        assert_eq!(e, ProtocolError::Counter { key: "index" });
    }

    #[test]
    fn records_parse_back_to_the_row_and_failures_name_the_candidate() {
        let row = HistoryRow {
            generation: 1,
            index: 5,
            genome: vec![0.1 + 0.2],
            params: vec![("g0.a.weight".into(), "0.30000000000000004".into())],
            score: Score {
                fitness: -2.0 / 3.0,
                components: vec![Component {
                    name: "ppl:t".into(),
                    value: 1.9477340410546757,
                    contribution: -2.0 / 3.0,
                }],
            },
            seconds: 0.25,
        };
        let req = parse_request(&request_line(1, 5, &row.genome)).unwrap();
        let line = ok_record(&req, &row, "w1");
        let back = parse_record(&line).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&row).unwrap());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["fitness"].as_f64(), Some(-2.0 / 3.0));
        assert_eq!(v["worker"], "w1");
        let err = error_record(Some((1, 5)), Map::new(), "boom", "w2");
        assert_eq!(
            parse_record(&err).unwrap_err(),
            ProtocolError::Failed { generation: 1, index: 5, worker: "w2".into(), error: "boom".into() }
        );
    }
}
