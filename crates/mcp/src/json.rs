//! Small helpers for reading JSON values defensively.

/// The strings of a JSON array (other items skipped); empty when `v` is not an array.
pub fn string_array(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
