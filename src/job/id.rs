//! Generated job ids: short, sortable by creation time, unique enough
//! across processes (and a collision is caught by the primary key).

use std::sync::Mutex;

const ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new generated id: 9 characters of milliseconds since the epoch and 3 of
/// a sequence (Crockford base 32, lowercase), 12 in all. Ids made by one
/// process strictly increase, so jobs of one batch keep their order; the
/// sequence starts at a random point so two processes rarely collide (and a
/// collision is caught by the primary key, not lost).
pub fn generate_id(now_ms: i64) -> String {
    static LAST: Mutex<(u64, u32)> = Mutex::new((0, 0));
    const SEQ_MAX: u32 = 0x7fff;
    let now = now_ms.max(0) as u64;
    let (ms, seq) = {
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = if now > last.0 {
            (now, random_start())
        } else if last.1 < SEQ_MAX {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, random_start())
        };
        *last = next;
        next
    };
    let mut out = String::with_capacity(12);
    for shift in (0..9).rev() {
        out.push(ID_ALPHABET[((ms >> (shift * 5)) & 31) as usize] as char);
    }
    for shift in (0..3).rev() {
        out.push(ID_ALPHABET[((seq >> (shift * 5)) & 31) as usize] as char);
    }
    out
}

/// A sequence start in the lower half, leaving room to count up.
fn random_start() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) & 0x3fff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::names::validate_id;

    #[test]
    fn generated_ids_sort_by_time_then_sequence() {
        let a = generate_id(1_700_000_000_000);
        let b = generate_id(1_700_000_000_001);
        assert_eq!(a.len(), 12);
        assert!(a < b, "{a} < {b}");
        assert!(validate_id(&a).is_ok());
        // Many ids in one millisecond (more than the sequence holds) still
        // strictly increase.
        let batch: Vec<String> = (0..70_000)
            .map(|_| generate_id(1_700_000_000_002))
            .collect();
        assert!(batch.windows(2).all(|w| w[0] < w[1]));
    }
}
