//! A small bounded map with first-in-first-out eviction, for caches whose entries are cheap to
//! recompute: verified tokens and opened records.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

/// At most `capacity` entries; the oldest goes first.
#[derive(Debug)]
pub struct Bounded<K, V> {
    capacity: usize,
    inner: Mutex<(HashMap<K, V>, VecDeque<K>)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    /// An empty cache; capacity 0 caches nothing.
    pub fn new(capacity: usize) -> Self {
        Bounded {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// A copy of the entry, if present.
    pub fn get(&self, k: &K) -> Option<V> {
        self.inner.lock().ok()?.0.get(k).cloned()
    }

    /// Inserts (or replaces) an entry, evicting the oldest when full.
    pub fn insert(&self, k: K, v: V) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        let (map, order) = &mut *g;
        if map.insert(k.clone(), v).is_none() {
            order.push_back(k);
            while map.len() > self.capacity {
                match order.pop_front() {
                    Some(old) => {
                        map.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }

    /// Removes an entry.
    pub fn remove(&self, k: &K) {
        if let Ok(mut g) = self.inner.lock() {
            g.0.remove(k);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.0.len()).unwrap_or(0)
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first_and_capacity_holds() {
        let c = Bounded::new(2);
        c.insert(1, "a");
        c.insert(2, "b");
        c.insert(1, "a2");
        c.insert(3, "c");
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&1), None, "1 was first in");
        assert_eq!(c.get(&2), Some("b"));
        assert_eq!(c.get(&3), Some("c"));
        let off: Bounded<u8, u8> = Bounded::new(0);
        off.insert(1, 1);
        assert!(off.is_empty());
    }
}
