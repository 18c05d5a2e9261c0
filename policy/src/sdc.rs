//! Statistical disclosure control for phenomenon-level figures: small cells are suppressed,
//! secondary suppression makes sure no suppressed cell can be recomputed from row or column
//! totals, and every released number is rounded. Pure: tables in, released tables out.

use serde::Serialize;

/// A released number: a rounded value or a suppressed cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// A value, rounded to the covenant's base.
    Value(u64),
    /// Suppressed (`null` in JSON).
    Suppressed(Option<()>),
}

impl Cell {
    /// A suppressed cell.
    pub const SUPPRESSED: Cell = Cell::Suppressed(None);
}

/// A count table with its totals: `cells[row][col]`; a one-dimensional table has one column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    /// Row labels.
    pub rows: Vec<String>,
    /// Column labels.
    pub cols: Vec<String>,
    /// Interior cells.
    pub cells: Vec<Vec<Cell>>,
    /// Row totals.
    pub row_totals: Vec<Cell>,
    /// Column totals.
    pub col_totals: Vec<Cell>,
    /// Grand total.
    pub total: Cell,
}

/// A table extended with its totals: `rows + 1` by `cols + 1`, the last row and column the
/// totals. Read and written by position without panicking: out of range reads as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grid<T> {
    cols: usize,
    cells: Vec<T>,
}

impl<T: Copy + Default> Grid<T> {
    fn new(rows: usize, cols: usize) -> Self {
        Grid {
            cols,
            cells: vec![T::default(); (rows + 1) * (cols + 1)],
        }
    }
    fn at(&self, i: usize, j: usize) -> T {
        self.cells
            .get(i * (self.cols + 1) + j)
            .copied()
            .unwrap_or_default()
    }
    fn set(&mut self, i: usize, j: usize, v: T) {
        if let Some(c) = self.cells.get_mut(i * (self.cols + 1) + j) {
            *c = v;
        }
    }
}

/// The value of interior cell (i, j); missing cells (ragged or empty tables) are zero.
fn cell(cells: &[Vec<u64>], i: usize, j: usize) -> u64 {
    cells.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0)
}

/// The table of `rows` by `cols` interior cells with its totals.
fn extended(cells: &[Vec<u64>], rows: usize, cols: usize) -> Grid<u64> {
    let mut x = Grid::new(rows, cols);
    for i in 0..rows {
        for j in 0..cols {
            let v = cell(cells, i, j);
            x.set(i, j, v);
            x.set(i, cols, x.at(i, cols) + v);
            x.set(rows, j, x.at(rows, j) + v);
            x.set(rows, cols, x.at(rows, cols) + v);
        }
    }
    x
}

/// Which entries of the table of `rows` by `cols` cells, extended with its totals, are
/// suppressed: `result[r][c]`, where index `rows` is the totals row and `cols` the totals
/// column. An empty table (no rows or no columns) has only its totals.
pub fn suppression(cells: &[Vec<u64>], rows: usize, cols: usize, threshold: u64) -> Vec<Vec<bool>> {
    let x = extended(cells, rows, cols);
    let (r, c) = (rows, cols);
    // Primary: every non-empty entry below the threshold, totals included.
    let mut s: Grid<bool> = Grid::new(r, c);
    for i in 0..=r {
        for j in 0..=c {
            let v = x.at(i, j);
            s.set(i, j, v > 0 && v < threshold);
        }
    }
    // Secondary, until nothing changes: along every row and column of the extended matrix (each
    // is an additive relation: the interior sums to the total), never exactly one unknown, and
    // where the total is shown, the suppressed interior together is not a small group either.
    let lines: Vec<Vec<(usize, usize)>> = (0..=r)
        .map(|i| (0..=c).map(|j| (i, j)).collect())
        .chain((0..=c).map(|j| (0..=r).map(|i| (i, j)).collect()))
        .collect();
    loop {
        let mut changed = false;
        for line in &lines {
            let Some((&total, interior)) = line.split_last() else {
                continue;
            };
            if interior.is_empty() {
                continue;
            }
            let hidden = |&&(i, j): &&(usize, usize)| s.at(i, j);
            let unknown = line.iter().filter(hidden).count();
            let hidden_sum: u64 = interior
                .iter()
                .filter(hidden)
                .map(|&(i, j)| x.at(i, j))
                .sum();
            let total_shown = !s.at(total.0, total.1);
            let exposed = unknown == 1 || (total_shown && unknown > 0 && hidden_sum < threshold);
            if !exposed {
                continue;
            }
            // Hide the smallest shown non-empty interior entry of this line; else its total; an
            // empty cell only as a last resort (an attacker may guess it is empty).
            let shown = |&&(i, j): &&(usize, usize)| !s.at(i, j);
            let pick = interior
                .iter()
                .filter(shown)
                .filter(|&&(i, j)| x.at(i, j) > 0)
                .min_by_key(|&&(i, j)| x.at(i, j))
                .copied()
                .or(total_shown.then_some(total))
                .or_else(|| interior.iter().find(shown).copied());
            if let Some((i, j)) = pick {
                s.set(i, j, true);
                changed = true;
            }
        }
        if !changed {
            return (0..=r)
                .map(|i| (0..=c).map(|j| s.at(i, j)).collect())
                .collect();
        }
    }
}

/// Rounds to the nearest multiple of `base` (halves up).
pub fn round(v: u64, base: u64) -> u64 {
    if base <= 1 {
        return v;
    }
    (v + base / 2) / base * base
}

/// Suppresses and rounds a count table of `rows` by `cols` (missing cells count as zero).
pub fn release(
    rows: Vec<String>,
    cols: Vec<String>,
    cells: &[Vec<u64>],
    threshold: u64,
    base: u64,
) -> Released {
    let (r, c) = (rows.len(), cols.len());
    let s = suppression(cells, r, c, threshold);
    let x = extended(cells, r, c);
    let value = |i: usize, j: usize| {
        if s.get(i).and_then(|row| row.get(j)).copied().unwrap_or(true) {
            Cell::SUPPRESSED
        } else {
            Cell::Value(round(x.at(i, j), base))
        }
    };
    Released {
        cells: (0..r)
            .map(|i| (0..c).map(|j| value(i, j)).collect())
            .collect(),
        row_totals: (0..r).map(|i| value(i, c)).collect(),
        col_totals: (0..c).map(|j| value(r, j)).collect(),
        total: value(r, c),
        rows,
        cols,
    }
}

/// Median and quartiles (nearest rank) of a group, or `None` below the threshold.
pub fn quartiles(values: &mut [u64], threshold: u64) -> Option<(u64, u64, u64)> {
    if (values.len() as u64) < threshold || values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    let at = |q: f64| {
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        values.get(rank - 1).copied().unwrap_or(0)
    };
    Some((at(0.25), at(0.5), at(0.75)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(cells: &[Vec<u64>], t: u64) -> Result<(), String> {
        let r = cells.len();
        let c = cells[0].len();
        let s = suppression(cells, r, c, t);
        let mut x = vec![vec![0u64; c + 1]; r + 1];
        for i in 0..r {
            for j in 0..c {
                x[i][j] = cells[i][j];
                x[i][c] += cells[i][j];
                x[r][j] += cells[i][j];
                x[r][c] += cells[i][j];
            }
        }
        // No shown entry is a small group.
        for i in 0..=r {
            for j in 0..=c {
                if !s[i][j] && x[i][j] > 0 && x[i][j] < t {
                    return Err(format!("entry ({i},{j}) = {} is shown", x[i][j]));
                }
            }
        }
        // No line lets one suppressed entry be recomputed, or exposes a small hidden group.
        let lines: Vec<Vec<(usize, usize)>> = (0..=r)
            .map(|i| (0..=c).map(|j| (i, j)).collect())
            .chain((0..=c).map(|j| (0..=r).map(|i| (i, j)).collect()))
            .collect();
        for line in lines {
            let unknown = line.iter().filter(|&&(i, j)| s[i][j]).count();
            if unknown == 1 {
                return Err(format!("a line has exactly one suppressed entry: {line:?}"));
            }
            let (interior, total) = line.split_at(line.len() - 1);
            let hidden: u64 = interior
                .iter()
                .filter(|&&(i, j)| s[i][j])
                .map(|&(i, j)| x[i][j])
                .sum();
            if !s[total[0].0][total[0].1] && unknown > 0 && hidden < t {
                return Err(format!(
                    "total minus shown cells reveals a group of {hidden}: {line:?}"
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn a_single_small_cell_takes_a_partner_with_it() {
        let cells = vec![vec![20, 3], vec![15, 30]];
        let s = suppression(&cells, 2, 2, 10);
        assert!(s[0][1], "the 3 is suppressed");
        assert!(s.iter().flatten().filter(|x| **x).count() >= 4, "{s:?}");
        check(&cells, 10).unwrap();
    }

    #[test]
    fn an_empty_table_releases_without_panicking() {
        // No rows at all (a view on an empty register), columns but no rows, rows but no columns.
        let r = release(vec![], vec!["a".into(), "b".into()], &[], 10, 5);
        assert_eq!(r.col_totals, vec![Cell::Value(0), Cell::Value(0)]);
        assert_eq!(r.total, Cell::Value(0));
        let r = release(vec!["x".into()], vec![], &[], 10, 5);
        assert_eq!(
            (r.row_totals, r.total),
            (vec![Cell::Value(0)], Cell::Value(0))
        );
        let r = release(vec![], vec![], &[], 10, 5);
        assert_eq!(r.total, Cell::Value(0));
        assert_eq!(quartiles(&mut [], 1), None);
    }

    #[test]
    fn rounding() {
        assert_eq!(round(12, 5), 10);
        assert_eq!(round(13, 5), 15);
        assert_eq!(round(0, 5), 0);
        assert_eq!(round(7, 1), 7);
    }

    #[test]
    fn quartiles_need_a_big_enough_group() {
        assert_eq!(quartiles(&mut [1, 2, 3], 10), None);
        let mut v: Vec<u64> = (1..=12).collect();
        assert_eq!(quartiles(&mut v, 10), Some((3, 6, 9)));
    }

    proptest! {
        #[test]
        fn no_released_table_violates_the_threshold(cells in proptest::collection::vec(proptest::collection::vec(0u64..40, 1..6), 1..6), t in 2u64..15) {
            let c = cells[0].len();
            let cells: Vec<Vec<u64>> = cells.into_iter().map(|mut r| { r.resize(c, 0); r }).collect();
            prop_assert!(check(&cells, t).is_ok(), "{:?}", check(&cells, t));
            // Released numbers are rounded and never reveal a suppressed one.
            let rel = release((0..cells.len()).map(|i| i.to_string()).collect(), (0..c).map(|j| j.to_string()).collect(), &cells, t, 5);
            for row in &rel.cells {
                for cell in row {
                    if let Cell::Value(v) = cell { prop_assert_eq!(v % 5, 0); }
                }
            }
        }
    }
}
