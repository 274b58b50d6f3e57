//! Docker's `filters=` query parameter: a JSON object from a filter name to its values, as
//! `{"name":{"web":true}}` (what the CLI sends) or the older `{"name":["web"]}`.

use super::ApiError;
use std::collections::{BTreeMap, BTreeSet};

/// Parsed filters: name → values (a filter given several values matches any of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Parses the `filters` parameter (absent or empty: no filter). Filters not in `accepted`
    /// are refused as dockerd refuses them: `Invalid filter 'NAME'`.
    pub fn parse(raw: Option<&str>, accepted: &[&str]) -> Result<Filters, ApiError> {
        let raw = raw.unwrap_or("").trim();
        if raw.is_empty() {
            return Ok(Filters::default());
        }
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::bad_request("invalid filter: expected a JSON object"))?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            if !accepted.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("Invalid filter '{k}'")));
            }
            let set: BTreeSet<String> = match vals {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter: the values of '{k}' must be an object or a list"
                    )))
                }
            };
            out.insert(k.clone(), set);
        }
        Ok(Filters(out))
    }

    /// The values of `key` (empty when not given).
    pub fn get(&self, key: &str) -> Vec<&str> {
        self.0
            .get(key)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether `key` was given with at least one value.
    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|s| !s.is_empty())
    }

    /// `key` not given, or `pred` holds for one of its values.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        !self.has(key) || self.get(key).into_iter().any(pred)
    }

    /// `key` not given, or `value` starts with one of its values (ids, names).
    pub fn prefix(&self, key: &str, value: &str) -> bool {
        self.any(key, |p| value.starts_with(p))
    }

    /// `key` not given, or `labels` match one of its values: `k` (the label is set) or `k=v`.
    pub fn labels<'a>(
        &self,
        key: &str,
        labels: impl IntoIterator<Item = (&'a String, &'a String)> + Clone,
    ) -> bool {
        // Docker ANDs label filters (every one must match), unlike the other filters.
        !self.has(key)
            || self.get(key).into_iter().all(|want| {
                let (k, v) = match want.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (want, None),
                };
                labels
                    .clone()
                    .into_iter()
                    .any(|(lk, lv)| lk == k && v.is_none_or(|v| v == lv))
            })
    }
}
