//! The live transactions: sharded maps by key (from the network) and by id
//! (ours).

use super::*;

const SHARDS: usize = 64;

/// Hashes the transaction ids this proxy hands out (sequential, never from
/// the network) with one multiplication; keys that come from the network
/// (`ServerKey`) are hashed with a randomly seeded foldhash (quicker than
/// SipHash on these ~50-byte keys, and its seed keeps an attacker from
/// choosing colliding branches).
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;
/// A key's transaction, with its id (so a removal by an older id leaves a
/// newer transaction of the same key alone). Holding the transaction here
/// and not only its id makes a lookup by key one probe of one map: every
/// request is looked up by key, and each probe of these large tables is a
/// cache miss.
type KeyMap = HashMap<ServerKey, (u64, TxnRef), foldhash::fast::RandomState>;

/// The live transactions, sharded by key and by id.
pub(in crate::proxy) struct TxnTable {
    keys: Vec<Mutex<KeyMap>>,
    txns: Vec<Mutex<IdMap<TxnRef>>>,
    /// Picks a key's shard (seeded apart from the maps' own hashers).
    shard_hasher: foldhash::fast::RandomState,
    count: AtomicUsize,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TxnTable {
    pub(super) fn new() -> Self {
        TxnTable {
            keys: (0..SHARDS).map(|_| Mutex::new(KeyMap::default())).collect(),
            txns: (0..SHARDS).map(|_| Mutex::new(IdMap::default())).collect(),
            shard_hasher: foldhash::fast::RandomState::default(),
            count: AtomicUsize::new(0),
        }
    }

    pub(super) fn key_shard(&self, key: &ServerKey) -> &Mutex<KeyMap> {
        use std::hash::BuildHasher;
        &self.keys[self.shard_hasher.hash_one(key.as_str()) as usize % SHARDS]
    }

    pub(super) fn by_id(&self, id: u64) -> Option<TxnRef> {
        lock(&self.txns[id as usize % SHARDS]).get(&id).cloned()
    }

    pub(super) fn by_key(&self, key: &ServerKey) -> Option<TxnRef> {
        lock(self.key_shard(key)).get(key).map(|(_, txn)| Arc::clone(txn))
    }

    /// Inserts unless the key is taken (a retransmission racing its original).
    pub(super) fn insert(&self, key: ServerKey, id: u64, txn: TxnRef) -> bool {
        let mut keys = lock(self.key_shard(&key));
        // One hash and probe of the key for both the test and the insert.
        match keys.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => return false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((id, Arc::clone(&txn)));
            }
        }
        lock(&self.txns[id as usize % SHARDS]).insert(id, txn);
        self.count.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub(super) fn remove(&self, key: &ServerKey, id: u64) {
        let mut keys = lock(self.key_shard(key));
        if keys.get(key).is_some_and(|(k, _)| *k == id) {
            keys.remove(key);
        }
        if lock(&self.txns[id as usize % SHARDS]).remove(&id).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(in crate::proxy) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}
