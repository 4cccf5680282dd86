//! The overview's throughput chart: jobs completed and attempts failed
//! per minute over the last hour (a job retried twice before it succeeds
//! shows two failures and one completion), as an SVG drawn on the server. Pure: counts
//! in, markup out; it holds only numbers, nothing to escape.

use crate::driver::{MinuteCount, Tally};

/// Minutes the chart spans.
pub const MINUTES: usize = 60;
const WIDTH: usize = 600;
const HEIGHT: usize = 120;
const BAR: usize = WIDTH / MINUTES;

/// The counts of minutes already over, kept between renders: each
/// render reads only the minutes since the last one it saw end (the
/// current minute, mostly), so the overview costs the same with a
/// million jobs finished in the last hour as with a hundred. A minute's
/// count is final once it is over (jobs that finished then stay
/// finished then; pruning them later does not change what happened).
#[derive(Debug, Default)]
pub struct Minutes {
    /// Counts of minutes before `until` (a minute number).
    done: Vec<MinuteCount>,
    /// The first minute not counted in `done`.
    until: i64,
}

impl Minutes {
    /// The counts of the chart's hour at `now_ms`: those kept, and
    /// `read(since)` (the driver's `finished_by_minute`) for the rest.
    pub fn hour(
        &mut self,
        now_ms: i64,
        read: impl FnOnce(i64) -> crate::error::Result<Vec<MinuteCount>>,
    ) -> crate::error::Result<Vec<MinuteCount>> {
        let current = now_ms.div_euclid(60_000);
        let first = current - (MINUTES as i64 - 1);
        self.done.retain(|c| c.minute >= first);
        let from = self.until.max(first);
        let fresh = read(from * 60_000)?;
        self.done
            .extend(fresh.iter().filter(|c| c.minute < current).cloned());
        self.until = current;
        let mut all = self.done.clone();
        all.extend(fresh.into_iter().filter(|c| c.minute >= current));
        Ok(all)
    }
}

/// Per minute of the last hour, oldest first: (completed, failed). The last
/// bucket is `now`'s minute.
pub fn buckets(counts: &[MinuteCount], now_ms: i64) -> Vec<(u64, u64)> {
    let last = now_ms.div_euclid(60_000);
    let first = last - (MINUTES as i64 - 1);
    let mut buckets = vec![(0, 0); MINUTES];
    for c in counts {
        if c.minute < first || c.minute > last {
            continue;
        }
        let slot = &mut buckets[(c.minute - first) as usize];
        match c.tally {
            Tally::Completed => slot.0 += c.count,
            Tally::Failed => slot.1 += c.count,
        }
    }
    buckets
}

/// The chart: a bar per minute, completed jobs (green) under failed
/// attempts (red).
pub fn throughput_svg(counts: &[MinuteCount], now_ms: i64) -> String {
    let buckets = buckets(counts, now_ms);
    let peak = buckets.iter().map(|(c, d)| c + d).max().unwrap_or(0).max(1);
    let (completed, failed): (u64, u64) = buckets
        .iter()
        .fold((0, 0), |(c, d), (bc, bd)| (c + bc, d + bd));
    let scale = |n: u64| (n as f64 / peak as f64 * HEIGHT as f64).round() as usize;
    let mut svg = format!(
        "<svg id=\"throughput\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {}\" \
         width=\"{WIDTH}\" height=\"{}\" role=\"img\" aria-label=\"jobs per minute, last hour: \
         {completed} completed, {failed} failed attempts\">",
        HEIGHT + 16,
        HEIGHT + 16
    );
    svg.push_str(&format!(
        "<title>last hour: {completed} completed, {failed} failed attempts; peak {peak}/min</title>\
         <line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" stroke=\"#999\"/>"
    ));
    for (i, (c, d)) in buckets.iter().enumerate() {
        let x = i * BAR;
        let (hc, hd) = (scale(*c), scale(*d));
        if hc > 0 {
            svg.push_str(&format!(
                "<rect class=\"completed\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{hc}\" fill=\"#2a2\"><title>{c} completed</title></rect>",
                HEIGHT - hc,
                BAR - 1
            ));
        }
        if hd > 0 {
            svg.push_str(&format!(
                "<rect class=\"failed\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{hd}\" fill=\"#c22\"><title>{d} failed</title></rect>",
                HEIGHT.saturating_sub(hc + hd),
                BAR - 1
            ));
        }
    }
    svg.push_str(&format!(
        "<text x=\"0\" y=\"{}\" font-size=\"10\">60 min ago</text>\
         <text x=\"{WIDTH}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">now · peak {peak}/min</text></svg>",
        HEIGHT + 12,
        HEIGHT + 12
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_that_are_over_are_read_once() {
        let mut minutes = Minutes::default();
        let at = |minute: i64| minute * 60_000 + 30_000;
        let mut reads = Vec::new();
        let hour = minutes
            .hour(at(100), |since| {
                reads.push(since / 60_000);
                Ok(vec![
                    count(41, Tally::Completed, 7),
                    count(99, Tally::Completed, 2),
                    count(100, Tally::Failed, 1),
                ])
            })
            .expect("counts");
        assert_eq!(reads, [41], "the first render reads the whole hour");
        assert_eq!(hour.len(), 3);
        // A minute later: only from the minute that was current.
        let hour = minutes
            .hour(at(101), |since| {
                reads.push(since / 60_000);
                Ok(vec![
                    count(100, Tally::Failed, 3),
                    count(101, Tally::Completed, 5),
                ])
            })
            .expect("counts");
        assert_eq!(reads, [41, 100]);
        let buckets = buckets(&hour, at(101));
        // Minute 41 fell out of the hour; 99 kept; 100 counted once, as
        // read once it was over; 101 fresh.
        assert_eq!(buckets.iter().map(|b| b.0 + b.1).sum::<u64>(), 2 + 3 + 5);
        assert_eq!(buckets[59], (5, 0));
        assert_eq!(buckets[58], (0, 3));
    }

    fn count(minute: i64, tally: Tally, count: u64) -> MinuteCount {
        MinuteCount {
            minute,
            tally,
            count,
        }
    }

    #[test]
    fn minutes_fall_in_their_buckets_and_older_ones_drop() {
        let now = 1_000 * 60_000 + 30_000; // within minute 1000
        let counts = [
            count(1000, Tally::Completed, 3),
            count(1000, Tally::Failed, 1),
            count(999, Tally::Completed, 2),
            count(941, Tally::Failed, 4),
            count(940, Tally::Completed, 9), // 60 minutes ago: outside
        ];
        let b = buckets(&counts, now);
        assert_eq!(b.len(), MINUTES);
        assert_eq!(b[59], (3, 1));
        assert_eq!(b[58], (2, 0));
        assert_eq!(b[0], (0, 4));
        assert_eq!(b.iter().map(|(c, d)| c + d).sum::<u64>(), 10);
    }

    #[test]
    fn the_svg_scales_to_the_peak() {
        let now = 1_000 * 60_000;
        let svg = throughput_svg(
            &[
                count(1000, Tally::Completed, 4),
                count(999, Tally::Completed, 2),
                count(999, Tally::Failed, 2),
            ],
            now,
        );
        assert!(svg.starts_with("<svg id=\"throughput\""), "{svg}");
        assert!(svg.ends_with("</svg>"));
        // The peak (4) is full height; 2 of 4 is half.
        assert!(
            svg.contains("x=\"590\" y=\"0\" width=\"9\" height=\"120\""),
            "{svg}"
        );
        assert!(svg.contains("class=\"completed\" x=\"580\" y=\"60\" width=\"9\" height=\"60\""));
        assert!(svg.contains("class=\"failed\" x=\"580\" y=\"0\" width=\"9\" height=\"60\""));
        assert!(svg.contains("6 completed, 2 failed attempts"));
        let empty = throughput_svg(&[], now);
        assert!(!empty.contains("<rect"), "no bars without jobs");
        assert!(empty.contains("0 completed, 0 failed attempts"));
    }
}
