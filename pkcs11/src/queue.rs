//! Who makes a pool's next token call, so that a busy session goes straight from one `C_Sign`
//! to the next.
//!
//! A request that finds a session free and nobody queued signs on its own thread, with no
//! hand-over. A request that finds every session busy is queued for the pool's signing
//! threads (one per session, started the first time a request queues). A signing thread that
//! finishes one signature takes the next queued one at once, so while requests wait for the
//! token its sessions do not sit idle until a sleeping caller is scheduled. On a loaded
//! two-core host that wake-up took as long as a third of an RSA signature.
//!
//! A queued request waits at most the pool's acquire timeout for a signing thread to start
//! it, then gets [`Error::PoolBusy`](crate::Error::PoolBusy). Once started it waits for the
//! token, however long that takes (a real token may wait for a touch or a slow bus).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a queued request stands.
enum Stage<R> {
    Queued,
    Started,
    Done(R),
    /// The caller stopped waiting before a thread started it: it is skipped.
    Abandoned,
}

struct Slot<R> {
    stage: Mutex<Stage<R>>,
    done: Condvar,
}

impl<R> Slot<R> {
    /// Marks the job started; false if its caller gave up already (skip it then).
    fn start(&self) -> bool {
        let mut stage = lock(&self.stage);
        match *stage {
            Stage::Queued => {
                *stage = Stage::Started;
                true
            }
            _ => false,
        }
    }

    /// Hands the result to the waiting caller.
    fn finish(&self, result: R) {
        *lock(&self.stage) = Stage::Done(result);
        self.done.notify_one();
    }
}

/// One queued request: its input and the place its result is put.
struct Job<I, R> {
    input: I,
    slot: Arc<Slot<R>>,
}

struct Jobs<I, R> {
    queue: VecDeque<Job<I, R>>,
    /// Token calls under way, on signing threads or on callers' own threads.
    busy: usize,
    /// Signing threads asleep waiting for work.
    idle: usize,
    /// The signing threads have been started.
    started: bool,
    closed: bool,
}

/// The hand-over of one pool, for at most `sessions` token calls at once.
pub(crate) struct Queue<I, R> {
    jobs: Mutex<Jobs<I, R>>,
    ready: Condvar,
    sessions: usize,
}

/// What [`Queue::submit`] tells its caller to do.
pub(crate) enum Dispatch<'a, I, R> {
    /// Make the token call on this thread; the guard frees the place when dropped.
    Inline(Running<'a, I, R>),
    /// Wait for a signing thread (at most the acquire timeout for one to start the job).
    /// With `start_threads`, start the pool's signing threads first (no thread runs yet;
    /// [`Queue::threads`] says how many).
    Queued {
        pending: Pending<'a, I, R>,
        start_threads: bool,
    },
}

impl<I, R> Queue<I, R> {
    pub fn new(sessions: usize) -> Self {
        Queue {
            jobs: Mutex::new(Jobs {
                queue: VecDeque::new(),
                busy: 0,
                idle: 0,
                started: false,
                closed: false,
            }),
            ready: Condvar::new(),
            sessions: sessions.max(1),
        }
    }

    /// How many signing threads the pool runs.
    pub fn threads(&self) -> usize {
        self.sessions
    }

    /// Runs inline if a session is free and nobody is queued; otherwise queues `input()`.
    pub fn submit(&self, input: impl FnOnce() -> I) -> Dispatch<'_, I, R> {
        let mut jobs = lock(&self.jobs);
        if jobs.queue.is_empty() && jobs.busy < self.sessions {
            jobs.busy += 1;
            return Dispatch::Inline(Running { queue: self });
        }
        let slot = Arc::new(Slot {
            stage: Mutex::new(Stage::Queued),
            done: Condvar::new(),
        });
        jobs.queue.push_back(Job {
            input: input(),
            slot: slot.clone(),
        });
        let start_threads = !std::mem::replace(&mut jobs.started, true);
        let wake = jobs.busy < self.sessions && jobs.idle > 0;
        drop(jobs);
        // Only a sleeping thread needs waking, and waking costs a system call.
        if wake {
            self.ready.notify_one();
        }
        Dispatch::Queued {
            pending: Pending { queue: self, slot },
            start_threads,
        }
    }

    /// No signing thread could be started: every queued request is answered with
    /// `failure()` at once (none would run), and the next request to queue tries again.
    pub fn threads_failed(&self, failure: impl Fn() -> R) {
        let stranded: Vec<_> = {
            let mut jobs = lock(&self.jobs);
            jobs.started = false;
            jobs.queue.drain(..).collect()
        };
        for job in stranded {
            if job.slot.start() {
                job.slot.finish(failure());
            }
        }
    }

    /// A signing thread's loop: runs queued jobs with `run` until the queue is closed and
    /// empty. `run` must not panic (the pool catches the token's panics itself).
    pub fn serve(&self, mut run: impl FnMut(I) -> R) {
        let mut jobs = lock(&self.jobs);
        loop {
            if jobs.busy < self.sessions {
                if let Some(Job { input, slot }) = jobs.queue.pop_front() {
                    jobs.busy += 1;
                    drop(jobs);
                    if slot.start() {
                        slot.finish(run(input));
                    }
                    jobs = lock(&self.jobs);
                    jobs.busy -= 1;
                    continue;
                }
            }
            if jobs.closed && jobs.queue.is_empty() {
                return;
            }
            jobs.idle += 1;
            jobs = self
                .ready
                .wait(jobs)
                .unwrap_or_else(PoisonError::into_inner);
            jobs.idle -= 1;
        }
    }

    /// Ends the signing threads once the queue is empty.
    pub fn close(&self) {
        lock(&self.jobs).closed = true;
        self.ready.notify_all();
    }

    /// A token call on a caller's thread ended: a queued job may go now.
    fn inline_done(&self) {
        let mut jobs = lock(&self.jobs);
        jobs.busy -= 1;
        let wake = !jobs.queue.is_empty() && jobs.idle > 0;
        drop(jobs);
        if wake {
            self.ready.notify_one();
        }
    }
}

/// A token call on the caller's own thread; dropping it (also when unwinding) frees its place.
pub(crate) struct Running<'a, I, R> {
    queue: &'a Queue<I, R>,
}

impl<I, R> Drop for Running<'_, I, R> {
    fn drop(&mut self) {
        self.queue.inline_done();
    }
}

/// A caller's side of a queued job.
pub(crate) struct Pending<'a, I, R> {
    queue: &'a Queue<I, R>,
    slot: Arc<Slot<R>>,
}

impl<I, R> Pending<'_, I, R> {
    /// Waits for the result. A job no thread has started by `deadline` is taken out of the
    /// queue and `None` returned; a started one is waited for to its end.
    pub fn wait(self, deadline: Instant) -> Option<R> {
        let mut stage = lock(&self.slot.stage);
        loop {
            if matches!(*stage, Stage::Done(_)) {
                return match std::mem::replace(&mut *stage, Stage::Abandoned) {
                    Stage::Done(result) => Some(result),
                    _ => None,
                };
            }
            let now = Instant::now();
            match deadline {
                deadline if matches!(*stage, Stage::Queued) && now >= deadline => {
                    *stage = Stage::Abandoned;
                    drop(stage);
                    // Nobody queues behind a request that is gone.
                    lock(&self.queue.jobs)
                        .queue
                        .retain(|job| !Arc::ptr_eq(&job.slot, &self.slot));
                    return None;
                }
                deadline if matches!(*stage, Stage::Queued) => {
                    stage = self
                        .slot
                        .done
                        .wait_timeout(stage, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                _ => {
                    stage = self
                        .slot
                        .done
                        .wait(stage)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    type Q = Arc<Queue<u32, u32>>;

    /// Starts the queue's signing threads, each running jobs with `f`.
    fn threads(queue: &Q, f: fn(u32) -> u32) -> Vec<std::thread::JoinHandle<()>> {
        (0..queue.threads())
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || queue.serve(f))
            })
            .collect()
    }

    /// `f(input)` through the queue, as the pool does it.
    fn call(
        queue: &Q,
        input: u32,
        f: fn(u32) -> u32,
        started: &Mutex<Vec<std::thread::JoinHandle<()>>>,
    ) -> Option<u32> {
        match queue.submit(|| input) {
            Dispatch::Inline(running) => {
                let out = f(input);
                drop(running);
                Some(out)
            }
            Dispatch::Queued {
                pending,
                start_threads,
            } => {
                if start_threads {
                    lock(started).extend(threads(queue, f));
                }
                pending.wait(Instant::now() + Duration::from_secs(5))
            }
        }
    }

    #[test]
    fn every_call_gets_its_own_result_with_at_most_one_token_call_per_session() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        fn f(x: u32) -> u32 {
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            MOST.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(50));
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            x * 2
        }
        let queue: Q = Arc::new(Queue::new(2));
        let started = Arc::new(Mutex::new(Vec::new()));
        let callers: Vec<_> = (0..8u32)
            .map(|c| {
                let (queue, started) = (queue.clone(), started.clone());
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let input = c * 1000 + i;
                        assert_eq!(call(&queue, input, f, &started), Some(input * 2));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().expect("caller");
        }
        assert!(
            MOST.load(Ordering::SeqCst) <= 2,
            "more calls at once than sessions"
        );
        let started = std::mem::take(&mut *lock(&started));
        assert_eq!(
            started.len(),
            2,
            "8 callers on 2 sessions queue, once the threads start"
        );
        queue.close();
        for t in started {
            t.join().expect("signing thread");
        }
    }

    #[test]
    fn a_lone_caller_signs_on_its_own_thread() {
        let queue: Q = Arc::new(Queue::new(1));
        let started = Mutex::new(Vec::new());
        for i in 0..100 {
            assert_eq!(call(&queue, i, |x| x + 1, &started), Some(i + 1));
        }
        assert!(lock(&started).is_empty(), "no signing thread was needed");
    }

    #[test]
    fn a_queued_call_nobody_starts_before_its_deadline_is_taken_out_and_never_run() {
        let queue: Q = Arc::new(Queue::new(1));
        // The only session is busy on another thread.
        let Dispatch::Inline(running) = queue.submit(|| 1) else {
            panic!("the first call runs inline")
        };
        let Dispatch::Queued {
            pending,
            start_threads: true,
        } = queue.submit(|| 2)
        else {
            panic!("the second call must wait")
        };
        let began = Instant::now();
        assert_eq!(pending.wait(began + Duration::from_millis(50)), None);
        assert!(began.elapsed() >= Duration::from_millis(50));
        assert!(
            lock(&queue.jobs).queue.is_empty(),
            "the abandoned job left the queue"
        );
        drop(running);
        // The next call finds the session free again.
        assert!(matches!(queue.submit(|| 3), Dispatch::Inline(_)));
    }

    #[test]
    fn when_no_signing_thread_starts_every_queued_call_is_answered_at_once() {
        let queue: Arc<Queue<u32, Result<u32, String>>> = Arc::new(Queue::new(1));
        let Dispatch::Inline(running) = queue.submit(|| 1) else {
            panic!("the first call runs inline")
        };
        let Dispatch::Queued {
            pending: first,
            start_threads: true,
        } = queue.submit(|| 2)
        else {
            panic!("queued, and asked to start the threads")
        };
        // Another caller queues meanwhile; it does not start threads itself.
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let Dispatch::Queued {
                    pending,
                    start_threads: false,
                } = queue.submit(|| 3)
                else {
                    panic!("queued behind the first")
                };
                pending.wait(Instant::now() + Duration::from_secs(60))
            })
        };
        while lock(&queue.jobs).queue.len() < 2 {
            std::thread::yield_now();
        }
        queue.threads_failed(|| Err("no threads".to_owned()));
        let began = Instant::now();
        assert_eq!(
            waiter.join().expect("waiter"),
            Some(Err("no threads".to_owned()))
        );
        assert_eq!(
            first.wait(Instant::now() + Duration::from_secs(60)),
            Some(Err("no threads".to_owned()))
        );
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "nobody waited out a deadline"
        );
        drop(running);
        // The queue is empty again: the next call signs inline.
        assert!(matches!(queue.submit(|| 4), Dispatch::Inline(_)));
    }
}
