//! The bounded queue between receiving and routing.
//!
//! Receive tasks (UDP sockets, TCP connections) only read and frame; they
//! hand each message to one of a fixed set of routing workers through a
//! bounded channel, round-robin, never waiting. When every worker's queue is
//! full the proxy is overloaded: the message is answered `503 Service
//! Unavailable` with `Retry-After` (requests) or dropped (responses, ACKs),
//! so memory stays bounded however hard it is pushed.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::transport::Inbound;

/// A received message waiting for routing.
pub type Job = (Bytes, Inbound);

/// Hands jobs to routing workers; see the module docs.
#[derive(Debug)]
pub struct Dispatcher {
    workers: Vec<mpsc::Sender<Job>>,
}

impl Dispatcher {
    /// Creates `workers` queues of `depth` jobs each; returns the dispatcher
    /// and the receiving ends, one per worker task.
    pub fn new(workers: usize, depth: usize) -> (Dispatcher, Vec<mpsc::Receiver<Job>>) {
        let (tx, rx): (Vec<_>, Vec<_>) =
            (0..workers.max(1)).map(|_| mpsc::channel(depth.max(1))).unzip();
        (Dispatcher { workers: tx }, rx)
    }

    /// Queues a job on the worker its sender maps to, so messages from one
    /// peer are routed in the order they arrived (a 180 never overtakes its
    /// 200); when that queue is full, on the next with room; gives the job
    /// back when all are full.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let n = self.workers.len();
        let start = {
            let mut h = super::branch::stable_hasher();
            std::hash::Hash::hash(&job.1.peer, &mut h);
            std::hash::Hasher::finish(&h) as usize
        };
        let mut job = job;
        for i in 0..n {
            match self.workers[(start + i) % n].try_send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j)) => {
                    job = j
                }
            }
        }
        Err(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::Transport;

    #[test]
    fn full_queues_give_the_job_back() {
        let (d, mut rx) = Dispatcher::new(2, 1);
        let inbound = Inbound {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            peer: "127.0.0.1:5070".parse().unwrap(),
        };
        assert!(d.submit((Bytes::from_static(b"a"), inbound)).is_ok());
        assert!(d.submit((Bytes::from_static(b"b"), inbound)).is_ok());
        let (back, _) = d.submit((Bytes::from_static(b"c"), inbound)).unwrap_err();
        assert_eq!(back, Bytes::from_static(b"c"));
        let mut got: Vec<Bytes> =
            rx.iter_mut().filter_map(|r| r.try_recv().ok()).map(|j| j.0).collect();
        got.sort();
        assert_eq!(got, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        assert!(d.submit((Bytes::from_static(b"d"), inbound)).is_ok(), "room again");
    }
}
