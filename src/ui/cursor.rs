//! The job list's keyset cursor: the (created_at, id) of the last row
//! shown, as `CREATED.ID` in a URL. The list's order is (created_at, id)
//! descending, so the next page is everything strictly below it.

/// The cursor after `job`.
pub fn encode(created_at: i64, id: &str) -> String {
    format!("{created_at}.{id}")
}

/// The (created_at, id) a cursor names, or why it names none.
pub fn decode(text: &str) -> Result<(i64, String), String> {
    let bad =
        || format!("`{text}` is not a page cursor (expected CREATED.ID, as the next link gives)");
    let (created, id) = text.split_once('.').ok_or_else(bad)?;
    let created = created.parse::<i64>().map_err(|_| bad())?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((created, id.to_string()))
}

#[cfg(test)]
#[test]
fn a_cursor_round_trips_and_rejects_garbage() {
    for (at, id) in [(1_700_000_000_000, "01JABC"), (0, "a.b.c"), (-5, "x")] {
        assert_eq!(decode(&encode(at, id)), Ok((at, id.to_string())));
    }
    for bad in ["", "123", "abc.def", "12.", ".id", "1e3.x"] {
        assert!(decode(bad).is_err(), "{bad:?}");
    }
}
